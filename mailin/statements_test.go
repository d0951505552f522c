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

// statementCounter counts the statements sent to PostgreSQL, by their first words.
type statementCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	words := strings.Fields(d.SQL)
	c.mu.Lock()
	c.n[strings.Join(words[:min(len(words), 3)], " ")]++
	c.mu.Unlock()
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.n
	c.n = map[string]int{}
	return out
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
	got := counter.reset()
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
	// 2.5 since a reply writes its message, the ticket and the event with one statement and no
	// longer re-reads the ticket the threader found, 2.3 since the threader reads a ticket with its
	// participants in one statement
	t.Logf("%d statements:\n%s", total, strings.Join(report, "\n"))
	if perMsg := float64(total) / n; perMsg > 2.5 {
		t.Errorf("%.2f statements per message, budget 2.5:\n%s", perMsg, strings.Join(report, "\n"))
	}
	if inserts, txs := got["INSERT INTO outbox"], got["begin"]; inserts == 0 || inserts > txs {
		t.Errorf("%d outbox INSERTs in %d transactions, want at most one per transaction:\n%s", inserts, txs, strings.Join(report, "\n"))
	}
}
