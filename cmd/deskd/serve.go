package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/internal/ops"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/mailout/notify"
	"github.com/deskd/deskd/templates"
	"github.com/deskd/deskd/tickets"
)

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the service desk: mailbox pollers, outbox sender, HTTP /healthz /readyz /metrics",
		Long: `serve runs deskd until SIGINT or SIGTERM: one IMAP poller per configured mailbox, the outbox
sender, and the HTTP endpoints /healthz, /readyz and /metrics. It refuses to start when the
database schema is outdated (run ` + "`deskd migrate`" + ` first). Shutdown is graceful: in-flight
transactions finish or roll back, nothing is lost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			log, err := g.logger(cfg)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, log)
		},
	}
}

// app is the set of long-running services deskd wires together.
type app struct {
	cfg        *config.Config
	log        *slog.Logger
	pool       *pgxpool.Pool
	metrics    *ops.Metrics
	tickets    *tickets.Service
	notifier   *notify.Notifier
	ingestOpts mailin.Options
	// sendGate, when set, holds the outbox sender until it is closed (deskd bench --send-after-ingest).
	sendGate <-chan struct{}
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT says otherwise: large
// messages (25 MB attachments) pass through a few buffers at once, and without a limit the collector
// lets the heap double before it runs.
const defaultMemoryLimit = 128 << 20

// defaultGCPercent is the collector's heap growth (GOGC) unless GOGC says otherwise. Ingest allocates
// every message's bytes several times over while little of it stays live (20-30 MB), so at Go's
// default of 100 the collector ran several times a second and took a sixth of deskd's CPU; at 400 it
// runs a quarter as often, and the soft memory limit above still bounds the heap (deskd bench: CPU
// per message 0.39 -> 0.29-0.31 ms in deskd, peak RSS 56 -> 100-140 MB; with 25 MB attachments
// 176-188 MB, and GOGC=100, which a deployment short of memory can set, saved 18 MB on one build).
const defaultGCPercent = 400

// newApp opens the database, refuses an outdated schema and builds the services.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	pool, err := db.Open(ctx, cfg.Database.URL, cfg.Database.MaxConns)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx, pool); err != nil {
		pool.Close()
		if errors.Is(err, db.ErrSchemaOutdated) {
			return nil, &exitError{code: 1, err: fmt.Errorf("refusing to start: %w", err)}
		}
		return nil, err
	}
	m := ops.NewMetrics()
	a := &app{cfg: cfg, log: log, pool: pool, metrics: m}
	if err := a.build(); err != nil {
		pool.Close()
		return nil, err
	}
	a.ingestOpts.Log = log
	a.ingestOpts.Observe = func(mailbox, outcome string, latency time.Duration) {
		m.MailIn.WithLabelValues(mailbox, outcome).Inc()
		m.IngestSeconds.Observe(latency.Seconds())
	}
	return a, nil
}

// build creates the templates, the notifier (the tickets' Mailer, writing the outbox), the ticket
// service and the ingest options from the configuration.
func (a *app) build() error {
	cfg := a.cfg
	var err error
	if a.ingestOpts, err = mailin.OptionsFromConfig(cfg); err != nil {
		return err
	}
	tpl, err := templates.New(templates.Options{Dir: cfg.Templates.Dir})
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	a.notifier, err = notify.New(notify.Options{
		Outbox:    mailout.OutboxOptions{Signer: a.ingestOpts.Signer, MailOut: cfg.MailOut, OwnAddresses: cfg.DeskAddresses()},
		Templates: tpl, Desk: cfg.Desk, Queues: cfg.Queues, Agents: cfg.Agents, Logger: a.log,
	})
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	a.tickets = tickets.NewService(a.pool, tickets.Options{Mailer: a.notifier, Committed: a.committed})
	return nil
}

// committed counts every committed ticket event by kind.
func (a *app) committed(e tickets.Event) {
	a.metrics.TicketEvents.WithLabelValues(string(e.Kind)).Inc()
}

func (a *app) close() { a.pool.Close() }

// ingester builds an Ingester over the app's current ticket service.
func (a *app) ingester() (*mailin.Ingester, error) {
	return mailin.NewIngester(a.tickets, a.ingestOpts)
}

// ingestPending ingests the pending mail of mailbox ("" for all), advancing p per message.
func (a *app) ingestPending(ctx context.Context, mailbox string, p *progress) ([]mailin.Outcome, error) {
	opts := a.ingestOpts
	observe := opts.Observe
	opts.Observe = func(mb, outcome string, latency time.Duration) {
		if observe != nil {
			observe(mb, outcome, latency)
		}
		p.add(1)
	}
	ing, err := mailin.NewIngester(a.tickets, opts)
	if err != nil {
		return nil, err
	}
	return ing.ProcessPending(ctx, mailbox)
}

// run starts every service under one errgroup and returns when ctx ends or a service fails.
func (a *app) run(ctx context.Context) error {
	sender, err := mailout.NewSender(mailout.SenderOptions{Pool: a.pool, Outbox: a.notifier.Outbox(), SMTP: a.cfg.SMTP,
		MailOut: a.cfg.MailOut, Logger: a.log.With("component", "mailout"),
		Outcome: func(o string) { a.metrics.MailOut.WithLabelValues(o).Inc() }})
	if err != nil {
		return fmt.Errorf("mail sender: %w", err)
	}
	ing, err := a.ingester()
	if err != nil {
		return err
	}
	mailboxes, pollOpts := mailin.PollersFromConfig(a.cfg, a.log)
	pollers := make([]*mailin.Poller, 0, len(mailboxes))
	for _, mb := range mailboxes {
		pollers = append(pollers, mailin.NewPoller(a.pool, ing, mb, pollOpts))
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ops.Serve(ctx, a.cfg.HTTP.Listen, ops.Handler(a.pool, a.metrics), a.log) })
	g.Go(func() error {
		if a.sendGate != nil {
			select {
			case <-a.sendGate:
			case <-ctx.Done():
				return nil
			}
		}
		return sender.Run(ctx)
	})
	for _, p := range pollers {
		g.Go(func() error { return p.Run(ctx) })
	}
	a.log.Info("deskd started", "mailboxes", len(a.cfg.Mailboxes), "queues", len(a.cfg.Queues), "http", a.cfg.HTTP.Listen)
	err = g.Wait()
	a.log.Info("deskd stopped")
	return err
}

// openApp loads the full configuration and opens the app (for commands that ingest or send).
func (g *globals) openApp(ctx context.Context) (*app, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	log, err := g.logger(cfg)
	if err != nil {
		return nil, err
	}
	return newApp(ctx, cfg, log)
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	return a.run(ctx)
}
