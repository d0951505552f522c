package mailin_test

import (
	"log/slog"
	"os"
	"testing"
	"time"
)

// BenchmarkPollerIngest measures end-to-end ingest through the Poller: b.N messages waiting in an
// in-process IMAP folder become b.N tickets (fetch, raw store with checkpoint, ingest, \Seen). It
// reports msgs/s; run with e.g. -benchtime=2000x for a steady figure.
func BenchmarkPollerIngest(b *testing.B) {
	h := newPollHarness(b, startMemmail(b))
	for range b.N {
		h.mail.appendMsg(b, h.folder, h.newMail(""))
	}
	b.ResetTimer()
	stop := h.start(h.mailbox(), pollOptions(benchLog()))
	waitFor(b, 30*time.Second+time.Duration(b.N)*50*time.Millisecond, "every message ingested", func() bool {
		return h.count(`SELECT count(*) FROM raw_mails WHERE state <> 'pending'`) == b.N
	})
	b.StopTimer()
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	if got := h.count(`SELECT count(*) FROM tickets`); got != b.N {
		b.Fatalf("%d tickets, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// benchLog logs chunk timings to stderr when DESKD_BENCH_LOG is set.
func benchLog() *slog.Logger {
	if os.Getenv("DESKD_BENCH_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
