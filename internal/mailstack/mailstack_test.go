package mailstack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

const (
	deskAddr  = "desk@demo.test"
	deskPass  = "desk-secret"
	aliceAddr = "alice@example.test"
)

// watchInbox logs in as desk, selects INBOX and returns the client and a
// channel of unilateral EXISTS counts.
func watchInbox(t *testing.T, addr string) (*imapclient.Client, <-chan uint32) {
	t.Helper()
	exists := make(chan uint32, 16)
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatalf("dial dovecot imap: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(deskAddr, deskPass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select: %v", err)
	}
	return c, exists
}

// idleUntilExists idles until an EXISTS of at least want arrives.
func idleUntilExists(t *testing.T, c *imapclient.Client, exists <-chan uint32, want uint32, send func()) time.Duration {
	t.Helper()
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	start := time.Now()
	send()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case n := <-exists:
			if n < want {
				continue
			}
			took := time.Since(start)
			if err := idle.Close(); err != nil {
				t.Fatal(err)
			}
			if err := idle.Wait(); err != nil {
				t.Fatal(err)
			}
			return took
		case <-deadline:
			t.Fatalf("IDLE saw no EXISTS %d within 5 s", want)
		}
	}
}

func fetchRaw(t *testing.T, c *imapclient.Client, seq uint32) *mail.Message {
	t.Helper()
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch %d: %v", seq, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("fetch %d: %d messages", seq, len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].FindBodySection(section)))
	if err != nil {
		t.Fatalf("parse message %d: %v", seq, err)
	}
	return m
}

