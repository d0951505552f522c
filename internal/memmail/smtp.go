package memmail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// FaultFunc decides, once the whole message has been received (after the
// final "." of DATA), whether the SMTP server refuses it: a non-nil error is
// sent to the client as the reply to DATA and nothing is delivered or
// counted. from is the MAIL FROM address ("" for the null reverse-path) and to
// the RCPT TO addresses as the client gave them.
type FaultFunc func(from string, to []string) *smtp.SMTPError

// Delivery is one message accepted over SMTP.
type Delivery struct {
	From string    // MAIL FROM; "" for the null reverse-path (RFC 5321 §4.5.5)
	To   []string  // RCPT TO addresses as the client gave them
	Auth string    // AUTH PLAIN user, "" when the client did not authenticate
	Data []byte    // the message as received, without the trace fields we add
	At   time.Time // when DATA completed
}

// SetSMTPFault installs f (nil removes it). Typical faults:
//
//	&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down"}
//	&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
//	&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Rejected"}
func (s *Server) SetSMTPFault(f func(from string, to []string) *smtp.SMTPError) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	ff := FaultFunc(f)
	s.fault.Store(&ff)
}

// Accepted is the number of messages the SMTP server has accepted (one per
// successful DATA, whatever the number of recipients).
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// Deliveries returns a copy of the envelope and bytes of every message the
// SMTP server has accepted, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	copy(out, s.deliveries)
	return out
}

// WaitAccepted blocks until at least n messages have been accepted over SMTP
// or ctx ends.
func (s *Server) WaitAccepted(ctx context.Context, n int64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.accepted.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d accepted messages (have %d): %w", n, s.accepted.Load(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

type smtpBackend struct{ srv *Server }

// NewSession implements smtp.Backend.
func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{srv: b.srv, conn: c}, nil
}

type recipient struct {
	given string
	acct  *account
}

// smtpSession is one SMTP connection. go-smtp calls it from one goroutine.
type smtpSession struct {
	srv      *Server
	conn     *smtp.Conn
	authUser string
	from     string
	rcpts    []recipient
}

var _ smtp.AuthSession = (*smtpSession)(nil)

// AuthMechanisms offers AUTH PLAIN (RFC 4954, RFC 4616).
func (sess *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth checks the PLAIN credentials against Options.Users.
func (sess *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			return smtp.ErrAuthFailed
		}
		a, ok := sess.srv.users[strings.ToLower(username)]
		if !ok || subtle.ConstantTimeCompare([]byte(password), []byte(a.password)) != 1 {
			return smtp.ErrAuthFailed
		}
		sess.authUser = a.address
		return nil
	}), nil
}

// Mail records the reverse-path.
func (sess *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	sess.from = from
	sess.rcpts = nil
	return nil
}

// Rcpt accepts only configured users, with or without a "+detail"
// (RFC 5233); anything else gets 550 5.1.1 (RFC 3463).
func (sess *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	a, err := sess.srv.account(to)
	if err != nil {
		return &smtp.SMTPError{
			Code:         550,
			EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message:      fmt.Sprintf("<%s>: Recipient address rejected: User unknown", to),
		}
	}
	sess.rcpts = append(sess.rcpts, recipient{given: to, acct: a})
	return nil
}

// Data reads the message, consults the fault hook and delivers one copy into
// the INBOX of each recipient, with Return-Path, Delivered-To and Received
// trace fields prepended.
func (sess *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err // ErrDataTooLarge is already an *smtp.SMTPError
	}
	to := make([]string, len(sess.rcpts))
	for i, rc := range sess.rcpts {
		to[i] = rc.given
	}
	if f := sess.srv.fault.Load(); f != nil {
		if ferr := (*f)(sess.from, to); ferr != nil {
			return ferr
		}
	}
	now := time.Now()
	id := newID()
	for _, rc := range sess.rcpts {
		msg := sess.traced(raw, rc.given, id, now)
		if _, err := rc.acct.user.Append("INBOX", literal{bytes.NewReader(msg)}, &imap.AppendOptions{}); err != nil {
			sess.srv.logger.Error("memmail deliver", "rcpt", rc.given, "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Delivery failed"}
		}
	}
	sess.srv.mu.Lock()
	sess.srv.deliveries = append(sess.srv.deliveries, Delivery{From: sess.from, To: to, Auth: sess.authUser, Data: raw, At: now})
	sess.srv.mu.Unlock()
	sess.srv.accepted.Add(1)
	return nil
}

// traced prepends the final-delivery trace fields: Return-Path (RFC 5321
// §4.4), Delivered-To (RFC 9228) and Received (RFC 5321 §4.4, with the
// protocol names of RFC 3848).
func (sess *smtpSession) traced(raw []byte, rcpt, id string, now time.Time) []byte {
	helo := sess.conn.Hostname()
	if helo == "" {
		helo = "unknown"
	}
	ip := "unknown"
	if addr, ok := sess.conn.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ip = addr.IP.String()
	}
	proto := "ESMTP"
	if _, isTLS := sess.conn.TLSConnectionState(); isTLS {
		proto += "S"
	}
	if sess.authUser != "" {
		proto += "A"
	}
	var b bytes.Buffer
	b.Grow(len(raw) + 256)
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", sess.from)
	fmt.Fprintf(&b, "Delivered-To: %s\r\n", rcpt)
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (deskd memmail) with %s id %s\r\n\tfor <%s>; %s\r\n",
		helo, ip, sess.srv.hostname, proto, id, rcpt, now.Format(time.RFC1123Z))
	b.Write(raw)
	return b.Bytes()
}

// Reset forgets the current transaction (RSET, RFC 5321 §4.1.1.5).
func (sess *smtpSession) Reset() {
	sess.from = ""
	sess.rcpts = nil
}

// Logout ends the session.
func (sess *smtpSession) Logout() error { return nil }

// newID is a random queue-style id for the Received field.
func newID() string { return rand.Text()[:16] }
