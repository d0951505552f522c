package memmail

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	gomail "github.com/wneessen/go-mail"
)

const (
	desk     = "support@demo.test"
	deskPass = "desk-secret"
	alice    = "alice@example.test"
	alicePW  = "alice-secret"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Users == nil {
		opts.Users = map[string]string{desk: deskPass, alice: alicePW}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// sendGoMail sends one message with go-mail, optionally with AUTH PLAIN.
func sendGoMail(t *testing.T, s *Server, user, pass, from, to, subject, body string) error {
	t.Helper()
	host, port := hostPort(t, s.SMTPAddr())
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithTimeout(5 * time.Second)}
	if user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(user), gomail.WithPassword(pass))
	}
	c, err := gomail.NewClient(host, opts...)
	if err != nil {
		t.Fatalf("go-mail client: %v", err)
	}
	m := gomail.NewMsg()
	if err := m.From(from); err != nil {
		t.Fatal(err)
	}
	if err := m.To(to); err != nil {
		t.Fatal(err)
	}
	m.Subject(subject)
	m.SetBodyString(gomail.TypeTextPlain, body)
	return c.DialAndSend(m)
}

// sendRaw sends raw with go-smtp's client, without TLS or AUTH.
func sendRaw(t *testing.T, s *Server, from, to, raw string) error {
	t.Helper()
	c, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.SendMail(from, []string{to}, strings.NewReader(raw))
}

func dialIMAP(t *testing.T, s *Server, user, pass string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr(), opts)
	if err != nil {
		t.Fatalf("dial imap: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// dialExistsWatcher logs in as desk; the channel receives the message count
// of every unilateral EXISTS response.
func dialExistsWatcher(t *testing.T, s *Server) (*imapclient.Client, <-chan uint32) {
	t.Helper()
	exists := make(chan uint32, 8)
	c := dialIMAP(t, s, desk, deskPass, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	return c, exists
}

func TestSMTPDeliversToIMAPInbox(t *testing.T) {
	s := startServer(t, Options{})
	if err := sendGoMail(t, s, "", "", alice, "Support+Printers@demo.test", "Printer on fire", "Please help.\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := s.Accepted(); got != 1 {
		t.Fatalf("Accepted() = %d, want 1", got)
	}

	c := dialIMAP(t, s, "SUPPORT@demo.test", deskPass, nil) // login is case-insensitive
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("INBOX has %d messages, want 1", sel.NumMessages)
	}
	section := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	raw := msgs[0].FindBodySection(section)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse delivered message: %v\n%s", err, raw)
	}
	if got := m.Header.Get("Subject"); got != "Printer on fire" {
		t.Errorf("Subject = %q", got)
	}
	if got := m.Header.Get("Delivered-To"); got != "Support+Printers@demo.test" {
		t.Errorf("Delivered-To = %q, want the address as given", got)
	}
	if got := m.Header.Get("Return-Path"); got != "<"+alice+">" {
		t.Errorf("Return-Path = %q", got)
	}
	rcv := m.Header.Get("Received")
	if !strings.Contains(rcv, "by "+DefaultHostname) || !strings.Contains(rcv, "with ESMTP ") || !strings.Contains(rcv, "[127.0.0.1]") {
		t.Errorf("Received = %q", rcv)
	}
	if _, err := mail.ParseDate(rcv[strings.LastIndexByte(rcv, ';')+1:]); err != nil {
		t.Errorf("Received date: %v", err)
	}

	direct, err := s.Messages(desk, "inbox")
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if len(direct) != 1 || !bytes.Equal(direct[0], raw) {
		t.Fatalf("Messages returned %d messages, want the one fetched over IMAP", len(direct))
	}
	d := s.Deliveries()
	if len(d) != 1 || d[0].From != alice || len(d[0].To) != 1 || d[0].Auth != "" || !bytes.Contains(d[0].Data, []byte("Please help.")) {
		t.Fatalf("Deliveries() = %+v", d)
	}
	// The message was read with BODY.PEEK[] by Messages and BODY[] by the
	// client: only the latter sets \Seen.
	fl, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(fl[0].Flags) != 1 || fl[0].Flags[0] != imap.FlagSeen {
		t.Errorf("flags = %v, want [\\Seen]", fl[0].Flags)
	}
}

func TestSMTPAuthPlain(t *testing.T) {
	s := startServer(t, Options{})
	if err := sendGoMail(t, s, desk, deskPass, desk, alice, "Re: [SD-1] ack", "We are on it.\r\n"); err != nil {
		t.Fatalf("send with auth: %v", err)
	}
	d := s.Deliveries()
	if len(d) != 1 || d[0].Auth != desk {
		t.Fatalf("Deliveries() = %+v, want one authenticated as %s", d, desk)
	}
	msgs, err := s.Messages(alice, "INBOX")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Messages = %d, %v", len(msgs), err)
	}
	if !bytes.Contains(msgs[0], []byte("with ESMTPA id")) {
		t.Errorf("Received does not name ESMTPA (RFC 3848):\n%s", msgs[0])
	}

	err = sendGoMail(t, s, desk, "wrong", desk, alice, "x", "y")
	if err == nil {
		t.Fatal("send with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "535") {
		t.Errorf("wrong password error = %v, want a 535", err)
	}
	if got := s.Accepted(); got != 1 {
		t.Errorf("Accepted() = %d after a failed login, want 1", got)
	}
}

func TestSMTPUnknownRecipient(t *testing.T) {
	s := startServer(t, Options{})
	c, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("nobody@demo.test", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("RCPT unknown = %v, want 550 5.1.1", err)
	}
	if err := c.Rcpt(desk, nil); err != nil {
		t.Fatalf("RCPT known after an unknown one: %v", err)
	}
}

func TestSMTPFaultHook(t *testing.T) {
	s := startServer(t, Options{})
	var gotFrom string
	var gotTo []string
	for _, code := range []int{421, 451, 550} {
		s.SetSMTPFault(func(from string, to []string) *smtp.SMTPError {
			gotFrom, gotTo = from, to
			return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 3, 0}, Message: "injected"}
		})
		err := sendRaw(t, s, "", desk, "Subject: x\r\n\r\nbody\r\n")
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != code {
			t.Fatalf("fault %d: send error = %v", code, err)
		}
		if se.Temporary() != (code < 500) {
			t.Errorf("fault %d: Temporary() = %v", code, se.Temporary())
		}
		if gotFrom != "" || len(gotTo) != 1 || gotTo[0] != desk {
			t.Errorf("fault hook saw from=%q to=%v", gotFrom, gotTo)
		}
	}
	if got := s.Accepted(); got != 0 {
		t.Fatalf("Accepted() = %d while faulting, want 0", got)
	}
	s.SetSMTPFault(nil)
	if err := sendRaw(t, s, "", desk, "Subject: x\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("send after clearing the fault: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.WaitAccepted(ctx, 1); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(desk, "INBOX")
	if err != nil || len(msgs) != 1 || !bytes.HasPrefix(msgs[0], []byte("Return-Path: <>\r\n")) {
		t.Fatalf("after the fault: %d messages, %v", len(msgs), err)
	}
}

