package memmail

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// internalTimeout bounds the in-process IMAP conversations of Messages and
// RecreateMailbox; they never touch the network.
const internalTimeout = 10 * time.Second

// imapSession is one IMAP connection: imapmemserver's session with our own
// LOGIN, which accepts any case of the address and records the connection so
// RecreateMailbox can end it.
type imapSession struct {
	*imapmemserver.UserSession // nil until LOGIN succeeds

	srv  *Server
	conn *imapserver.Conn
}

func (s *Server) newIMAPSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	return &imapSession{srv: s, conn: c}, nil, nil
}

// Login authenticates with a configured address and its password
// (RFC 3501 §6.2.3).
func (sess *imapSession) Login(username, password string) error {
	key := strings.ToLower(username)
	a, ok := sess.srv.users[key]
	if !ok || subtle.ConstantTimeCompare([]byte(password), []byte(a.password)) != 1 {
		return imapserver.ErrAuthFailed
	}
	sess.UserSession = imapmemserver.NewUserSession(a.user)
	sess.srv.mu.Lock()
	sess.srv.conns[sess.conn] = key
	sess.srv.mu.Unlock()
	return nil
}

// Close ends the session.
func (sess *imapSession) Close() error {
	sess.srv.mu.Lock()
	delete(sess.srv.conns, sess.conn)
	sess.srv.mu.Unlock()
	if sess.UserSession == nil {
		return nil
	}
	return sess.UserSession.Close()
}

// idlePoll is how often a session in IDLE looks for mailbox changes.
const idlePoll = 25 * time.Millisecond

// Idle reports mailbox changes (EXISTS, EXPUNGE, FETCH FLAGS) while the client
// idles (RFC 2177 §3). It polls the session's tracker instead of using
// imapmemserver's Idle, which misses changes queued between SELECT and the
// start of IDLE until the next change arrives.
func (sess *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(idlePoll)
	defer t.Stop()
	for {
		if sess.UserSession != nil {
			if err := sess.UserSession.Poll(w, true); err != nil {
				return err
			}
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
	}
}

// Append stores raw as a new message in folder of user, directly (not over the
// network), exactly as an IMAP APPEND would: sessions in IDLE on that folder
// see an EXISTS. user is a configured address (case-insensitive).
func (s *Server) Append(ctx context.Context, user, folder string, raw []byte) error {
	_, err := s.appendMessage(ctx, user, folder, raw, nil)
	return err
}

// AppendWith is Append with explicit flags and internal date (zero means
// now), returning the assigned UIDVALIDITY and UID (RFC 4315 APPENDUID).
func (s *Server) AppendWith(ctx context.Context, user, folder string, raw []byte, flags []imap.Flag, date time.Time) (imap.UID, error) {
	data, err := s.appendMessage(ctx, user, folder, raw, &imap.AppendOptions{Flags: flags, Time: date})
	if err != nil {
		return 0, err
	}
	return data.UID, nil
}

func (s *Server) appendMessage(ctx context.Context, user, folder string, raw []byte, opts *imap.AppendOptions) (*imap.AppendData, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("append message: %w", err)
	}
	a, err := s.account(user)
	if err != nil {
		return nil, fmt.Errorf("append message: %w", err)
	}
	if opts == nil {
		opts = &imap.AppendOptions{}
	}
	folder = canonicalFolder(folder)
	data, err := a.user.Append(folder, literal{bytes.NewReader(raw)}, opts)
	if err != nil {
		return nil, fmt.Errorf("append message to %s/%s: %w", a.address, folder, folderErr(err))
	}
	return data, nil
}

// literal adapts a bytes.Reader to imap.LiteralReader.
type literal struct{ *bytes.Reader }

// CreateFolder creates a folder for user. An existing folder is an error.
func (s *Server) CreateFolder(user, name string) error {
	a, err := s.account(user)
	if err != nil {
		return fmt.Errorf("create folder: %w", err)
	}
	if err := a.user.Create(canonicalFolder(name), nil); err != nil {
		return fmt.Errorf("create folder %s/%s: %w", a.address, name, err)
	}
	return nil
}

// UIDValidity returns the current UIDVALIDITY of a folder (RFC 3501 §2.3.1.1).
func (s *Server) UIDValidity(user, folder string) (uint32, error) {
	a, err := s.account(user)
	if err != nil {
		return 0, fmt.Errorf("read uidvalidity: %w", err)
	}
	st, err := a.user.Status(canonicalFolder(folder), &imap.StatusOptions{UIDValidity: true})
	if err != nil {
		return 0, fmt.Errorf("read uidvalidity of %s/%s: %w", a.address, folder, folderErr(err))
	}
	return st.UIDValidity, nil
}

// StoredMessage is one message as read by MessagesWithUID.
type StoredMessage struct {
	UID          imap.UID
	Flags        []imap.Flag
	InternalDate time.Time
	Raw          []byte
}

