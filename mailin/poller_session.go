package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// imapSession is one logged-in IMAP connection with the folder selected.
type imapSession struct {
	p           *Poller
	c           *imapclient.Client
	exists      chan struct{} // signalled (non-blocking, capacity 1) on every EXISTS, RFC 3501 §7.3.1
	uidValidity uint32
	lastUID     uint32 // the checkpoint: every UID up to it is stored
	canMove     bool   // RFC 6851
	canUIDPlus  bool   // RFC 4315
	canIdle     bool   // RFC 2177

	// The background flagging of a backlog (flagAsync): a second connection to the same folder,
	// opened on first use, and the flagging running on it.
	flagger   *imapSession
	noFlagger bool          // opening it failed: flag on this connection
	flagging  chan struct{} // closed when the running flagging ends; nil when none ran yet
	flagErr   error
}

// session runs one connection: log in, select, recover, then fetch and wait until an error or ctx
// ends. synced is called after every complete fetch round (the reconnect backoff resets).
func (p *Poller) session(ctx context.Context, synced func()) error {
	s, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	if err := s.open(ctx); err != nil {
		return err
	}
	if err := s.recover(ctx); err != nil {
		return err
	}
	for {
		if err := s.fetchNew(ctx); err != nil {
			return err
		}
		synced()
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
}

// connect dials the server according to the TLS mode. ctx bounds the dial and the handshake.
func (p *Poller) connect(ctx context.Context) (*imapSession, error) {
	s := &imapSession{p: p, exists: make(chan struct{}, 1)}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case s.exists <- struct{}{}:
					default:
					}
				}
			},
		},
	}
	addr := net.JoinHostPort(p.mb.Host, strconv.Itoa(p.mb.Port))
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	done := guard(ctx, conn, commandTimeout)
	defer done()
	switch p.mb.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, p.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		s.c = imapclient.New(tc, opts)
	case TLSStartTLS:
		opts.TLSConfig = p.tlsConfig()
		s.c, err = imapclient.NewStartTLS(conn, opts) // RFC 3501 §6.2.1
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("starttls with %s: %w", addr, err)
		}
	default:
		s.c = imapclient.New(conn, opts)
	}
	if err := s.c.WaitGreeting(); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	return s, nil
}

func (p *Poller) tlsConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.o.TLSConfig != nil {
		cfg = p.o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = p.mb.Host
	}
	if p.mb.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// guard is the watchdog of one exchange: it closes c when ctx ends or after d. Call the returned
// func when the exchange is over.
func guard(ctx context.Context, c io.Closer, d time.Duration) func() {
	gctx, cancel := context.WithTimeout(ctx, d)
	stop := context.AfterFunc(gctx, func() { c.Close() })
	return func() {
		stop()
		cancel()
	}
}

func (s *imapSession) guard(ctx context.Context) func() { return guard(ctx, s.c, commandTimeout) }

// open authenticates, creates the processed folder when missing, selects the folder and loads the
// checkpoint.
func (s *imapSession) open(ctx context.Context) error {
	if err := s.openFolder(ctx); err != nil {
		return err
	}
	var err error
	s.lastUID, err = s.p.loadCheckpoint(ctx, s.uidValidity)
	return err
}

// openFolder logs in, creates the processed folder when one is configured and selects the folder.
func (s *imapSession) openFolder(ctx context.Context) error {
	defer s.guard(ctx)()
	mb := s.p.mb
	var err error
	switch {
	case mb.Auth == AuthPlain:
		err = s.c.Authenticate(sasl.NewPlainClient("", mb.User, mb.Password)) // RFC 4616
	case s.c.Caps().Has(imap.Cap("AUTH=LOGIN")):
		err = s.c.Authenticate(sasl.NewLoginClient(mb.User, mb.Password))
	default:
		err = s.c.Login(mb.User, mb.Password).Wait() // RFC 3501 §6.2.3
	}
	if err != nil {
		return fmt.Errorf("log in as %s: %w", mb.User, err)
	}
	caps := s.c.Caps()
	s.canMove, s.canUIDPlus, s.canIdle = caps.Has(imap.CapMove), caps.Has(imap.CapUIDPlus), caps.Has(imap.CapIdle)
	if mb.ProcessedFolder != "" {
		if err := s.c.Create(mb.ProcessedFolder, nil).Wait(); err != nil && !alreadyExists(err) {
			return fmt.Errorf("create folder %s: %w", mb.ProcessedFolder, err)
		}
	}
	sel, err := s.c.Select(mb.Folder, nil).Wait()
	if err != nil {
		return fmt.Errorf("select %s: %w", mb.Folder, err)
	}
	s.uidValidity = sel.UIDValidity
	return nil
}

