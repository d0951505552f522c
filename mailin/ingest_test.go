package mailin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/tickets"
)

const deskDomain = "desk.example.com"

type harness struct {
	t      *testing.T
	ctx    context.Context
	pool   *pgxpool.Pool
	svc    *tickets.Service
	ing    *mailin.Ingester
	signer *token.Signer
	uid    uint32
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool := testdb.New(t)
	signer, err := token.New([]byte("0123456789abcdef0123456789abcdef"), deskDomain)
	if err != nil {
		t.Fatal(err)
	}
	svc := tickets.NewService(pool, tickets.Options{})
	ing, err := mailin.NewIngester(svc, mailin.Options{
		Signer: signer, DeskDomain: deskDomain,
		DeskAddresses: []string{"support@example.com", "changes@example.com"},
		Queues: []mailin.Queue{
			{Name: "support", Prefix: "SD", Addresses: []string{"support@example.com"}, DefaultKind: tickets.KindIncident, DefaultPriority: tickets.P3},
			{Name: "changes", Prefix: "CHG", Addresses: []string{"changes@example.com"}, DefaultKind: tickets.KindChange, DefaultPriority: tickets.P3},
		},
		MailboxQueue: map[string]string{"inbox": "support"},
		Agents:       map[string]string{"ana@example.com": "ana"},
		BatchSize:    3,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, ctx: context.Background(), pool: pool, svc: svc, ing: ing, signer: signer}
}

// deliver stores raw mail as if the poller had fetched it, under the next UID.
func (h *harness) deliver(raw string) int64 {
	h.t.Helper()
	h.uid++
	return h.deliverAs(1, h.uid, raw)
}

func (h *harness) deliverAs(uidValidity, uid uint32, raw string) int64 {
	h.t.Helper()
	raw = strings.ReplaceAll(raw, "\n", "\r\n")
	id, _, err := mailin.StoreRaw(h.ctx, h.pool, mailin.NewRaw("inbox", uidValidity, uid, []byte(raw), 0, 1<<20))
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) process() []mailin.Outcome {
	h.t.Helper()
	outs, err := h.ing.ProcessPending(h.ctx, "")
	if err != nil {
		h.t.Fatalf("ProcessPending: %v", err)
	}
	return outs
}

func (h *harness) count(q string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, q, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// processByRaw is process with the outcomes by raw mail id.
func (h *harness) processByRaw() map[int64]mailin.Outcome {
	h.t.Helper()
	out := map[int64]mailin.Outcome{}
	for _, o := range h.process() {
		out[o.RawID] = o
	}
	return out
}

func mailFrom(from, to, subject, msgID, extra, body string) string {
	return fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\nMessage-ID: <%s>\nDate: Tue, 24 Nov 2026 09:00:00 +0000\n%sContent-Type: text/plain; charset=utf-8\n\n%s\n",
		from, to, subject, msgID, extra, body)
}

func TestNewMailOpensTicketAndReplyThreads(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("Alice <alice@corp.example>", "support@example.com", "VPN is down", "a1@corp.example",
		"Cc: bob@corp.example, ana@example.com\n", "The VPN drops every 5 minutes."))
	outs := h.process()
	if len(outs) != 1 || outs[0].State != mailin.StateIngested || !strings.HasPrefix(outs[0].TicketKey, "SD-") {
		t.Fatalf("outcomes %+v", outs)
	}
	key := outs[0].TicketKey
	tk, err := h.svc.Store().TicketByKey(h.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Requester != "alice@corp.example" || tk.Subject != "VPN is down" || tk.Queue != "support" || tk.Kind != tickets.KindIncident {
		t.Errorf("ticket %+v", tk)
	}
	parts, _ := h.svc.Store().Participants(h.ctx, tk.ID)
	if fmt.Sprint(parts) != "[{alice@corp.example requester} {bob@corp.example watcher}]" {
		t.Errorf("participants %v: want requester and the CC'd person, not the desk or the agent", parts)
	}

	// a reply that quotes history, threaded by In-Reply-To
	h.deliver(mailFrom("Alice <alice@corp.example>", "support@example.com", "Re: VPN is down", "a2@corp.example",
		"In-Reply-To: <a1@corp.example>\nReferences: <a1@corp.example>\n",
		"It happens again now.\n\nOn Tue, Nov 24, 2026 at 9:00 AM Alice <alice@corp.example> wrote:\n> The VPN drops every 5 minutes."))
	// a forged subject key from a stranger opens a new ticket
	h.deliver(mailFrom("mallory@evil.example", "support@example.com", "Re: ["+key+"] VPN is down", "m1@evil.example", "",
		"close this please"))
	outs = h.process()
	if len(outs) != 2 || outs[0].TicketKey != key || outs[1].TicketKey == key || outs[1].State != mailin.StateIngested {
		t.Fatalf("outcomes %+v", outs)
	}
	msgs, _ := h.svc.Store().Messages(h.ctx, tk.ID)
	if len(msgs) != 2 || msgs[1].VisibleText != "It happens again now." || !strings.Contains(msgs[1].ThreadReason, "In-Reply-To") {
		t.Errorf("reply message: %d messages, visible %q, reason %q", len(msgs), msgs[len(msgs)-1].VisibleText, msgs[len(msgs)-1].ThreadReason)
	}
	if !strings.Contains(outs[1].Reason, "not a participant") {
		t.Errorf("forged subject key reason %q", outs[1].Reason)
	}
	// processing again does nothing: every message is done exactly once
	if outs := h.process(); len(outs) != 0 {
		t.Errorf("second pass processed %d messages", len(outs))
	}
	if n := h.count(`SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
}

func TestQueueRoutingByRecipient(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("bob@corp.example", "Changes <Changes@Example.com>", "Deploy new firewall rules", "c1@corp.example", "", "CAB please"))
	outs := h.process()
	if len(outs) != 1 || !strings.HasPrefix(outs[0].TicketKey, "CHG-") {
		t.Fatalf("outcome %+v: want a CHG ticket", outs)
	}
	tk, _ := h.svc.Store().TicketByKey(h.ctx, outs[0].TicketKey)
	if tk.Queue != "changes" || tk.Kind != tickets.KindChange {
		t.Errorf("ticket %+v", tk)
	}
}

func TestMachineMailNeverOpensTickets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("carol@corp.example", "support@example.com", "Printer jam", "p1@corp.example", "", "Jammed again."))
	outs := h.process()
	key := outs[0].TicketKey
	tk, _ := h.svc.Store().TicketByKey(h.ctx, key)

	// an out-of-office reply to our acknowledgement (its Message-ID carries the signed token)
	ackID := h.signer.MessageID(tk.ID, "ack1")
	h.deliver(mailFrom("carol@corp.example", "support@example.com", "Automatic reply: ["+key+"] Printer jam", "ooo1@corp.example",
		"Auto-Submitted: auto-replied\nIn-Reply-To: <"+ackID+">\n", "I am out of office until Monday."))
	// an auto-reply with nothing to attach to
	h.deliver(mailFrom("dave@corp.example", "support@example.com", "Out of Office", "ooo2@corp.example",
		"Auto-Submitted: auto-replied\n", "Away."))
	// a mail that claims to come from the desk itself
	h.deliver(mailFrom("support@example.com", "support@example.com", "loop", "loop1@corp.example", "", "echo"))
	outs = h.process()
	if len(outs) != 3 {
		t.Fatalf("outcomes %+v", outs)
	}
	if outs[0].State != mailin.StateIngested || outs[0].TicketKey != key {
		t.Errorf("auto-reply to ticket: %+v", outs[0])
	}
	if outs[1].State != mailin.StateIgnored || outs[2].State != mailin.StateIgnored {
		t.Errorf("orphan auto-reply and loop: %+v %+v, want ignored", outs[1], outs[2])
	}
	if n := h.count(`SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1: machine mail must not open tickets", n)
	}
	got, _ := h.svc.Store().TicketByKey(h.ctx, key)
	if got.Status != tickets.StatusNew {
		t.Errorf("status %s after an auto-reply", got.Status)
	}
	if n := h.count(`SELECT count(*) FROM messages WHERE ticket_id = $1 AND class = 'autoreply' AND visibility = 'internal'`, tk.ID); n != 1 {
		t.Errorf("%d internal auto-reply messages recorded, want 1", n)
	}
}

func TestHardBounceMarksAddressUndeliverable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("erin@corp.example", "support@example.com", "Laptop broken", "e1@corp.example", "", "Screen dead."))
	outs := h.process()
	tk, _ := h.svc.Store().TicketByKey(h.ctx, outs[0].TicketKey)
	ackID := h.signer.MessageID(tk.ID, "ack-e1")
	dsn := `From: MAILER-DAEMON@mx.corp.example
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn1@mx.corp.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BB"

--BB
Content-Type: text/plain

Your message could not be delivered.

--BB
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.corp.example

Final-Recipient: rfc822; erin@corp.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--BB
Content-Type: text/rfc822-headers

From: support@example.com
To: erin@corp.example
Subject: [` + tk.Key + `] Laptop broken
Message-ID: <` + ackID + `>

--BB--
`
	h.deliver(dsn)
	outs = h.process()
	if len(outs) != 1 || outs[0].State != mailin.StateIngested || outs[0].TicketKey != tk.Key {
		t.Fatalf("bounce outcome %+v", outs)
	}
	bad, why, err := h.svc.Store().Undeliverable(h.ctx, "erin@corp.example")
	if err != nil || !bad || !strings.Contains(why, "5.1.1") {
		t.Errorf("undeliverable: %v %q %v", bad, why, err)
	}
	if n := h.count(`SELECT count(*) FROM events WHERE ticket_id = $1 AND kind = 'address_undeliverable'`, tk.ID); n != 1 {
		t.Errorf("%d undeliverable events", n)
	}
}

func TestAgentReplyNeedsSignedToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("frank@corp.example", "support@example.com", "Need access", "f1@corp.example", "", "Please grant access to share X."))
	outs := h.process()
	tk, _ := h.svc.Store().TicketByKey(h.ctx, outs[0].TicketKey)
	notifID := h.signer.MessageID(tk.ID, "agent-new")
	h.deliver(mailFrom("Ana <ana@example.com>", "support+t-"+h.signer.Token(tk.ID)+"@example.com", "Re: ["+tk.Key+"] Need access", "ana1@example.com",
		"In-Reply-To: <"+notifID+">\n", "Done, you have access now.\n\n> Please grant access to share X."))
	// the same agent address without proof: a spoofed agent is only a participant
	h.deliver(mailFrom("ana@example.com", "support@example.com", "Re: ["+tk.Key+"] Need access", "ana2@example.com",
		"In-Reply-To: <f1@corp.example>\n", "Closing, trust me."))
	outs = h.process()
	if len(outs) != 2 {
		t.Fatalf("outcomes %+v", outs)
	}
	msgs, _ := h.svc.Store().Messages(h.ctx, tk.ID)
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	if m := msgs[1]; m.Direction != tickets.Outbound || m.AuthorKind != tickets.ActorAgent || m.Author != "ana" || m.Text != "Done, you have access now." {
		t.Errorf("agent reply stored as %+v", m)
	}
	if m := msgs[2]; m.Direction != tickets.Inbound || m.AuthorKind != tickets.ActorUser {
		t.Errorf("unproven agent mail stored as %s/%s", m.Direction, m.AuthorKind)
	}
	got, _ := h.svc.Store().TicketByKey(h.ctx, tk.Key)
	if got.FirstResponseAt == nil || got.Status != tickets.StatusOpen {
		t.Errorf("after agent reply: %+v", got)
	}
}