func body(t *testing.T, m *mail.Message) string {
	t.Helper()
	b, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func TestSNailThroughPostfixToDovecot(t *testing.T) {
	start := time.Now()
	st := StartStack(t, map[string]string{deskAddr: deskPass, aliceAddr: "alice-secret"})
	t.Logf("dovecot + postfix up in %v", time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, exists := watchInbox(t, st.Dovecot.IMAPAddr())
	took := idleUntilExists(t, c, exists, 1, func() {
		err := SendWithSNail(ctx, st.Postfix.SMTPAddr(), "Alice Example <alice@example.test>", "desk+it@demo.test",
			"Printer broken", "Hello desk,\nthe printer on floor 2 is broken.\nGrüße\n", "X-Ticket-Test: yes")
		if err != nil {
			t.Fatalf("SendWithSNail: %v", err)
		}
	})
	t.Logf("IDLE EXISTS %v after s-nail started sending", took)

	m := fetchRaw(t, c, 1)
	h := m.Header
	for name, want := range map[string]string{
		"Subject":       "Printer broken",
		"To":            "desk+it@demo.test",
		"Delivered-To":  "desk+it@demo.test",
		"Return-Path":   "<alice@example.test>",
		"X-Ticket-Test": "yes",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != aliceAddr || from[0].Name != "Alice Example" {
		t.Errorf("From = %v, %v", from, err)
	}
	if id := h.Get("Message-ID"); !strings.HasSuffix(id, "@example.test>") {
		t.Errorf("Message-ID = %q, want one made by s-nail at example.test", id)
	}
	if ua := h.Get("User-Agent"); !strings.HasPrefix(ua, "s-nail") {
		t.Errorf("User-Agent = %q", ua)
	}
	if rcv := h["Received"]; len(rcv) < 2 || !strings.Contains(strings.Join(rcv, "\n"), "(Postfix)") || !strings.Contains(rcv[0], "LMTP") {
		t.Errorf("Received = %q, want Dovecot's LMTP line over Postfix's", rcv)
	}
	if _, err := mail.ParseDate(h.Get("Date")); err != nil {
		t.Errorf("Date: %v", err)
	}
	if ct := h.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "utf-8") {
		t.Errorf("Content-Type = %q, want a UTF-8 body", ct)
	}
	if b := body(t, m); !strings.Contains(b, "floor 2 is broken") {
		t.Errorf("body = %q", b)
	}

	// The desk's acknowledgement lands in Alice's mailbox (delivered
	// straight over LMTP), and Alice replies to it with s-nail.
	ack := "From: IT Desk <desk@demo.test>\r\n" +
		"To: Alice Example <alice@example.test>\r\n" +
		"Reply-To: desk+t.abc123@demo.test\r\n" +
		"Subject: [SD-1] Printer broken\r\n" +
		"Message-ID: <sd-1.ack@demo.test>\r\n" +
		"In-Reply-To: " + h.Get("Message-ID") + "\r\n" +
		"References: " + h.Get("Message-ID") + "\r\n" +
		"Date: Tue, 24 Nov 2026 08:00:00 +0000\r\n" +
		"\r\n" +
		"We got your request.\r\n\r\nFrom now on it is ticket SD-1.\r\n"
	if err := st.Dovecot.Deliver(ctx, aliceAddr, []byte(ack)); err != nil {
		t.Fatalf("Deliver ack: %v", err)
	}
	idleUntilExists(t, c, exists, 2, func() {
		if err := ReplyWithSNail(ctx, st.Postfix.SMTPAddr(), "Alice Example <alice@example.test>", []byte(ack), "Thanks, it works now.\n"); err != nil {
			t.Fatalf("ReplyWithSNail: %v", err)
		}
	})
	r := fetchRaw(t, c, 2)
	rh := r.Header
	if got := rh.Get("Subject"); got != "Re: [SD-1] Printer broken" {
		t.Errorf("reply Subject = %q", got)
	}
	if got := rh.Get("To"); got != "desk+t.abc123@demo.test" {
		t.Errorf("reply To = %q, want the Reply-To address", got)
	}
	if got := rh.Get("In-Reply-To"); got != "<sd-1.ack@demo.test>" {
		t.Errorf("In-Reply-To = %q", got)
	}
	if got := rh.Get("References"); got != h.Get("Message-ID")+" <sd-1.ack@demo.test>" {
		t.Errorf("References = %q", got)
	}
	rb := body(t, r)
	if !strings.Contains(rb, "> We got your request.\n> \n> From now on it is ticket SD-1.") || !strings.Contains(rb, "Thanks, it works now.") {
		t.Errorf("reply body = %q, want the quoted original and the reply", rb)
	}
	if !strings.Contains(rb, "wrote:") {
		t.Errorf("reply body has no attribution line: %q", rb)
	}
}

func TestSNailReportsRefusal(t *testing.T) {
	st := StartStack(t, map[string]string{deskAddr: deskPass})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := SendWithSNail(ctx, st.Postfix.SMTPAddr(), deskAddr, "someone@elsewhere.test", "x", "y\n")
	t.Logf("s-nail refused after %v: %v", time.Since(start), err)
	if err == nil {
		t.Fatal("relaying to a foreign domain succeeded; the instance must not relay")
	}
	if !strings.Contains(err.Error(), "554") && !strings.Contains(strings.ToLower(err.Error()), "relay") {
		t.Errorf("error = %v, want Postfix's relay refusal", err)
	}

	err = st.Dovecot.Deliver(ctx, "nobody@demo.test", []byte("Subject: x\r\n\r\ny\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("LMTP delivery to an unknown user: %v, want 550", err)
	}
}

func TestMboxFileEscapesOnlySeparatorLines(t *testing.T) {
	got := string(mboxFile([]byte("Subject: x\r\n\r\nFrom here\r\nFrom a@b Thu Jan  1 00:00:00 1970\r\nnot From\r\n")))
	want := "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: x\n\nFrom here\n>From a@b Thu Jan  1 00:00:00 1970\nnot From\n\n"
	if got != want {
		t.Errorf("mboxFile =\n%q\nwant\n%q", got, want)
	}
}

func TestAvailableNamesInstallHint(t *testing.T) {
	saved := snailBin
	snailBin = "/nonexistent/s-nail"
	defer func() { snailBin = saved }()
	err := Available()
	if err == nil || !strings.Contains(err.Error(), "install-mailstack.sh") {
		t.Fatalf("Available() = %v, want the install hint", err)
	}
}