// Messages returns the raw bytes of every message in folder of user, in UID
// order. It reads through an in-process IMAP session (EXAMINE + FETCH
// BODY.PEEK[]), so flags are left unchanged; it is bounded by a 10 s budget.
func (s *Server) Messages(user, folder string) ([][]byte, error) {
	msgs, err := s.MessagesWithUID(user, folder)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Raw
	}
	return out, nil
}

// MessagesWithUID is Messages with UID, flags and internal date.
func (s *Server) MessagesWithUID(user, folder string) ([]StoredMessage, error) {
	a, err := s.account(user)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	c, err := s.internalClient(a)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer c.Close()
	msgs, err := fetchAll(c, canonicalFolder(folder))
	if err != nil {
		return nil, fmt.Errorf("read messages of %s/%s: %w", a.address, folder, err)
	}
	return msgs, nil
}

// RecreateMailbox deletes folder of user and creates it again with the same
// messages (same bytes, flags and internal dates, new UIDs), so its
// UIDVALIDITY changes (RFC 3501 §2.3.1.1) the way it does when a real server
// rebuilds a mailbox. Every IMAP connection logged in as that user is ended
// with BYE, as Dovecot does when UIDVALIDITY changes under a session. It
// returns the new UIDVALIDITY, which is always greater than the old one.
func (s *Server) RecreateMailbox(user, folder string) (uint32, error) {
	a, err := s.account(user)
	if err != nil {
		return 0, fmt.Errorf("recreate mailbox: %w", err)
	}
	folder = canonicalFolder(folder)
	c, err := s.internalClient(a)
	if err != nil {
		return 0, fmt.Errorf("recreate mailbox: %w", err)
	}
	msgs, err := fetchAll(c, folder)
	c.Close()
	if err != nil {
		return 0, fmt.Errorf("recreate mailbox %s/%s: %w", a.address, folder, err)
	}
	if err := a.user.Delete(folder); err != nil {
		return 0, fmt.Errorf("recreate mailbox %s/%s: delete: %w", a.address, folder, err)
	}
	if err := a.user.Create(folder, nil); err != nil {
		return 0, fmt.Errorf("recreate mailbox %s/%s: create: %w", a.address, folder, err)
	}
	s.kick(strings.ToLower(a.address), "Mailbox UIDVALIDITY changed")
	var validity uint32
	for _, m := range msgs {
		flags := make([]imap.Flag, 0, len(m.Flags))
		for _, f := range m.Flags {
			if !strings.EqualFold(string(f), `\Recent`) { // RFC 3501 §2.3.2: \Recent is server-set
				flags = append(flags, f)
			}
		}
		data, err := a.user.Append(folder, literal{bytes.NewReader(m.Raw)}, &imap.AppendOptions{Flags: flags, Time: m.InternalDate})
		if err != nil {
			return 0, fmt.Errorf("recreate mailbox %s/%s: append: %w", a.address, folder, err)
		}
		validity = data.UIDValidity
	}
	if validity == 0 {
		return s.UIDValidity(a.address, folder)
	}
	return validity, nil
}

// kick ends every IMAP connection logged in as the user key.
func (s *Server) kick(key, reason string) {
	s.mu.Lock()
	var victims []*imapserver.Conn
	for c, k := range s.conns {
		if k == key {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		if err := c.Bye(reason); err != nil {
			s.logger.Debug("memmail bye", "err", err)
		}
	}
}

// internalClient logs in as a over an in-memory pipe to the IMAP server. The
// connection is not recorded for kick because it is closed before any kick.
func (s *Server) internalClient(a *account) (*imapclient.Client, error) {
	conn, err := s.pipeLn.dial()
	if err != nil {
		return nil, fmt.Errorf("dial in-process imap: %w", err)
	}
	if err := conn.SetDeadline(time.Now().Add(internalTimeout)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	c := imapclient.New(conn, nil)
	if err := c.Login(a.address, a.password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login in-process imap: %w", err)
	}
	return c, nil
}

// fetchAll EXAMINEs folder and fetches every message with BODY.PEEK[].
func fetchAll(c *imapclient.Client, folder string) ([]StoredMessage, error) {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, folderErr(err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(all, &imap.FetchOptions{
		UID:          true,
		Flags:        true,
		InternalDate: true,
		BodySection:  []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	out := make([]StoredMessage, 0, len(bufs))
	for _, b := range bufs {
		out = append(out, StoredMessage{
			UID:          b.UID,
			Flags:        b.Flags,
			InternalDate: b.InternalDate,
			Raw:          b.FindBodySection(section),
		})
	}
	return out, nil
}

// folderErr marks an IMAP NONEXISTENT / TRYCREATE answer with ErrNoFolder.
func folderErr(err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) && (ie.Code == imap.ResponseCodeNonExistent || ie.Code == imap.ResponseCodeTryCreate) {
		return fmt.Errorf("%w: %w", ErrNoFolder, err)
	}
	return err
}
