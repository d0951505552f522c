package mailout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkSend measures the whole path per mail: render + enqueue (policy, one INSERT) in batches of
// 50 per transaction, then claim, SMTP to the in-process sink, and record. Reports mails/s.
func BenchmarkSend(b *testing.B) {
	pool := newDB(b)
	clk := newClock()
	limits := testLimits()
	limits.PerRecipientPerHour, limits.PerTicketPerHour, limits.GlobalPerHour = 0, 0, 0
	ob := newTestOutbox(b, clk, limits)
	srv := startSink(b, "zoe@example.net")
	cfg := sinkSMTP(b, srv)
	cfg.MaxConnections = 4
	s := newTestSender(b, pool, ob, clk, cfg)
	ticket := seedTicket(b, pool, "zoe@example.net")
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for i := 0; i < b.N; {
		n := min(50, b.N-i)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for j := range n {
				m := ackMail(fmt.Sprintf("bench:%d", i+j), ticket, "zoe@example.net")
				m.HTML = "<p>We got your request.</p>"
				if _, _, err := ob.Enqueue(ctx, tx, m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		i += n
		for sent < i {
			k, err := s.runOnce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			sent += k
		}
	}
	b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "mails/s")
	if srv.Accepted() != int64(sent) {
		b.Fatalf("sink accepted %d, sent %d", srv.Accepted(), sent)
	}
}
