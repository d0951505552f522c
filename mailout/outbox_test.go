package mailout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestEnqueueIdempotent(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	ticket := seedTicket(t, pool, "zoe@example.net")

	id1, queued1 := enqueue(t, pool, ob, ackMail("ack:1", ticket, "zoe@example.net"))
	clk.Advance(1)
	id2, queued2 := enqueue(t, pool, ob, ackMail("ack:1", ticket, "zoe@example.net"))
	if !queued1 || queued2 || id1 != id2 {
		t.Fatalf("enqueue twice: (%d, %v), (%d, %v); want one queued row", id1, queued1, id2, queued2)
	}
	if n := countRows(t, pool, `SELECT count(*) FROM outbox`); n != 1 {
		t.Fatalf("%d outbox rows, want 1", n)
	}

	row := readRow(t, pool, id1)
	signer := testSigner(t)
	if got, err := signer.TicketFromMessageID(row.MessageID); err != nil || got != ticket {
		t.Errorf("Message-ID %q carries ticket %d (%v), want %d", row.MessageID, got, err, ticket)
	}
	var raw []byte
	var mailFrom string
	if err := pool.QueryRow(context.Background(), `SELECT raw, mail_from FROM outbox WHERE id = $1`, id1).Scan(&raw, &mailFrom); err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Message-Id"); got != "<"+row.MessageID+">" {
		t.Errorf("rendered Message-ID %q, stored %q", got, row.MessageID)
	}
	if got, err := signer.TicketFromAddress(mailFrom); err != nil || got != ticket {
		t.Errorf("envelope sender %q carries ticket %d (%v), want %d", mailFrom, got, err, ticket)
	}
	if got, err := signer.TicketFromAddress(msg.Header.Get("Reply-To")); err != nil || got != ticket {
		t.Errorf("Reply-To %q carries ticket %d (%v), want %d", msg.Header.Get("Reply-To"), got, err, ticket)
	}

	// The Message-ID is a function of the key: a replayed use case reproduces it.
	if ob.messageID(ackMail("ack:1", ticket, "x@example.net")) != row.MessageID {
		t.Error("Message-ID not stable for one idempotency key")
	}
	if ob.messageID(ackMail("ack:2", ticket, "zoe@example.net")) == row.MessageID {
		t.Error("two keys share a Message-ID")
	}
}

func TestEnqueueConcurrentSameKey(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	ob := newTestOutbox(t, newClock(), testLimits())
	ticket := seedTicket(t, pool, "zoe@example.net")
	const n = 8
	var wg sync.WaitGroup
	ids := make([]int64, n)
	queued := make([]bool, n)
	for i := range n {
		wg.Go(func() { ids[i], queued[i] = enqueue(t, pool, ob, ackMail("ack:race", ticket, "zoe@example.net")) })
	}
	wg.Wait()
	q := 0
	for i := range n {
		if ids[i] != ids[0] {
			t.Errorf("ids differ: %v", ids)
		}
		if queued[i] {
			q++
		}
	}
	if q != 1 || countRows(t, pool, `SELECT count(*) FROM outbox`) != 1 {
		t.Errorf("%d callers queued, %d rows; want exactly one", q, countRows(t, pool, `SELECT count(*) FROM outbox`))
	}
}

