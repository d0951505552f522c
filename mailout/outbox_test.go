package mailout

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
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