func TestIdleSeesAppendWithinOneSecond(t *testing.T) {
	s := startServer(t, Options{})
	c, exists := dialExistsWatcher(t, s)
	if !c.Caps().Has(imap.CapIdle) {
		t.Fatalf("IDLE not advertised: %v", c.Caps())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	ctx := context.Background()
	start := time.Now()
	if err := s.Append(ctx, desk, "INBOX", []byte("Subject: new\r\n\r\nhello\r\n")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
		t.Logf("EXISTS after %v", time.Since(start))
	case <-time.After(time.Second):
		t.Fatal("no EXISTS within 1 s of APPEND")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestIdleReportsChangeQueuedBeforeIdle(t *testing.T) {
	s := startServer(t, Options{})
	c, exists := dialExistsWatcher(t, s)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Delivered between SELECT and IDLE: a real server reports it as soon
	// as IDLE starts.
	if err := s.Append(context.Background(), desk, "INBOX", []byte("Subject: early\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(time.Second):
		t.Fatal("change queued before IDLE not reported within 1 s")
	}
}

func TestMoveAndUIDPlus(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	for i := range 3 {
		if err := s.Append(ctx, desk, "INBOX", []byte("Subject: m"+strconv.Itoa(i)+"\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateFolder(desk, "Processed"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFolder(desk, "Processed"); err == nil {
		t.Error("CreateFolder twice succeeded")
	}
	c := dialIMAP(t, s, desk, deskPass, nil)
	for _, cp := range []imap.Cap{imap.CapMove, imap.CapUIDPlus, imap.CapIdle} {
		if !c.Caps().Has(cp) {
			t.Errorf("capability %s not advertised", cp)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	moved, err := c.Move(imap.UIDSetNum(2), "Processed").Wait()
	if err != nil {
		t.Fatalf("UID MOVE: %v", err)
	}
	if moved.DestUIDs.String() != "1" {
		t.Errorf("COPYUID dest = %v, want 1 (RFC 4315)", moved.DestUIDs)
	}
	inbox, err := s.MessagesWithUID(desk, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(inbox) != 2 || inbox[0].UID != 1 || inbox[1].UID != 3 {
		t.Fatalf("INBOX after move = %+v", inbox)
	}
	processed, err := s.Messages(desk, "Processed")
	if err != nil || len(processed) != 1 || !bytes.Contains(processed[0], []byte("Subject: m1")) {
		t.Fatalf("Processed = %q, %v", processed, err)
	}
	if _, err := s.Messages(desk, "Nope"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Messages of a missing folder: %v, want ErrNoFolder", err)
	}
	if err := s.Append(ctx, "stranger@demo.test", "INBOX", []byte("x")); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Append for a stranger: %v, want ErrUnknownUser", err)
	}
}

func TestRecreateMailboxChangesUIDValidity(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	if _, err := s.AppendWith(ctx, desk, "INBOX", []byte("Subject: a\r\n\r\na\r\n"), []imap.Flag{imap.FlagSeen}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, desk, "INBOX", []byte("Subject: b\r\n\r\nb\r\n")); err != nil {
		t.Fatal(err)
	}
	before, err := s.UIDValidity(desk, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	c := dialIMAP(t, s, desk, deskPass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	after, err := s.RecreateMailbox(desk, "INBOX")
	if err != nil {
		t.Fatalf("RecreateMailbox: %v", err)
	}
	if after <= before {
		t.Fatalf("UIDVALIDITY %d -> %d, want an increase", before, after)
	}
	select {
	case <-c.Closed():
	case <-time.After(2 * time.Second):
		t.Fatal("the selected session was not ended after the UIDVALIDITY change")
	}
	msgs, err := s.MessagesWithUID(desk, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !bytes.Contains(msgs[0].Raw, []byte("Subject: a")) || !msgs[0].InternalDate.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("messages after recreate = %+v", msgs)
	}
	if len(msgs[0].Flags) != 1 || msgs[0].Flags[0] != imap.FlagSeen {
		t.Errorf("flags after recreate = %v, want [\\Seen]", msgs[0].Flags)
	}
	c2 := dialIMAP(t, s, desk, deskPass, nil)
	sel, err := c2.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDValidity != after {
		t.Errorf("SELECT UIDVALIDITY = %d, want %d", sel.UIDValidity, after)
	}
}

func TestSTARTTLS(t *testing.T) {
	s := startServer(t, Options{STARTTLS: true})
	cfg := s.ClientTLSConfig()
	if cfg == nil {
		t.Fatal("ClientTLSConfig is nil with STARTTLS")
	}
	c, err := imapclient.DialStartTLS(s.IMAPAddr(), &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("imap STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login(desk, deskPass).Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}

	sc, err := smtp.DialStartTLS(s.SMTPAddr(), cfg)
	if err != nil {
		t.Fatalf("smtp STARTTLS: %v", err)
	}
	defer sc.Close()
	if err := sc.SendMail(alice, []string{desk}, strings.NewReader("Subject: tls\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("send over TLS: %v", err)
	}
	msgs, err := s.Messages(desk, "INBOX")
	if err != nil || len(msgs) != 1 || !bytes.Contains(msgs[0], []byte("with ESMTPS id")) {
		t.Fatalf("TLS delivery: %q, %v", msgs, err)
	}
	if startServer(t, Options{}).ClientTLSConfig() != nil {
		t.Error("ClientTLSConfig without STARTTLS is not nil")
	}
}

func TestListenOnlyOnLoopback(t *testing.T) {
	_, err := Start(context.Background(), Options{Users: map[string]string{desk: deskPass}, IMAPListen: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("Start on 0.0.0.0: %v, want a refusal", err)
	}
	s := startServer(t, Options{IMAPListen: "127.0.0.1:0", SMTPListen: "localhost:0"})
	if host, _, _ := net.SplitHostPort(s.SMTPAddr()); host != "127.0.0.1" {
		t.Errorf("SMTPAddr = %s, want 127.0.0.1", s.SMTPAddr())
	}
}

func BenchmarkSMTPDelivery(b *testing.B) {
	s, err := Start(context.Background(), Options{Users: map[string]string{desk: deskPass}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw := "From: alice@example.test\r\nSubject: bench\r\n\r\n" + strings.Repeat("line of text\r\n", 200)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := c.SendMail(alice, []string{desk}, strings.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
	if got := s.Accepted(); got < int64(b.N) {
		b.Fatalf("Accepted() = %d, want >= %d", got, b.N)
	}
}
