package testdb

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SQLCounter is a pgx tracer counting the statements whose SQL contains Want.
type SQLCounter struct {
	Want string
	n    atomic.Int64
}

// Count returns how many such statements were sent so far.
func (c *SQLCounter) Count() int64 { return c.n.Load() }

func (c *SQLCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, c.Want) {
		c.n.Add(1)
	}
	return ctx
}

func (c *SQLCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Traced opens a pool on the database at url whose connections report to tracer; it is closed
// when the test ends.
func Traced(t testing.TB, url string, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
