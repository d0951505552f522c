package mailout

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/memmail"
	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/internal/token"
)

const (
	testDomain = "desk.example.org"
	queueAddr  = "support@desk.example.org"
	agentAddr  = "ana@example.org"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testSigner(t testing.TB) *token.Signer {
	t.Helper()
	s, err := token.New([]byte("0123456789abcdef-test-secret"), testDomain)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// agentNoticer mails every notice to agentAddr.
type agentNoticer struct{}

func (agentNoticer) NoticeMails(_ context.Context, _ pgx.Tx, n Notice) ([]Mail, error) {
	return []Mail{{
		From:    Address{Name: "Service Desk", Email: queueAddr},
		To:      []Address{{Email: agentAddr}},
		Subject: fmt.Sprintf("[%s] ticket %d", n.Kind, n.TicketID),
		Text:    n.Why + "\n",
	}}, nil
}

func testLimits() config.MailOut {
	m := config.Default().MailOut
	m.BackoffMin = 30 * time.Second
	m.BackoffMax = 4 * time.Minute
	return m
}

func newTestOutbox(t testing.TB, clk *clock, limits config.MailOut) *Outbox {
	t.Helper()
	ob, err := NewOutbox(OutboxOptions{
		Signer:       testSigner(t),
		MailOut:      limits,
		OwnAddresses: []string{queueAddr},
		Noticer:      agentNoticer{},
		Now:          clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

var ticketNumber atomic.Int64

// seedTicket inserts a requester contact and a ticket in queue "support" and returns the ticket id.
func seedTicket(t testing.TB, pool *pgxpool.Pool, requester string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO contacts (email) VALUES ($1) ON CONFLICT DO NOTHING`, requester); err != nil {
		t.Fatal(err)
	}
	var id int64
	n := ticketNumber.Add(1)
	err := pool.QueryRow(ctx, `
		INSERT INTO tickets (prefix, number, key, kind, status, priority, queue, requester, subject, created_at, updated_at)
		VALUES ('SD', $2, $3, 'incident', 'new', 'P3', 'support', $1, 'Printer on fire', now(), now())
		RETURNING id`, requester, n, fmt.Sprintf("SD-%d", n)).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// enqueue runs Enqueue in its own committed transaction.
func enqueue(t testing.TB, pool *pgxpool.Pool, ob *Outbox, m Mail) (int64, bool) {
	t.Helper()
	ctx := context.Background()
	var id int64
	var queued bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		id, queued, err = ob.Enqueue(ctx, tx, m)
		return err
	})
	if err != nil {
		t.Fatalf("enqueue %s: %v", m.IdempotencyKey, err)
	}
	return id, queued
}

// ackMail is an acknowledgement to requester about ticket.
func ackMail(key string, ticket int64, requester string) Mail {
	return Mail{
		IdempotencyKey: key,
		TicketID:       ticket,
		Kind:           "ack",
		From:           Address{Name: "Service Desk", Email: queueAddr},
		To:             []Address{{Name: "Requester", Email: requester}},
		Subject:        "[SD-1001] Printer on fire",
		Text:           "We got your request.\n",
		InReplyTo:      "<orig-1@client.example.net>",
		AutoSubmitted:  AutoReplied,
	}
}

type outboxRow struct {
	Status, LastError, MessageID string
	Attempts                     int
	NextAttemptAt                time.Time
	RcptTo                       []string
}

func readRow(t testing.TB, pool *pgxpool.Pool, id int64) outboxRow {
	t.Helper()
	var r outboxRow
	err := pool.QueryRow(context.Background(), `
		SELECT status, last_error, message_id, attempts, next_attempt_at, rcpt_to FROM outbox WHERE id = $1`, id).
		Scan(&r.Status, &r.LastError, &r.MessageID, &r.Attempts, &r.NextAttemptAt, &r.RcptTo)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventKinds returns the kinds of a ticket's events in order.
func eventKinds(t testing.TB, pool *pgxpool.Pool, ticket int64, kind string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT why FROM events WHERE ticket_id = $1 AND kind = $2 ORDER BY id`, ticket, kind)
	if err != nil {
		t.Fatal(err)
	}
	whys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return whys
}

func countRows(t testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// startSink starts an in-process SMTP+IMAP server knowing users.
func startSink(t testing.TB, users ...string) *memmail.Server {
	t.Helper()
	u := map[string]string{}
	for _, a := range users {
		u[a] = "secret"
	}
	srv, err := memmail.Start(context.Background(), memmail.Options{Users: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func sinkSMTP(t testing.TB, srv *memmail.Server) config.SMTP {
	t.Helper()
	cfg := smtpTo(t, srv.SMTPAddr(), config.TLSNone)
	cfg.MaxConnections, cfg.Timeout = 2, 5*time.Second
	return cfg
}

// smtpTo is the configuration of a sender to the server at addr (host:port) in TLS mode, without AUTH.
func smtpTo(t testing.TB, addr, mode string) config.SMTP {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return config.SMTP{Host: host, Port: p, TLS: mode, Auth: config.AuthNone, MaxConnections: 1, Timeout: 10 * time.Second}
}

func newTestSender(t testing.TB, pool *pgxpool.Pool, ob *Outbox, clk *clock, smtpCfg config.SMTP) *Sender {
	t.Helper()
	return newTestSenderTLS(t, pool, ob, clk, smtpCfg, nil)
}

// newTestSenderTLS is newTestSender with a TLS client configuration (nil: the defaults).
func newTestSenderTLS(t testing.TB, pool *pgxpool.Pool, ob *Outbox, clk *clock, smtpCfg config.SMTP, tlsConf *tls.Config) *Sender {
	t.Helper()
	s, err := NewSender(SenderOptions{Pool: pool, Outbox: ob, SMTP: smtpCfg, MailOut: testLimits(), Now: clk.Now, TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.tr.close)
	return s
}

func newDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return testdb.New(t)
}
