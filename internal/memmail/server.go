// Package memmail is an in-process mail system for tests, `deskd demo` and
// `deskd bench`: an IMAP server (go-imap v2 imapmemserver) and an SMTP server
// (go-smtp) sharing one set of in-memory mailboxes.
//
// Mail accepted over SMTP is delivered at once into the INBOX of every local
// recipient, so a message sent by the code under test can be read back over
// IMAP, and an IMAP client in IDLE sees it arrive. Nothing touches the disk;
// everything is lost on Close.
//
// Both servers listen on 127.0.0.1 with a kernel-chosen port. Authentication is
// plaintext (no TLS needed) unless Options.STARTTLS is set, in which case both
// servers also offer STARTTLS with a self-signed certificate (see
// Server.ClientTLSConfig).
package memmail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-smtp"
)

// DefaultHostname is the host name the servers announce when
// Options.Hostname is empty.
const DefaultHostname = "memmail.localhost"

// DefaultFolders are created for every user at start, besides INBOX.
var DefaultFolders = []string{"Archive", "Junk", "Sent", "Trash"}

// ErrUnknownUser is returned (wrapped) when an address or login name is not
// one of Options.Users.
var ErrUnknownUser = errors.New("unknown user")

// ErrNoFolder is returned (wrapped) when a folder does not exist.
var ErrNoFolder = errors.New("no such folder")

// Options configures Start.
type Options struct {
	// Users maps an email address (also the IMAP login name) to its
	// password. Addresses are compared case-insensitively. At least one
	// user is required.
	Users map[string]string
	// Logger receives protocol errors from both servers. Nil discards them.
	Logger *slog.Logger
	// Hostname is announced in greetings and written into Received header
	// fields. Empty means DefaultHostname.
	Hostname string
	// STARTTLS makes both servers offer STARTTLS with a freshly generated
	// self-signed certificate for 127.0.0.1 and localhost. Plaintext
	// authentication stays allowed either way.
	STARTTLS bool
	// IMAPListen and SMTPListen are the listen addresses; empty means
	// "127.0.0.1:0" (a free port). Only loopback addresses are accepted,
	// e.g. "127.0.0.1:1143" for `deskd demo` so a mail client can connect.
	IMAPListen string
	SMTPListen string
	// MaxMessageBytes caps the size of a message accepted over SMTP
	// (RFC 1870 SIZE). Zero means 32 MiB.
	MaxMessageBytes int64
}

// Server is a running in-process IMAP + SMTP server. Its methods are safe for
// concurrent use.
type Server struct {
	logger   *slog.Logger
	hostname string

	mem   *imapmemserver.Server
	users map[string]*account // key: lower-cased address

	imapSrv  *imapserver.Server
	imapLn   net.Listener
	pipeLn   *pipeListener
	smtpSrv  *smtp.Server
	smtpLn   net.Listener
	clientTL *tls.Config

	fault    atomic.Pointer[FaultFunc]
	accepted atomic.Int64

	mu         sync.Mutex
	deliveries []Delivery
	conns      map[*imapserver.Conn]string // authenticated IMAP conn -> user key

	serveWG   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// account is one configured user.
type account struct {
	address  string // as configured
	password string
	user     *imapmemserver.User
}

// Start creates the mailboxes of opts.Users (INBOX plus DefaultFolders) and
// starts the IMAP and SMTP servers on 127.0.0.1. The caller must call Close.
// ctx bounds start-up only; the servers run until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if len(opts.Users) == 0 {
		return nil, errors.New("start memmail: no users")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start memmail: %w", err)
	}
	s := &Server{
		logger:   opts.Logger,
		hostname: opts.Hostname,
		mem:      imapmemserver.New(),
		users:    make(map[string]*account, len(opts.Users)),
		conns:    make(map[*imapserver.Conn]string),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.hostname == "" {
		s.hostname = DefaultHostname
	}
	for addr, pw := range opts.Users {
		key := strings.ToLower(addr)
		if _, dup := s.users[key]; dup {
			return nil, fmt.Errorf("start memmail: user %q configured twice", addr)
		}
		u := imapmemserver.NewUser(addr, pw)
		if err := createFolders(u); err != nil {
			return nil, fmt.Errorf("start memmail: create folders of %s: %w", addr, err)
		}
		s.mem.AddUser(u)
		s.users[key] = &account{address: addr, password: pw, user: u}
	}

	var serverTLS *tls.Config
	if opts.STARTTLS {
		cert, pool, err := selfSignedCert(s.hostname)
		if err != nil {
			return nil, fmt.Errorf("start memmail: %w", err)
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		s.clientTL = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}

	imapLn, err := listenLoopback(ctx, opts.IMAPListen)
	if err != nil {
		return nil, fmt.Errorf("start memmail: listen imap: %w", err)
	}
	smtpLn, err := listenLoopback(ctx, opts.SMTPListen)
	if err != nil {
		imapLn.Close()
		return nil, fmt.Errorf("start memmail: listen smtp: %w", err)
	}
	s.imapLn, s.smtpLn = imapLn, smtpLn
	s.pipeLn = newPipeListener()

	errLog := slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)
	s.imapSrv = imapserver.New(&imapserver.Options{
		NewSession: s.newIMAPSession,
		Caps:       imapCaps(),
		Logger:     errLog,
		TLSConfig:  serverTLS,
		// Loopback only; tests log in without TLS like a local Dovecot
		// with disable_plaintext_auth = no.
		InsecureAuth: true,
	})

	maxBytes := opts.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = 32 << 20
	}
	s.smtpSrv = smtp.NewServer(&smtpBackend{srv: s})
	s.smtpSrv.Domain = s.hostname
	s.smtpSrv.MaxMessageBytes = maxBytes
	s.smtpSrv.MaxRecipients = 100
	s.smtpSrv.AllowInsecureAuth = true
	s.smtpSrv.EnableSMTPUTF8 = true
	s.smtpSrv.ReadTimeout = time.Minute
	s.smtpSrv.WriteTimeout = time.Minute
	s.smtpSrv.TLSConfig = serverTLS
	s.smtpSrv.ErrorLog = errLog

	s.serve(func() error { return s.imapSrv.Serve(imapLn) })
	s.serve(func() error { return s.imapSrv.Serve(s.pipeLn) })
	s.serve(func() error { return s.smtpSrv.Serve(smtpLn) })
	return s, nil
}

