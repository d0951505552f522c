package e2e

import (
	"context"
	"io"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/mailin/parse"
	"github.com/deskd/deskd/mailout"
)

// checkAck checks the acknowledgement as alice's mailbox received it, after Postfix and Dovecot:
// the ticket key in the subject, threading under her message (RFC 5322 §3.6.4), the auto-reply
// markers of RFC 3834 §5 and the loop and suppression headers (DESIGN.md invariant 5), a
// Message-ID on the desk's domain, and a plus-address of the queue as Reply-To.
func checkAck(t *testing.T, ack *parse.Message, key, aliceID string) {
	t.Helper()
	if !strings.Contains(ack.Subject, "["+key+"]") {
		t.Errorf("ack subject %q lacks [%s]", ack.Subject, key)
	}
	// The local part of a msg-id is case-sensitive (RFC 5322 §3.6.4 with §3.4.1): the ack must quote
	// s-nail's mixed-case id exactly, or clients that match ids exactly lose the thread.
	if len(ack.InReplyTo) != 1 || ack.InReplyTo[0] != aliceID {
		t.Errorf("ack In-Reply-To %q, want alice's Message-ID %q exactly", ack.InReplyTo, aliceID)
	}
	if !slices.Contains(ack.References, aliceID) {
		t.Errorf("ack References %q lack alice's Message-ID %q", ack.References, aliceID)
	}
	for name, want := range map[string]string{
		"Auto-Submitted":           "auto-replied", // RFC 3834 §5
		"X-Auto-Response-Suppress": "All",
		"Precedence":               "bulk",
		mailout.LoopHeader:         deskDomain,
	} {
		if got := strings.TrimSpace(ack.Header.Get(name)); got != want {
			t.Errorf("ack %s: %q, want %q", name, got, want)
		}
	}
	if !strings.HasSuffix(ack.MessageID, "@"+deskDomain) {
		t.Errorf("ack Message-ID %q, want one on %s", ack.MessageID, deskDomain)
	}
	if ack.From == nil || !strings.EqualFold(ack.From.Address, supportAddr) {
		t.Errorf("ack From %v, want %s", ack.From, supportAddr)
	}
	if len(ack.To) != 1 || !strings.EqualFold(ack.To[0].Address, aliceAddr) {
		t.Errorf("ack To %v, want %s", ack.To, aliceAddr)
	}
	if len(ack.ReplyTo) != 1 || !isPlusAddressOf(ack.ReplyTo[0], supportAddr) {
		t.Errorf("ack Reply-To %v, want a plus-address of %s", ack.ReplyTo, supportAddr)
	}
	if len(ack.Header["Received"]) == 0 {
		t.Error("ack has no Received field: it did not come through Postfix and Dovecot")
	}
}

// isPlusAddressOf reports whether a is base with a "+detail" in its local part.
func isPlusAddressOf(a *mail.Address, base string) bool {
	local, domain, _ := strings.Cut(base, "@")
	l, d, ok := strings.Cut(strings.ToLower(a.Address), "@")
	return ok && d == domain && strings.HasPrefix(l, local+"+") && len(l) > len(local)+1
}

// checkReply checks that alice's s-nail reply is the ticket's second message with only its new
// text visible (s-nail's quote and attribution line stripped), threaded by the signed token in the
// acknowledgement's Message-ID that her In-Reply-To names.
func checkReply(t *testing.T, show ticketShow, replyText string) {
	t.Helper()
	m := show.Messages[1]
	if m.Direction != "in" || m.Visibility != "public" || m.Class != "normal" || !strings.EqualFold(m.From, aliceAddr) {
		t.Errorf("reply stored as direction %s, visibility %s, class %s, from %s; want in, public, normal, %s",
			m.Direction, m.Visibility, m.Class, m.From, aliceAddr)
	}
	visible := strings.TrimSpace(m.VisibleText)
	if visible != replyText {
		t.Errorf("reply visible text %q, want just %q", visible, replyText)
	}
	for _, line := range strings.Split(visible, "\n") {
		if strings.HasPrefix(line, ">") || strings.Contains(line, "wrote:") {
			t.Errorf("reply visible text keeps quoted history: %q", line)
		}
	}
	if !strings.Contains(m.ThreadReason, "signed token") || !strings.Contains(m.ThreadReason, "In-Reply-To") {
		t.Errorf("reply thread reason %q, want the signed token in In-Reply-To", m.ThreadReason)
	}
}

// checkMachineMail checks, after alice's two auto-replies were processed, that the one answering
// the ack is recorded on the ticket as internal machine mail, that the unthreaded one opened no
// ticket, and that neither caused any outbound mail (RFC 3834 §2; DESIGN.md invariant 5).
func checkMachineMail(t *testing.T, ctx context.Context, pool *pgxpool.Pool, bin, cfg, key string, outboxBefore int) {
	t.Helper()
	var show ticketShow
	deskdJSON(t, ctx, bin, cfg, &show, "ticket", "show", key, "--json")
	if len(show.Messages) != 3 {
		t.Fatalf("ticket %s has %d messages after the auto-reply, want 3: %+v", key, len(show.Messages), show.Messages)
	}
	if m := show.Messages[2]; m.Class != "autoreply" || m.Visibility != "internal" {
		t.Errorf("auto-reply stored as class %q, visibility %q; want autoreply, internal", m.Class, m.Visibility)
	}
	if n := countRows(t, ctx, pool, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets after the auto-replies, want 1 (an unthreaded auto-reply opens none)", n)
	}
	if n := countRows(t, ctx, pool, `SELECT count(*) FROM raw_mails WHERE state = 'ignored'`); n != 1 {
		t.Errorf("%d raw mails ignored, want the unthreaded auto-reply", n)
	}
	if n := countRows(t, ctx, pool, `SELECT count(*) FROM outbox`); n != outboxBefore {
		t.Errorf("outbox grew from %d to %d rows after auto-replies, want no mail to a machine", outboxBefore, n)
	}
	if n := countRows(t, ctx, pool, `SELECT count(*) FROM outbox WHERE kind = 'ack'`); n != 1 {
		t.Errorf("%d acks in the outbox, want 1", n)
	}
	if n := countRows(t, ctx, pool, `SELECT count(*) FROM outbox WHERE status <> 'sent'`); n != 0 {
		t.Errorf("%d outbox rows not sent, want 0", n)
	}
}

// checkMetrics checks that /metrics counted the ingested and ignored mail and the sent mail.
func checkMetrics(t *testing.T, httpAddr string) {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	for _, want := range []string{
		`deskd_mailin_messages_total{mailbox="support",outcome="ingested"} 3`,
		`deskd_mailin_messages_total{mailbox="support",outcome="ignored"} 1`,
		`deskd_mailout_messages_total{outcome="sent"} 3`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
