package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSampler is a sampling profiler of the database side: every 10 ms it looks at
// pg_stat_activity for deskd's active statements in the bench database and counts them by query
// and wait event, so the report shows where PostgreSQL spends the ingest (--pg-activity).
type pgSampler struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	samples int
	counts  map[string]int
}

func startPGSampler(ctx context.Context, dbURL string) (*pgSampler, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect pg sampler: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &pgSampler{cancel: cancel, counts: map[string]int{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer conn.Close(context.WithoutCancel(ctx))
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			rows, err := conn.Query(ctx, `SELECT query, coalesce(wait_event_type || ':' || wait_event, 'CPU')
				FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
			if err == nil {
				s.samples++
				for rows.Next() {
					var q, wait string
					if rows.Scan(&q, &wait) == nil {
						s.counts[wait+"  "+strings.Join(strings.Fields(q), " ")]++
					}
				}
				rows.Close()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s, nil
}

// report stops sampling and writes the top statements: the share of samples each was active in.
func (s *pgSampler) report(w io.Writer, top int) {
	s.cancel()
	s.wg.Wait()
	type entry struct {
		key string
		n   int
	}
	var es []entry
	total := 0
	for k, n := range s.counts {
		es = append(es, entry{k, n})
		total += n
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(b.n, a.n) })
	fmt.Fprintf(w, "pg activity: %d samples, %.2f active backends on average; top statements (%% of samples active):\n",
		s.samples, float64(total)/float64(max(s.samples, 1)))
	for _, e := range es[:min(top, len(es))] {
		q := e.key
		if len(q) > 220 {
			q = q[:220] + "…"
		}
		fmt.Fprintf(w, "  %5.1f%%  %s\n", 100*float64(e.n)/float64(max(s.samples, 1)), q)
	}
}
