package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/internal/mailstack"
	"github.com/deskd/deskd/internal/memmail"
	"github.com/deskd/deskd/internal/pgboot"
	"github.com/deskd/deskd/mailin"
)

type benchFlags struct {
	messages, large, idleSamples int
	dovecot, json                bool
	databaseURL                  string
	cpuProfile, memProfile       string
	pgActivity                   bool
	sendAfterIngest              bool
}

func newBenchCmd(g *globals) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ingest throughput, latency and memory against the machine's own limits",
		Long: `bench loads a desk mailbox with generated mail and runs the real deskd pipeline over it (IMAP
poller, ingest transaction, outbox sender), measuring on the same machine, in the same run:

  pg_commit_tps         one connection committing one INSERT per transaction for 3 s (the database's
                        ceiling for single-row commits)
  fetch_msgs_per_sec    one IMAP connection fetching BODY.PEEK[] of every message (the mailbox's ceiling)
  idle_notify_p50_ms    APPEND by one connection -> EXISTS to another in IDLE (the mailbox's latency floor)
  ingest_msgs_per_sec   messages / time from poller start to the last ingest commit
  commit_latency_*      raw mail stored -> ticket committed, during the bulk ingest
  ack_latency_*         with deskd idle in IDLE, APPEND of a new request -> its acknowledgement
                        accepted by the outbound SMTP relay (--idle-samples, spaced 100 ms)
  peak_rss_bytes        VmHWM of this process during ingest and the IDLE phase
  cpu                   CPU time per ingested message (deskd, PostgreSQL, mail server, machine)
  send_cpu              with --send-after-ingest: CPU time per mail sent while the sender runs alone,
                        and send_alone_mails_per_sec its rate

Messages are generated deterministically: plain and multipart/alternative, some with 1-3 small
attachments, UTF-8 and ISO-8859-1 bodies and RFC 2047 subjects, 20% replies to earlier messages,
200 requesters of whom a dozen write half the mail, one in eight copying a colleague. The mailbox is the built-in IMAP server, or with --dovecot a private Dovecot (the
built-in server keeps every message in this process's memory, so measure RSS with --dovecot).
Acknowledgements and agent mails go to a discarding SMTP relay. Rate limits are raised so every
new ticket is acknowledged.

The database (--database-url; its name must contain "bench") is dropped and recreated.`,
		Example: `  deskd bench
  deskd bench --messages 10000 --dovecot --json
  deskd bench --messages 10000 --dovecot --large-attachments 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd.Context(), g, f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.messages, "messages", 2000, "number of generated messages to ingest")
	fl.BoolVar(&f.dovecot, "dovecot", false, "use a private Dovecot (internal/mailstack) instead of the built-in IMAP server")
	fl.IntVar(&f.large, "large-attachments", 0, "how many of the messages carry a 25 MB attachment")
	fl.IntVar(&f.idleSamples, "idle-samples", 50, "messages appended one by one (100 ms apart) to measure IDLE latency")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of the summary")
	fl.StringVar(&f.databaseURL, "database-url", pgboot.ThrowawayURL("bench"),
		"PostgreSQL database to recreate (default: DATABASE_URL pointed at deskd_bench, or the local deskd_bench)")
	fl.BoolVar(&f.sendAfterIngest, "send-after-ingest", false,
		"hold the outbox sender until the bulk load is ingested: measures the ingest stage (acknowledgements still written in its transactions) without SMTP delivery competing for the CPU")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the ingest phase to this file")
	fl.StringVar(&f.memProfile, "memprofile", "", "write the heap profile taken at the highest RSS to this file")
	fl.BoolVar(&f.pgActivity, "pg-activity", false, "sample pg_stat_activity during ingest and print the busiest statements")
	fl.MarkHidden("pg-activity") //nolint:errcheck // the flag exists
	fl.MarkHidden("cpuprofile")  //nolint:errcheck // the flag exists
	fl.MarkHidden("memprofile")  //nolint:errcheck // the flag exists
	return cmd
}

// benchResult is the --json output: one object.
type benchResult struct {
	Messages               int            `json:"messages"`
	MailServer             string         `json:"mail_server"`
	IngestMsgsPerSec       float64        `json:"ingest_msgs_per_sec"`
	IngestSeconds          float64        `json:"ingest_seconds"`
	CommitLatencyP50Ms     float64        `json:"commit_latency_p50_ms"`
	CommitLatencyP99Ms     float64        `json:"commit_latency_p99_ms"`
	AckLatencyP50Ms        float64        `json:"ack_latency_p50_ms"`
	AckLatencyP99Ms        float64        `json:"ack_latency_p99_ms"`
	IdleCommitLatencyP50Ms float64        `json:"idle_commit_latency_p50_ms"`
	IdleCommitLatencyP99Ms float64        `json:"idle_commit_latency_p99_ms"`
	IdleSamples            int            `json:"idle_samples"`
	AcksMatched            int            `json:"acks_matched"`
	PeakRSSBytes           int64          `json:"peak_rss_bytes"`
	RSSBeforeIngestBytes   int64          `json:"rss_before_ingest_bytes"`
	RSSIncludesMailbox     bool           `json:"rss_includes_mailbox"` // the built-in server's messages live in this process
	PeakHeapBytes          uint64         `json:"peak_heap_bytes"`
	PGCommitTPS            float64        `json:"pg_commit_tps"`
	FetchMsgsPerSec        float64        `json:"fetch_msgs_per_sec"`
	FetchBytes             int64          `json:"fetch_bytes"`
	AppendMsgsPerSec       float64        `json:"append_msgs_per_sec"`
	IdleNotifyP50Ms        float64        `json:"idle_notify_p50_ms"` // APPEND -> EXISTS to another client in IDLE
	RatioPG                float64        `json:"ratio_pg"`
	RatioFetch             float64        `json:"ratio_fetch"`
	Outcomes               map[string]int `json:"outcomes"`
	Tickets                int            `json:"tickets"`
	MailsSent              int            `json:"mails_sent"`
	OutboxDrainSeconds     float64        `json:"outbox_drain_seconds"`
	SendMsgsPerSec         float64        `json:"send_msgs_per_sec"`
	CPU                    *benchCPU      `json:"cpu,omitempty"` // during the bulk ingest; absent without /proc
	// With --send-after-ingest: the sender alone, from its release to the drained outbox; send_cpu's
	// figures are per mail sent (the bench's discarding relay runs in deskd's process).
	SendAloneMailsPerSec float64        `json:"send_alone_mails_per_sec,omitempty"`
	SendCPU              *benchCPU      `json:"send_cpu,omitempty"`
	Generated            genStats       `json:"generated"`
	Machine              benchMachine   `json:"machine"`
	Config               benchConfigOut `json:"config"`
}

type benchMachine struct {
	Cores           int    `json:"cores"`
	GOMAXPROCS      int    `json:"gomaxprocs"`
	CPU             string `json:"cpu"`
	MemTotalBytes   int64  `json:"mem_total_bytes"`
	GoVersion       string `json:"go_version"`
	OSArch          string `json:"os_arch"`
	Revision        string `json:"deskd_revision"`
	LoadAvg         string `json:"load_avg_at_start"`
	Postgres        string `json:"postgres"`
	SynchronousCmt  string `json:"pg_synchronous_commit"`
	PGFsync         string `json:"pg_fsync"`
	PGWalSyncMethod string `json:"pg_wal_sync_method"`
}

type benchConfigOut struct {
	Messages            int    `json:"messages"`
	Dovecot             bool   `json:"dovecot"`
	LargeAttachments    int    `json:"large_attachments"`
	LargeAttachmentSize int    `json:"large_attachment_bytes"`
	IdleSamples         int    `json:"idle_samples"`
	Seed                uint64 `json:"seed"`
	Database            string `json:"database"`
	MaxConns            int    `json:"db_max_conns"`
	MaxMessageBytes     int64  `json:"max_message_bytes"`
	IngestBatch         int    `json:"ingest_batch_size"`
	IngestWorkers       int    `json:"ingest_workers"`
	SenderWorkers       int    `json:"sender_workers"`
	SMTPConnections     int    `json:"smtp_max_connections"`
	RateLimitPerHour    int    `json:"rate_limit_per_hour"`
	ProcessedFolder     string `json:"processed_folder"`
	SendAfterIngest     bool   `json:"send_after_ingest"`
}

// benchEnv is what one run sets up: the database, the desk mailbox, the relay and deskd's config.
type benchEnv struct {
	f        *benchFlags
	pg       *pgboot.Database
	imapAddr string
	sink     *smtpSink
	cfg      *config.Config
	closers  []func()
}

func (e *benchEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

func runBench(ctx context.Context, g *globals, f *benchFlags) error {
	if f.messages < 1 || f.idleSamples < 0 || f.large < 0 || f.large > f.messages {
		return errors.New("--messages must be at least 1, --idle-samples at least 0, --large-attachments between 0 and --messages")
	}
	if g.logLevel == "" {
		g.logLevel = "warn" // deskd's info lines would drown the progress bars
	}
	log, err := g.logger(nil)
	if err != nil {
		return err
	}
	status := g.stderr
	note := func(format string, args ...any) { fmt.Fprintf(status, "bench: "+format+"\n", args...) }
	env, err := setupBench(ctx, f, note)
	if env != nil {
		defer env.close()
	}
	if err != nil {
		return err
	}
	res := &benchResult{Messages: f.messages, MailServer: "memmail", RSSIncludesMailbox: !f.dovecot, Outcomes: map[string]int{}}
	if f.dovecot {
		res.MailServer = "dovecot"
	}
	res.Machine = machineInfo(ctx, env.cfg.Database.URL)
	res.Config = configOut(f, env.cfg)

	note("measuring PostgreSQL single-row commits for 3 s")
	if res.PGCommitTPS, err = measurePGCommits(ctx, env.cfg.Database.URL, 3*time.Second); err != nil {
		return err
	}
	gen := newBenchGenerator(f.messages, f.large)
	if res.AppendMsgsPerSec, err = appendAll(ctx, env, gen, status); err != nil {
		return err
	}
	res.Generated = gen.stats
	note("measuring IMAP FETCH BODY.PEEK[] of %d messages", f.messages)
	var fetched int
	if res.FetchMsgsPerSec, fetched, res.FetchBytes, err = measureFetch(env.imapAddr, benchDesk, benchPassword); err != nil {
		return err
	}
	if fetched != f.messages {
		return fmt.Errorf("mailbox holds %d messages after appending %d", fetched, f.messages)
	}
	if f.idleSamples > 0 {
		note("measuring the mailbox's IDLE notification latency")
		if res.IdleNotifyP50Ms, err = measureIdleNotify(env.imapAddr, benchDesk, benchPassword, 10); err != nil {
			return err
		}
	}
	debug.FreeOSMemory()
	if !resetPeakRSS() {
		note("cannot reset the peak RSS (/proc/self/clear_refs): peak_rss_bytes includes the generation phase")
	}
	res.RSSBeforeIngestBytes = procStatus("VmRSS")
	if err := runPipeline(ctx, env, gen, log, res, status); err != nil {
		return err
	}
	if res.PGCommitTPS > 0 {
		res.RatioPG = res.IngestMsgsPerSec / res.PGCommitTPS
	}
	if res.FetchMsgsPerSec > 0 {
		res.RatioFetch = res.IngestMsgsPerSec / res.FetchMsgsPerSec
	}
	if f.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printBench(g.stdout, res)
	return nil
}

// setupBench recreates the database, starts the desk mailbox and the relay, and builds deskd's
// configuration. The caller closes the returned env even on error.
func setupBench(ctx context.Context, f *benchFlags, note func(string, ...any)) (*benchEnv, error) {
	env := &benchEnv{f: f}
	pg, err := pgboot.EnsureFresh(ctx, f.databaseURL, func(s string) { note("%s", s) })
	if err != nil {
		return env, err
	}
	env.pg = pg
	env.closers = append(env.closers, func() { pg.Close() })
	pool, err := db.Open(ctx, pg.URL, 2)
	if err != nil {
		return env, err
	}
	_, err = db.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return env, err
	}
	users := map[string]string{benchDesk: benchPassword}
	if f.dovecot {
		dir, err := os.MkdirTemp("", "deskd-bench-dovecot-")
		if err != nil {
			return env, err
		}
		env.closers = append(env.closers, func() { os.RemoveAll(dir) })
		d, err := mailstack.StartDovecot(ctx, mailstack.DovecotOptions{Dir: dir, Users: users})
		if err != nil {
			return env, fmt.Errorf("%w (%s)", err, mailstack.InstallHint)
		}
		env.closers = append(env.closers, func() { d.Stop() })
		env.imapAddr = d.IMAPAddr()
	} else {
		mm, err := memmail.Start(ctx, memmail.Options{Users: users, Hostname: "mail." + benchDomain})
		if err != nil {
			return env, fmt.Errorf("start built-in mail server: %w", err)
		}
		env.closers = append(env.closers, func() { mm.Close() })
		env.imapAddr = mm.IMAPAddr()
	}
	if env.sink, err = startSMTPSink(); err != nil {
		return env, fmt.Errorf("start smtp relay: %w", err)
	}
	env.closers = append(env.closers, env.sink.close)
	env.cfg, err = benchConfig(pg.URL, env.imapAddr, env.sink.addr(), f.large > 0)
	return env, err
}

// benchRateLimit replaces the hourly rate limits: the bench mails each requester hundreds of
// times an hour, and every new ticket must be acknowledged to measure ack latency.
const benchRateLimit = 1_000_000

// benchConfig is deskd's configuration for the bench: one mailbox and queue, two agents, the
// relay as SMTP server, defaults everywhere else (validated like a file would be).
func benchConfig(dbURL, imapAddr, smtpAddr string, large bool) (*config.Config, error) {
	imapHost, imapPort, err := splitHostPort(imapAddr)
	if err != nil {
		return nil, err
	}
	smtpHost, smtpPort, err := splitHostPort(smtpAddr)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Desk = config.Desk{Name: "Bench Service Desk", Domain: "desk." + benchDomain, Secret: hex.EncodeToString(secret)}
	if large {
		cfg.MailIn.MaxMessageBytes = 40 * config.MiB // a 25 MB attachment is about 34 MB in base64
	}
	cfg.MailIn.ReconnectMax = 5 * time.Second
	cfg.MailOut.BackoffMin = time.Second
	cfg.MailOut.BackoffMax = 10 * time.Second
	cfg.MailOut.PerRecipientPerHour = benchRateLimit
	cfg.MailOut.PerTicketPerHour = benchRateLimit
	cfg.MailOut.GlobalPerHour = benchRateLimit
	cfg.Mailboxes = []config.Mailbox{{Name: "support", Host: imapHost, Port: imapPort, TLS: config.TLSNone, User: benchDesk,
		Password: benchPassword, Folder: "INBOX", ProcessedFolder: "Processed", Queue: "support"}}
	cfg.SMTP = config.SMTP{Host: smtpHost, Port: smtpPort, TLS: config.TLSNone, Auth: config.AuthNone, MaxConnections: 4,
		Timeout: 10 * time.Second}
	cfg.Queues = []config.Queue{{Name: "support", Addresses: []string{benchDesk}, KeyPrefix: "SD", DefaultPriority: "P3",
		DefaultKind: "incident", Agents: []string{"ana", "ben"}, TeamLead: "ana"}}
	cfg.Agents = []config.Agent{
		{Name: "ana", Email: "ana@" + benchDomain, DisplayName: "Ana Agent", Role: config.RoleLead},
		{Name: "ben", Email: "ben@" + benchDomain, DisplayName: "Ben Agent", Role: config.RoleAgent},
	}
	cfg.ApplyDefaults()
	if problems := cfg.Validate(); len(problems) > 0 {
		return nil, config.ValidationError(problems)
	}
	return cfg, nil
}

func configOut(f *benchFlags, cfg *config.Config) benchConfigOut {
	u, err := url.Parse(cfg.Database.URL)
	dbName := "(unparsable)"
	if err == nil {
		dbName = u.Redacted()
	}
	return benchConfigOut{Messages: f.messages, Dovecot: f.dovecot, LargeAttachments: f.large, LargeAttachmentSize: largeAttachment,
		IdleSamples: f.idleSamples, Seed: benchSeed, Database: dbName, MaxConns: cfg.Database.MaxConns,
		MaxMessageBytes: int64(cfg.MailIn.MaxMessageBytes), IngestBatch: 200, IngestWorkers: mailin.DefaultWorkers(), SenderWorkers: cfg.MailOut.Workers,
		SMTPConnections: cfg.SMTP.MaxConnections, RateLimitPerHour: benchRateLimit, ProcessedFolder: "Processed",
		SendAfterIngest: f.sendAfterIngest}
}

// machineInfo describes the machine and the PostgreSQL server the figures were taken on.
func machineInfo(ctx context.Context, dbURL string) benchMachine {
	m := benchMachine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OSArch: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				m.Revision = s.Value[:12] + m.Revision
			case s.Key == "vcs.modified" && s.Value == "true":
				m.Revision += "+dirty"
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemTotalBytes = kb << 10
		}
	}
	pool, err := db.Open(ctx, dbURL, 1)
	if err != nil {
		return m
	}
	defer pool.Close()
	pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
		current_setting('fsync'), current_setting('wal_sync_method')`).Scan(&m.Postgres, &m.SynchronousCmt, &m.PGFsync, &m.PGWalSyncMethod) //nolint:errcheck // informational
	return m
}