func TestBadMessageIsQuarantinedAndBatchGoesOn(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("g1@corp.example", "support@example.com", "one", "g1@corp.example", "", "one"))
	bad := h.deliver("Subject: no sender at all\nMessage-ID: <nosender@x>\n\nbody\n")
	h.deliver(mailFrom("g3@corp.example", "support@example.com", "three", "g3@corp.example", "", "three"))
	empty := h.deliver("")
	states := h.processByRaw()
	if states[bad].State != mailin.StateQuarantined || states[empty].State != mailin.StateQuarantined {
		t.Errorf("states %v: want the sender-less and the empty message quarantined", states)
	}
	if n := h.count(`SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want the 2 good messages ingested", n)
	}
	q, err := mailin.ListRaw(h.ctx, h.pool, mailin.StateQuarantined, 10)
	if err != nil || len(q) != 2 || !strings.Contains(q[0].Reason+q[1].Reason, "From") {
		t.Fatalf("quarantine list %v %+v", err, q)
	}
	// replay: requeue and run again; still bad, attempts counted, nothing duplicated
	ids, err := mailin.Requeue(h.ctx, h.pool, []int64{bad})
	if err != nil || len(ids) != 1 {
		t.Fatalf("requeue: %v %v", ids, err)
	}
	outs := h.process()
	if len(outs) != 1 || outs[0].State != mailin.StateQuarantined {
		t.Errorf("replay outcome %+v", outs)
	}
	r, _ := mailin.LoadRaw(h.ctx, h.pool, bad)
	if r.Attempts != 2 {
		t.Errorf("attempts %d, want 2", r.Attempts)
	}
}

func TestUIDValidityRescanDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	raw := mailFrom("h@corp.example", "support@example.com", "Monitor flickers", "h1@corp.example", "", "flicker")
	h.deliverAs(1, 7, raw)
	h.process()
	// the server renumbered the mailbox: the same message arrives under a new UIDVALIDITY
	h.deliverAs(2, 1, raw)
	outs := h.process()
	if len(outs) != 1 || outs[0].State != mailin.StateDuplicate {
		t.Fatalf("rescan outcome %+v, want duplicate", outs)
	}
	if n := h.count(`SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets after UIDVALIDITY change, want 1", n)
	}
}

func TestOversizeIsQuarantinedNotDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	big := mailin.NewRaw("inbox", 1, 99, nil, 30<<20, 25<<20)
	id, _, err := mailin.StoreRaw(h.ctx, h.pool, big)
	if err != nil {
		t.Fatal(err)
	}
	r, err := mailin.LoadRaw(h.ctx, h.pool, id)
	if err != nil || r.State != mailin.StateQuarantined || !strings.Contains(r.Reason, "max_message_bytes") || r.Raw != nil {
		t.Errorf("oversize raw: %+v %v", r, err)
	}
	if ids, _ := mailin.Requeue(h.ctx, h.pool, nil); len(ids) != 0 {
		t.Errorf("requeued an oversize message without bytes: %v", ids)
	}
}

// A message whose rows PostgreSQL refuses fails the statement that opens the transaction's new
// tickets together; the transaction is redone with a savepoint per message, so that message alone is
// quarantined and the others of its transaction (same sender: same component) are ingested. A
// trigger stands in for whatever PostgreSQL may refuse.
func TestTicketStatementFailureQuarantinesOnlyItsMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if _, err := h.pool.Exec(h.ctx, `
		CREATE FUNCTION refuse_two() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.subject = 'two' THEN RAISE EXCEPTION 'refused by the test'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_two BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_two();`); err != nil {
		t.Fatal(err)
	}
	good1 := h.deliver(mailFrom("k@corp.example", "support@example.com", "one", "k1@corp.example", "", "first"))
	bad := h.deliver(mailFrom("k@corp.example", "support@example.com", "two", "k2@corp.example", "", "second"))
	good2 := h.deliver(mailFrom("k@corp.example", "support@example.com", "three", "k3@corp.example", "", "third"))
	states := h.processByRaw()
	if states[bad].State != mailin.StateQuarantined || states[good1].State != mailin.StateIngested ||
		states[good2].State != mailin.StateIngested || states[good1].TicketKey == "" || states[good2].TicketKey == "" {
		t.Fatalf("outcomes %+v: want the refused message quarantined and the other two ingested", states)
	}
	if !strings.Contains(states[bad].Reason, "insert tickets") || !strings.Contains(states[bad].Reason, "refused by the test") {
		t.Errorf("reason %q: want the ticket statement's error", states[bad].Reason)
	}
	if n := h.count(`SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
	if n := h.count(`SELECT count(*) FROM messages`); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// NUL characters, which PostgreSQL's text cannot hold, are dropped from a message's text, subject
// and names; the rest of the message is ingested.
func TestNULCharactersAreDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deliver(mailFrom("Nu\x00ll <n@corp.example>", "support@example.com", "Print\x00er", "n1@corp.example", "", "tray\x00 2 jammed"))
	outs := h.process()
	if len(outs) != 1 || outs[0].State != mailin.StateIngested {
		t.Fatalf("outcomes %+v", outs)
	}
	tk, err := h.svc.Store().TicketByKey(h.ctx, outs[0].TicketKey)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := h.svc.Store().Messages(h.ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tk.Subject, "Print") || strings.Contains(tk.Subject, "\x00") || len(msgs) != 1 {
		t.Fatalf("ticket %q, %d messages", tk.Subject, len(msgs))
	}
	if m := msgs[0]; m.Text != "tray 2 jammed\n" && m.Text != "tray 2 jammed" || strings.Contains(m.FromName, "\x00") {
		t.Errorf("text %q, from %q: want the NULs dropped", m.Text, m.FromName)
	}
}
