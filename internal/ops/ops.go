// Package ops serves the operator endpoints: /healthz (the process is alive), /readyz (the database
// is reachable and its schema current) and /metrics (Prometheus, with Go runtime and process metrics),
// and owns deskd's metric definitions so that every package reports into one registry.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deskd/deskd/internal/db"
)

// Metrics are deskd's Prometheus metrics, registered on their own registry.
type Metrics struct {
	Registry *prometheus.Registry
	// TicketEvents counts committed ticket events by kind (created, status_changed, ...).
	TicketEvents *prometheus.CounterVec
	// MailIn counts inbound messages by mailbox and outcome (ingested, quarantined, duplicate, ignored).
	MailIn *prometheus.CounterVec
	// IngestSeconds observes arrival-to-commit latency of inbound messages.
	IngestSeconds prometheus.Histogram
	// MailOut counts outbound mail by outcome (sent, retry, dead, suppressed).
	MailOut *prometheus.CounterVec
}

// NewMetrics creates the metrics and a registry holding them plus the Go runtime and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		TicketEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskd_ticket_events_total", Help: "Committed ticket events by kind.",
		}, []string{"kind"}),
		MailIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskd_mailin_messages_total", Help: "Inbound messages by mailbox and outcome.",
		}, []string{"mailbox", "outcome"}),
		IngestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "deskd_mailin_ingest_seconds", Help: "Time from raw storage to the committed ingest transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		MailOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskd_mailout_messages_total", Help: "Outbound mail by outcome.",
		}, []string{"outcome"}),
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.TicketEvents, m.MailIn, m.IngestSeconds, m.MailOut)
	return m
}

// Pinger is the part of a database pool that readiness needs.
type Pinger interface {
	db.Querier
	Ping(ctx context.Context) error
}

// Handler returns the mux serving /healthz, /readyz and /metrics.
func Handler(pool Pinger, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := pool.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "database unreachable: %v\n", err)
			return
		}
		if err := db.CheckSchema(ctx, pool); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	return mux
}

// Serve listens on addr and serves h until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log)
}

// ServeListener is Serve on an open listener.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Info("http listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}
