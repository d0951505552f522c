package mailout

import (
	"bytes"
	"crypto/tls"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/mailstack"
)

// TestInteropPostfixDovecot sends through a private Postfix into Dovecot and reads the mail back
// over IMAP: the headers must survive a real MTA and delivery agent unchanged. It skips when the
// mail stack is not installed, and fails then under CI=true (mailstack.Require).
func TestInteropPostfixDovecot(t *testing.T) {
	t.Parallel()
	const user, pass = "zoe@example.net", "zoe-secret"
	stack := mailstack.StartStack(t, map[string]string{user: pass})
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	s := newTestSender(t, pool, ob, clk, smtpTo(t, stack.Postfix.SMTPAddr(), config.TLSOpportunistic))

	ticket := seedTicket(t, pool, user)
	m := ackMail("ack:interop", ticket, user)
	m.From.Name = "Służba Techniczna — Desk"
	m.To[0].Name = "Zoë Ærøskøbing"
	m.Subject = "[SD-1042] Drucker brennt — Büro"
	m.References = []string{"<root@client.example.net>"}
	m.Text = "Grüße\n" + strings.Repeat("lang ", 40) + "\n"
	id, _ := enqueue(t, pool, ob, m)
	if n := runOnce(t, s); n != 1 {
		t.Fatalf("Postfix accepted %d mails, want 1; row %+v", n, readRow(t, pool, id))
	}
	row := readRow(t, pool, id)

	h := delivered(t, stack, user, pass, 1).Header
	if got := strings.Trim(h.Get("Message-Id"), "<>"); got != row.MessageID {
		t.Errorf("Message-ID %q, stored %q", got, row.MessageID)
	}
	if got, err := testSigner(t).TicketFromMessageID(h.Get("Message-Id")); err != nil || got != ticket {
		t.Errorf("Message-ID token: ticket %d (%v), want %d", got, err, ticket)
	}
	for k, v := range map[string]string{
		"In-Reply-To":              "<orig-1@client.example.net>",
		"References":               "<root@client.example.net> <orig-1@client.example.net>",
		"Auto-Submitted":           "auto-replied",
		"X-Auto-Response-Suppress": "All",
		"Precedence":               "bulk",
		LoopHeader:                 testDomain,
	} {
		if got := unfold(h.Get(k)); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	dec := new(mime.WordDecoder)
	if subj, _ := dec.DecodeHeader(h.Get("Subject")); subj != "[SD-1042] Drucker brennt — Büro" {
		t.Errorf("Subject %q", subj)
	}
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Name != "Służba Techniczna — Desk" {
		t.Errorf("From %q: %v %v", h.Get("From"), from, err)
	}
	if rp := h.Get("Return-Path"); !strings.Contains(rp, "support+t-") {
		t.Errorf("Return-Path %q, want the signed envelope sender", rp)
	}
}

// delivered waits up to 20 s for message seq of user's Dovecot INBOX and returns it parsed.
func delivered(t *testing.T, stack *mailstack.Stack, user, pass string, seq uint32) *mail.Message {
	t.Helper()
	c, err := imapclient.DialInsecure(stack.Dovecot.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages < seq {
			continue
		}
		section := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v (%d messages)", err, len(msgs))
		}
		msg, err := mail.ReadMessage(bytes.NewReader(msgs[0].FindBodySection(section)))
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	t.Fatalf("message %d did not arrive in Dovecot within 20s\n--- postfix log:\n%s", seq, stack.Postfix.Log())
	return nil
}

// TestInteropPostfixTLS sends through a real Postfix over implicit TLS (SMTPS, RFC 8314 §3) and over
// mandatory STARTTLS (RFC 3207), verifying Postfix's certificate, and reads the mail back from
// Dovecot with Postfix's record of the TLS session in its Received field. A certificate the sender
// does not trust is refused before any mail is sent, and the mail stays queued for a retry.
func TestInteropPostfixTLS(t *testing.T) {
	t.Parallel()
	const user, pass = "yann@example.net", "yann-secret"
	stack := mailstack.StartStackTLS(t, map[string]string{user: pass})
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	sender := func(addr, mode string, tlsConf *tls.Config) *Sender {
		return newTestSenderTLS(t, pool, ob, clk, smtpTo(t, addr, mode), tlsConf)
	}
	for i, tc := range []struct{ name, addr, mode string }{
		{"implicit", stack.Postfix.SMTPSAddr(), config.TLSImplicit},
		{"starttls", stack.Postfix.SMTPAddr(), config.TLSStartTLS},
	} {
		m := ackMail("ack:tls-"+tc.name, seedTicket(t, pool, user), user)
		m.Subject = "[SD-1042] sent with " + tc.name
		id, _ := enqueue(t, pool, ob, m)
		if n := runOnce(t, sender(tc.addr, tc.mode, stack.TLS.ClientConfig())); n != 1 {
			t.Fatalf("%s: Postfix accepted %d mails, want 1; row %+v\n--- postfix log:\n%s", tc.name, n, readRow(t, pool, id), stack.Postfix.Log())
		}
		msg := delivered(t, stack, user, pass, uint32(i+1))
		if got := msg.Header.Get("Subject"); got != m.Subject {
			t.Errorf("%s: message %d has subject %q, want %q", tc.name, i+1, got, m.Subject)
		}
		tlsSeen := false
		for _, r := range msg.Header["Received"] {
			r = unfold(r)
			// RFC 3848: ESMTPS, or UTF8SMTPS (RFC 6531) with SMTPUTF8; Postfix adds the TLS version.
			tlsSeen = tlsSeen || (strings.Contains(r, "using TLSv1.") &&
				(strings.Contains(r, "(Postfix) with ESMTPS") || strings.Contains(r, "(Postfix) with UTF8SMTPS")))
		}
		if !tlsSeen {
			t.Errorf("%s: no Received field of Postfix records a TLS session: %q", tc.name, msg.Header["Received"])
		}
	}

	m := ackMail("ack:tls-untrusted", seedTicket(t, pool, user), user)
	id, _ := enqueue(t, pool, ob, m)
	if n := runOnce(t, sender(stack.Postfix.SMTPSAddr(), config.TLSImplicit, nil)); n != 0 {
		t.Fatalf("sent %d mails to a server whose certificate is not trusted, want 0", n)
	}
	if row := readRow(t, pool, id); row.Status != "pending" || !strings.Contains(row.LastError, "certificate") {
		t.Errorf("after an untrusted certificate: status %q, last error %q; want pending with the certificate named", row.Status, row.LastError)
	}
}
