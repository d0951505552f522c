package mailout

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/deskd/deskd/internal/config"
)

// authSink is a go-smtp server offering AUTH LOGIN and CRAM-MD5 (RFC 2195), which memmail does
// not, recording which user each accepted message was sent as.
type authSink struct {
	user, pass string
	mu         sync.Mutex
	got        []string // authenticated user per accepted message
}

func (a *authSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &authSession{sink: a}, nil }

type authSession struct {
	sink *authSink
	user string
}

func (s *authSession) AuthMechanisms() []string { return []string{"LOGIN", "CRAM-MD5"} }

func (s *authSession) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case "LOGIN":
		return &loginServer{s: s}, nil
	case "CRAM-MD5":
		return &cramServer{s: s, challenge: "<1896.697170952@postoffice.example.net>"}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *authSession) Mail(string, *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *authSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *authSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	s.sink.got = append(s.sink.got, s.user)
	return nil
}
func (s *authSession) Reset()        {}
func (s *authSession) Logout() error { return nil }

type loginServer struct {
	s    *authSession
	step int
	user string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	default:
		if l.user != l.s.sink.user || string(resp) != l.s.sink.pass {
			return nil, false, smtp.ErrAuthFailed
		}
		l.s.user = l.user
		return nil, true, nil
	}
}

type cramServer struct {
	s         *authSession
	challenge string
	sent      bool
}

func (c *cramServer) Next(resp []byte) ([]byte, bool, error) {
	if !c.sent {
		c.sent = true
		return []byte(c.challenge), false, nil
	}
	user, digest, _ := strings.Cut(string(resp), " ")
	mac := hmac.New(md5.New, []byte(c.s.sink.pass))
	mac.Write([]byte(c.challenge))
	if user != c.s.sink.user || !hmac.Equal([]byte(digest), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return nil, false, errors.New("bad CRAM-MD5 response")
	}
	c.s.user = user
	return nil, true, nil
}

func TestSendAuthLoginAndCRAMMD5(t *testing.T) {
	t.Parallel()
	sink := &authSink{user: "relay", pass: "s3cret"}
	srv := smtp.NewServer(sink)
	srv.AllowInsecureAuth = true // loopback, as deskd itself allows
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { _ = srv.Close() })
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	port := ln.Addr().(*net.TCPAddr).Port
	for i, auth := range []string{config.AuthLogin, config.AuthCRAMMD5} {
		cfg := config.SMTP{Host: "127.0.0.1", Port: port, TLS: config.TLSNone, Auth: auth, User: "relay", Password: "s3cret",
			MaxConnections: 1, Timeout: 5 * time.Second}
		s := newTestSender(t, pool, ob, clk, cfg)
		enqueue(t, pool, ob, ackMail("ack:auth:"+auth, seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
		if n := runOnce(t, s); n != 1 {
			t.Errorf("auth %s: sent %d, want 1", auth, n)
		}
		sink.mu.Lock()
		if len(sink.got) != i+1 || sink.got[i] != "relay" {
			t.Errorf("auth %s: server saw users %q", auth, sink.got)
		}
		sink.mu.Unlock()
	}
	// A wrong password is a temporary failure of the relay, never a dead mail.
	cfg := config.SMTP{Host: "127.0.0.1", Port: port, TLS: config.TLSNone, Auth: config.AuthLogin, User: "relay", Password: "wrong",
		MaxConnections: 1, Timeout: 5 * time.Second}
	s := newTestSender(t, pool, ob, clk, cfg)
	id, _ := enqueue(t, pool, ob, ackMail("ack:auth:wrong", seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
	if _, err := s.runOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if row := readRow(t, pool, id); row.Status != "pending" || !strings.Contains(row.LastError, "dial smtp") {
		t.Errorf("row after failed AUTH %+v, want pending for retry", row)
	}
}
