package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/internal/memmail"
	"github.com/deskd/deskd/internal/pgboot"
)

// The demo's people: everyone logs in with demoPassword on the printed IMAP/SMTP ports.
const (
	demoDomain   = "demo.test"
	demoPassword = "demo"
)

var demoUsers = []string{
	"support@demo.test", "changes@demo.test", // the desk's queues
	"alice@demo.test", "bob@demo.test", "carol@demo.test", // requesters
	"ana@demo.test", "ben@demo.test", // agents
	"max@demo.test", // manager
}

type demoFlags struct {
	imapAddr, smtpAddr, httpAddr string
	scenario                     bool
}

func newDemoCmd(g *globals) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run deskd on a built-in demo setup: IMAP and SMTP servers, mailboxes, two queues, agents",
		Long: `demo starts deskd with everything it needs in one process: a built-in IMAP server and an SMTP
server that delivers into it, mailboxes for the desk (support@, changes@) and demo people
(alice, bob, carol as requesters; ana and ben as agents; max as manager; password "demo"), a demo
configuration with two queues, and PostgreSQL from DATABASE_URL or the local default. The demo's
database (deskd_demo) is recreated at every start, like its in-memory mailboxes; with no server
but PostgreSQL installed, a private throwaway cluster is used.

Then mail it: ` + "`deskd demo send --from alice@demo.test --subject \"VPN is down\" --body \"...\"`" + `, or point
any mail client at the printed ports. --scenario plays a scripted sequence (new incidents,
requester replies, agent replies) and ends with a summary of tickets and mails.`,
		Example: `  deskd demo
  deskd demo --scenario
  deskd demo send --from alice@demo.test --subject "VPN is down" --body "It drops every 5 minutes"
  deskd demo inbox alice@demo.test`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), g, f) },
	}
	cmd.Flags().StringVar(&f.imapAddr, "imap", "127.0.0.1:1143", "IMAP listen address (loopback)")
	cmd.Flags().StringVar(&f.smtpAddr, "smtp", "127.0.0.1:2525", "SMTP listen address (loopback)")
	cmd.Flags().StringVar(&f.httpAddr, "http", "127.0.0.1:8080", "HTTP listen address for /healthz, /readyz, /metrics")
	cmd.Flags().BoolVar(&f.scenario, "scenario", false, "play a scripted sequence, print a summary and exit")
	cmd.AddCommand(newDemoSendCmd(g), newDemoInboxCmd(g))
	return cmd
}