func TestEnqueueRollsBackWithCaller(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	ob := newTestOutbox(t, newClock(), testLimits())
	ticket := seedTicket(t, pool, "zoe@example.net")
	boom := errors.New("use case failed")
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		if _, _, err := ob.Enqueue(context.Background(), tx, ackMail("ack:rb", ticket, "zoe@example.net")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if n := countRows(t, pool, `SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("%d outbox rows after rollback, want 0", n)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	ob := newTestOutbox(t, newClock(), testLimits())
	bad := []Mail{
		{Kind: "ack", From: Address{Email: queueAddr}, To: []Address{{Email: "a@x.example"}}},
		{IdempotencyKey: "k", From: Address{Email: queueAddr}, To: []Address{{Email: "a@x.example"}}},
		{IdempotencyKey: "k", Kind: "ack", From: Address{Email: queueAddr}},
		{IdempotencyKey: "k", Kind: "ack", From: Address{Email: queueAddr}, To: []Address{{Email: "a@x.example>\r\nBcc: b@x"}}},
		{IdempotencyKey: "k", Kind: "ack", From: Address{Email: queueAddr}, To: []Address{{Email: "a@x.example"}}, AutoSubmitted: "yes"},
	}
	for i, m := range bad {
		err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
			_, _, err := ob.Enqueue(context.Background(), tx, m)
			return err
		})
		if !errors.Is(err, ErrInvalidMail) {
			t.Errorf("mail %d: err = %v, want ErrInvalidMail", i, err)
		}
	}
}

// TestEnqueueManyMatchesOneByOne enqueues one mixed sequence twice, on two databases: mail by mail,
// each in its own transaction, and all at once with EnqueueMany in one transaction. The batch must
// decide exactly as the sequence does (each mail counting against the limits of the later ones) and
// write the same rows and events.
func TestEnqueueManyMatchesOneByOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	limits := testLimits()
	limits.PerTicketPerHour = 3
	limits.PerRecipientPerHour = 4
	limits.GlobalPerHour = 9

	type result struct {
		key, status, lastError string
		rcpt                   []string
		queued                 bool
	}
	run := func(batch bool) ([]result, []string, int) {
		pool := newDB(t)
		ob := newTestOutbox(t, newClock(), limits)
		t1 := seedTicket(t, pool, "zoe@example.net")
		t2 := seedTicket(t, pool, "max@example.net")
		enqueue(t, pool, ob, ackMail("existing", t2, "max@example.net"))
		var ms []Mail
		for i := range 5 { // the ticket limit trips at the fourth
			m := ackMail(fmt.Sprintf("status:%d", i), t1, "zoe@example.net")
			m.AutoSubmitted = AutoGenerated
			ms = append(ms, m)
		}
		for i := range 4 { // max: one already, the limit drops the last
			m := ackMail(fmt.Sprintf("new:%d", i), t2, "max@example.net")
			m.NewTicket = true
			m.To = append(m.To, Address{Email: queueAddr})
			ms = append(ms, m)
		}
		human := ackMail("human", t1, "zoe@example.net")
		human.AutoSubmitted = ""
		ms = append(ms, human, ackMail("existing", t2, "max@example.net"), ackMail("new:0", t2, "max@example.net"))
		for i := range 3 { // over the global limit by now
			m := ackMail(fmt.Sprintf("other:%d", i), t2, fmt.Sprintf("o%d@example.net", i))
			m.NewTicket = true
			ms = append(ms, m)
		}
		var res []Enqueued
		if batch {
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				var err error
				res, err = ob.EnqueueMany(ctx, tx, ms)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, m := range ms {
				id, q := enqueue(t, pool, ob, m)
				res = append(res, Enqueued{ID: id, Queued: q})
			}
		}
		var out []result
		for i, r := range res {
			row := readRow(t, pool, r.ID)
			out = append(out, result{key: ms[i].IdempotencyKey, status: row.Status, lastError: row.LastError, rcpt: row.RcptTo, queued: r.Queued})
		}
		var events []string
		for _, tk := range []int64{t1, t2} {
			for _, kind := range []string{"mail_suppressed", "loop_detected"} {
				for _, why := range eventKinds(t, pool, tk, kind) {
					events = append(events, kind+": "+why)
				}
			}
		}
		return out, events, countRows(t, pool, `SELECT count(*) FROM outbox_rate`)
	}
	seq, seqEvents, seqRate := run(false)
	bat, batEvents, batRate := run(true)
	if len(seq) != len(bat) {
		t.Fatalf("%d results one by one, %d in a batch", len(seq), len(bat))
	}
	for i := range seq {
		s, b := seq[i], bat[i]
		if s.status != b.status || s.lastError != b.lastError || s.queued != b.queued || !slices.Equal(s.rcpt, b.rcpt) {
			t.Errorf("mail %d (%s):\n one by one %+v\n batch      %+v", i, s.key, s, b)
		}
	}
	// the fixture must exercise every rule, or the comparison proves little
	want := map[string]string{"status:3": "ticket rate limit", "status:4": "loop breaker open", "new:3": "recipient rate limit",
		"other:2": "global rate limit"}
	for _, r := range seq {
		if w, ok := want[r.key]; ok && (r.status != "suppressed" || !strings.Contains(r.lastError, w)) {
			t.Errorf("%s: %s %q, want suppressed by %q", r.key, r.status, r.lastError, w)
		}
	}
	if !slices.Equal(seqEvents, batEvents) {
		t.Errorf("events one by one:\n%s\nin a batch:\n%s", strings.Join(seqEvents, "\n"), strings.Join(batEvents, "\n"))
	}
	if seqRate != batRate || seqRate == 0 {
		t.Errorf("outbox_rate rows: %d one by one, %d in a batch", seqRate, batRate)
	}
}