// alreadyExists recognises the answer to CREATE of an existing folder (RFC 5530 ALREADYEXISTS;
// older servers only say so in the text).
func alreadyExists(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return false
	}
	return ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "already exists")
}

// wait blocks until new mail may be there: an EXISTS during IDLE (RFC 2177), the IDLE refresh, or
// the poll interval. It returns ctx's error when ctx ends. After a refresh or a poll interval the
// folder is selected again, which is how a renumbered folder (new UIDVALIDITY) is noticed: Dovecot,
// for one, keeps serving the deleted folder's view to a session that has it selected.
func (s *imapSession) wait(ctx context.Context) error {
	if s.canIdle && !s.p.o.DisableIdle {
		refresh, err := s.idle(ctx)
		if err != nil || !refresh {
			return err
		}
		return s.reselect(ctx)
	}
	t := time.NewTimer(s.p.o.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.c.Closed():
		return errors.New("connection closed by the server")
	case <-t.C:
	}
	return s.reselect(ctx)
}

// idle issues IDLE and ends it as soon as the server reports EXISTS, after IdleRefresh (RFC 2177 §3:
// re-issue at least every 29 minutes; refresh is then true), or when ctx ends.
func (s *imapSession) idle(ctx context.Context) (refresh bool, err error) {
	select {
	case <-s.exists: // arrived since the last fetch began: fetch again at once
		return false, nil
	default:
	}
	start := s.guard(ctx)
	cmd, err := s.c.Idle()
	start()
	if err != nil {
		return false, fmt.Errorf("idle: %w", err)
	}
	t := time.NewTimer(s.p.o.IdleRefresh)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.exists:
	case <-t.C:
		refresh = true
	case <-s.c.Closed():
		return false, errors.New("connection closed by the server during IDLE")
	}
	// End IDLE even when ctx is done, so that LOGOUT can follow.
	defer guard(context.WithoutCancel(ctx), s.c, logoutTimeout)()
	if err := cmd.Close(); err != nil {
		return false, fmt.Errorf("end idle: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return false, fmt.Errorf("end idle: %w", err)
	}
	return refresh, ctx.Err()
}

// reselect selects the folder again; on a new UIDVALIDITY the checkpoint restarts (loadCheckpoint).
func (s *imapSession) reselect(ctx context.Context) error {
	defer s.guard(ctx)()
	sel, err := s.c.Select(s.p.mb.Folder, nil).Wait()
	if err != nil {
		return fmt.Errorf("select %s: %w", s.p.mb.Folder, err)
	}
	if sel.UIDValidity == s.uidValidity {
		return nil
	}
	s.uidValidity = sel.UIDValidity
	s.lastUID, err = s.p.loadCheckpoint(ctx, sel.UIDValidity)
	return err
}

// close logs out (best effort, bounded) and closes the connection.
func (s *imapSession) close(ctx context.Context) {
	if s.flagger != nil {
		s.waitFlagging() //nolint:errcheck // the session ends either way; reconcile flags what is left
		s.flagger.close(ctx)
		s.flagger = nil
	}
	select {
	case <-s.c.Closed():
	default:
		done := guard(context.WithoutCancel(ctx), s.c, logoutTimeout)
		s.c.Logout().Wait() //nolint:errcheck // the connection is closed right after either way
		done()
	}
	s.c.Close()
}