// listenLoopback listens on addr, which must be a loopback host:port;
// empty means 127.0.0.1:0.
func listenLoopback(ctx context.Context, addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s is not a loopback address", addr)
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// imapCaps is what the IMAP server advertises: IMAP4rev1 (like Dovecot 2.3)
// with the extensions imapmemserver implements. IDLE (RFC 2177), UNSELECT,
// ENABLE, SASL-IR and LITERAL- are added by imapserver itself.
func imapCaps() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:    {},
		imap.CapNamespace:    {},
		imap.CapUIDPlus:      {}, // RFC 4315
		imap.CapESearch:      {},
		imap.CapListExtended: {},
		imap.CapListStatus:   {},
		imap.CapMove:         {}, // RFC 6851
		imap.CapStatusSize:   {},
	}
}

// createFolders creates INBOX and DefaultFolders for a new user.
func createFolders(u *imapmemserver.User) error {
	if err := u.Create("INBOX", nil); err != nil {
		return err
	}
	// imapmemserver ignores CREATE options, so there are no SPECIAL-USE
	// attributes (RFC 6154) to announce.
	for _, name := range DefaultFolders {
		if err := u.Create(name, nil); err != nil {
			return err
		}
	}
	return nil
}

// serve runs fn in a goroutine that Close waits for.
func (s *Server) serve(fn func() error) {
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		if err := fn(); err != nil && !isClosedErr(err) {
			s.logger.Warn("memmail serve ended", "err", err)
		}
	}()
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) ||
		strings.Contains(err.Error(), "server closed")
}

// IMAPAddr is the host:port of the IMAP server (plaintext, optionally
// STARTTLS).
func (s *Server) IMAPAddr() string { return s.imapLn.Addr().String() }

// SMTPAddr is the host:port of the SMTP server. It accepts mail with or
// without AUTH PLAIN.
func (s *Server) SMTPAddr() string { return s.smtpLn.Addr().String() }

// Hostname is the name the servers announce.
func (s *Server) Hostname() string { return s.hostname }

// ClientTLSConfig returns a client TLS configuration that trusts the server's
// self-signed certificate (ServerName 127.0.0.1), or nil when
// Options.STARTTLS was not set.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.clientTL == nil {
		return nil
	}
	return s.clientTL.Clone()
}

// Close stops both servers and drops every connection. It waits for the
// accept loops to end and is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// Close our listeners first and let the accept loops end before
		// closing the servers: imapserver and go-smtp both miss a
		// listener whose Serve starts after their Close.
		s.imapLn.Close()
		s.pipeLn.Close()
		s.smtpLn.Close()
		s.serveWG.Wait()
		imapErr := s.imapSrv.Close()
		smtpErr := s.smtpSrv.Close()
		if imapErr != nil && !isClosedErr(imapErr) {
			s.closeErr = fmt.Errorf("close imap server: %w", imapErr)
		} else if smtpErr != nil && !isClosedErr(smtpErr) {
			s.closeErr = fmt.Errorf("close smtp server: %w", smtpErr)
		}
	})
	return s.closeErr
}

// account returns the configured user for an address, ignoring case and a
// "+detail" suffix of the local part.
func (s *Server) account(address string) (*account, error) {
	key := strings.ToLower(strings.TrimSpace(address))
	if a, ok := s.users[key]; ok {
		return a, nil
	}
	if a, ok := s.users[stripDetail(key)]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("%s: %w", address, ErrUnknownUser)
}

// stripDetail turns "local+detail@domain" into "local@domain" (sub-addressing
// as in RFC 5233 §2, with "+" as the separator).
func stripDetail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at:]
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local = local[:plus]
	}
	return local + domain
}

// canonicalFolder maps any case of "INBOX" to "INBOX" (RFC 3501 §5.1).
func canonicalFolder(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}