// demoConfig is the demo's configuration, validated like a file would be.
func demoConfig(dbURL, imapAddr, smtpAddr, httpAddr string) (*config.Config, error) {
	imapHost, imapPort, err := splitHostPort(imapAddr)
	if err != nil {
		return nil, fmt.Errorf("--imap: %w", err)
	}
	smtpHost, smtpPort, err := splitHostPort(smtpAddr)
	if err != nil {
		return nil, fmt.Errorf("--smtp: %w", err)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.HTTP.Listen = httpAddr
	cfg.Desk = config.Desk{Name: "Demo Service Desk", Domain: "desk." + demoDomain, Secret: hex.EncodeToString(secret)}
	cfg.MailIn.PollInterval = 5 * time.Second
	cfg.MailIn.ReconnectMax = 5 * time.Second
	cfg.MailOut.BackoffMin = 2 * time.Second
	cfg.MailOut.BackoffMax = 30 * time.Second
	for _, q := range []string{"support", "changes"} {
		cfg.Mailboxes = append(cfg.Mailboxes, config.Mailbox{Name: q, Host: imapHost, Port: imapPort, TLS: config.TLSNone,
			User: q + "@" + demoDomain, Password: demoPassword, Folder: "INBOX", ProcessedFolder: "Processed", Queue: q})
	}
	cfg.SMTP = config.SMTP{Host: smtpHost, Port: smtpPort, TLS: config.TLSNone, Auth: config.AuthNone, MaxConnections: 4,
		Timeout: 10 * time.Second}
	cfg.Queues = []config.Queue{
		{Name: "support", Addresses: []string{"support@" + demoDomain}, KeyPrefix: "SD", DefaultPriority: "P3",
			DefaultKind: "incident", Agents: []string{"ana", "ben"}, TeamLead: "ana"},
		{Name: "changes", Addresses: []string{"changes@" + demoDomain}, KeyPrefix: "CHG", DefaultPriority: "P3",
			DefaultKind: "change", Agents: []string{"ben"}, TeamLead: "ben"},
	}
	cfg.Agents = []config.Agent{
		{Name: "ana", Email: "ana@" + demoDomain, DisplayName: "Ana Agent", Role: config.RoleLead},
		{Name: "ben", Email: "ben@" + demoDomain, DisplayName: "Ben Agent", Role: config.RoleAgent},
		{Name: "max", Email: "max@" + demoDomain, DisplayName: "Max Manager", Role: config.RoleManager},
	}
	// SLA, rules and digests: placeholders until those features land; the example configuration
	// (configs/deskd.example.yaml) shows their reserved keys.
	cfg.ApplyDefaults()
	if problems := cfg.Validate(); len(problems) > 0 {
		return nil, config.ValidationError(problems)
	}
	return cfg, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", 0, fmt.Errorf("%s is not a loopback address: the demo only listens on loopback", host)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

func runDemo(ctx context.Context, g *globals, f *demoFlags) error {
	log, err := g.logger(nil)
	if err != nil {
		return err
	}
	pg, err := pgboot.EnsureFresh(ctx, pgboot.ThrowawayURL("demo"), func(s string) { fmt.Fprintln(g.stderr, "demo:", s) })
	if err != nil {
		return err
	}
	defer pg.Close()
	users := map[string]string{}
	for _, u := range demoUsers {
		users[u] = demoPassword
	}
	mm, err := memmail.Start(ctx, memmail.Options{Users: users, Hostname: "mail." + demoDomain, IMAPListen: f.imapAddr,
		SMTPListen: f.smtpAddr})
	if err != nil {
		return fmt.Errorf("start demo mail servers: %w", err)
	}
	defer mm.Close()
	for _, q := range []string{"support", "changes"} {
		if err := mm.CreateFolder(q+"@"+demoDomain, "Processed"); err != nil {
			return err
		}
	}
	cfg, err := demoConfig(pg.URL, mm.IMAPAddr(), mm.SMTPAddr(), f.httpAddr)
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.Database.URL, 2)
	if err != nil {
		return err
	}
	if _, err := db.Migrate(ctx, pool); err != nil {
		pool.Close()
		return err
	}
	pool.Close()
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	if f.scenario {
		return runScenario(ctx, g, a, mm)
	}
	printDemoBanner(g, cfg, mm, pg)
	return a.run(ctx)
}

// selfCommand is how to run this binary again from the same shell: its path as invoked (e.g.
// bin/deskd after `make demo`), or "deskd" when it runs from a temporary build (go run).
func selfCommand() string {
	self := os.Args[0]
	if strings.Contains(self, "go-build") || !strings.Contains(self, "/") {
		return "deskd"
	}
	return self
}

func printDemoBanner(g *globals, cfg *config.Config, mm *memmail.Server, pg *pgboot.Database) {
	w := g.stdout
	d := selfCommand()
	fmt.Fprintf(w, `
deskd demo is running.

  IMAP   %s   (plain, no TLS; every user's password is %q)
  SMTP   %s   (no auth needed; delivers into the IMAP mailboxes)
  HTTP   http://%s/healthz  /readyz  /metrics
  DB     %[5]s%[7]s

  desk:       support@demo.test (queue support, SD-…), changes@demo.test (queue changes, CHG-…)
  requesters: alice@demo.test, bob@demo.test, carol@demo.test
  agents:     ana@demo.test, ben@demo.test     manager: max@demo.test

Try next, in another terminal:
  %[8]s demo send --from alice@demo.test --subject "VPN is down" --body "It drops every 5 minutes."
  %[8]s demo inbox alice@demo.test          # the acknowledgement with the ticket key
  %[8]s demo inbox ana@demo.test            # the agent notification; reply to it from a mail client
  DESKD_DATABASE_URL='%[6]s' %[8]s ticket list
Or connect any mail client to the ports above (user alice@demo.test, password %[2]q).
Stop with Ctrl-C.
`, mm.IMAPAddr(), demoPassword, mm.SMTPAddr(), cfg.HTTP.Listen, cfg.Database.URL, cfg.Database.URL, privateNote(pg), d)
}

func privateNote(pg *pgboot.Database) string {
	if pg.Private {
		return "  (private throwaway cluster in " + pg.Dir + ", removed on exit)"
	}
	return ""
}
