package mailin_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/tickets"
)

// statementCounter counts what is sent to PostgreSQL: statements by their first words, and round
// trips (a statement sent alone, or a pipelined batch of them).
type statementCounter struct {
	mu      sync.Mutex
	n       map[string]int // statements, alone or in a batch
	batches int            // batches sent
	batched int            // statements sent in them
}

func (c *statementCounter) count(sql string) {
	words := strings.Fields(sql)
	c.mu.Lock()
	c.n[strings.Join(words[:min(len(words), 3)], " ")]++
	c.mu.Unlock()
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.count(d.SQL)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.mu.Lock()
	c.batches++
	c.mu.Unlock()
	return ctx
}

func (c *statementCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.count(d.SQL)
	c.mu.Lock()
	c.batched++
	c.mu.Unlock()
}

func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// reset returns the statements by first words and the number of round trips since the last reset.
func (c *statementCounter) reset() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, trips := c.n, c.batches-c.batched
	for _, k := range out {
		trips += k
	}
	c.n, c.batches, c.batched = map[string]int{}, 0, 0
	return out, trips
}

// TestIngestStatementBudget guards the ingest path's round trips, which bound its throughput: 400
// messages (one in five a reply) become tickets with an acknowledgement and an agent notification
// each, and the whole run must stay within a fixed number of statements per message, with the outbox
// written by one INSERT per transaction rather than one per mail.
func TestIngestStatementBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := testdb.NewWithURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{n: map[string]int{}}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	signer, _ := token.New([]byte("0123456789abcdef0123456789abcdef"), deskDomain)
	ing, err := mailin.NewIngester(tickets.NewService(pool, tickets.Options{Mailer: benchNotifier(t, signer)}), mailin.Options{
		Signer: signer, DeskDomain: deskDomain, DeskAddresses: []string{"support@example.com"}, Workers: 4,
		Queues: []mailin.Queue{{Name: "support", Prefix: "SD", Addresses: []string{"support@example.com"},
			DefaultKind: tickets.KindIncident, DefaultPriority: tickets.P3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	for i := range n {
		extra := ""
		if i%5 == 4 {
			extra = fmt.Sprintf("In-Reply-To: <m%d@corp.example>\n", i-1)
		}
		raw := mailFrom(fmt.Sprintf("u%d@corp.example", i%300), "support@example.com", fmt.Sprintf("Issue %d", i),
			fmt.Sprintf("m%d@corp.example", i), extra, "Something is broken.\n\nThanks")
		if _, _, err := mailin.StoreRaw(ctx, pool, mailin.NewRaw("inbox", 1, uint32(i+1), []byte(strings.ReplaceAll(raw, "\n", "\r\n")), 0, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	counter.reset()
	outs, err := ing.ProcessPending(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got, trips := counter.reset()
	if len(outs) != n {
		t.Fatalf("%d outcomes, want %d", len(outs), n)
	}
	var mails, tickets int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM tickets)`).Scan(&mails, &tickets); err != nil {
		t.Fatal(err)
	}
	if tickets != n*4/5 || mails != 2*tickets+n/5 {
		t.Fatalf("%d tickets and %d outbox rows, want %d and %d", tickets, mails, n*4/5, 2*tickets+n/5)
	}
	total := 0
	for _, c := range got {
		total += c
	}
	var report []string
	for k, c := range got {
		report = append(report, fmt.Sprintf("%5d %s", c, k))
	}
	// 3.3 per message when this test was written (10.7 before mail was written once per transaction),
	// 2.5 since a reply writes its message, the ticket and the event with one statement, 2.3 since
	// the threader reads a ticket with its participants in one statement. 1.9 statements in 1.7
	// round trips since the threader finds, reads and locks a reply's ticket in one statement that
	// the append does not repeat, and a reply's notification reads the conversation and the
	// participants in one round trip (a reply: 6 statements in 6 round trips before, 4 in 3 after);
	// 1.6 round trips since the outbox's rate locks and counts share one pipeline per transaction.
	// 1.3 statements in 1.0 round trips since a transaction's new tickets are opened together (here
	// each reply answers the message just before it, so the queue is written before every reply).
	t.Logf("%d statements in %d round trips:\n%s", total, trips, strings.Join(report, "\n"))
	if perMsg := float64(total) / n; perMsg > 1.4 {
		t.Errorf("%.2f statements per message, budget 1.4:\n%s", perMsg, strings.Join(report, "\n"))
	}
	if perMsg := float64(trips) / n; perMsg > 1.1 {
		t.Errorf("%.2f round trips per message, budget 1.1:\n%s", perMsg, strings.Join(report, "\n"))
	}
	if creates, most := got["WITH n AS"], got["begin"]+n/5; creates == 0 || creates > most {
		t.Errorf("%d ticket-creating statements, want at most one per transaction and one per reply (%d):\n%s",
			creates, most, strings.Join(report, "\n"))
	}
	if inserts, txs := got["INSERT INTO outbox"], got["begin"]; inserts == 0 || inserts > txs {
		t.Errorf("%d outbox INSERTs in %d transactions, want at most one per transaction:\n%s", inserts, txs, strings.Join(report, "\n"))
	}
}
