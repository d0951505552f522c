package mailout

import (
	"bytes"
	"mime"
	"net"
	"net/mail"
	"strconv"
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
	host, port, err := net.SplitHostPort(stack.Postfix.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cfg := config.SMTP{Host: host, Port: p, TLS: config.TLSOpportunistic, Auth: config.AuthNone, MaxConnections: 1, Timeout: 10 * time.Second}
	s := newTestSender(t, pool, ob, clk, cfg)

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

	c, err := imapclient.DialInsecure(stack.Dovecot.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v (%d messages)", err, len(msgs))
		}
		raw = msgs[0].FindBodySection(section)
		break
	}
	if raw == nil {
		t.Fatalf("nothing arrived in Dovecot within 20s\n--- postfix log:\n%s", stack.Postfix.Log())
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
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
