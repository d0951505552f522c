package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/mailstack"
	"github.com/deskd/deskd/internal/testdb"
)

// The people of the test. Postfix accepts mail for both domains (mailstack derives its
// virtual_mailbox_domains from these addresses): desk.test for the desk and its agent,
// example.test for the requester.
const (
	supportAddr = "support@desk.test"
	aliceAddr   = "alice@example.test"
	anaAddr     = "ana@desk.test"
	password    = "pw"

	// deskDomain is the right-hand side of deskd's Message-IDs and the value of its loop header.
	deskDomain = "mail.desk.test"
	// processedFolder is where the poller moves ingested mail; the poller creates it.
	processedFolder = "Processed"
)

// configYAML is the deskd configuration of the test. poll_interval is long on purpose: mail that
// arrives within seconds was noticed through IMAP IDLE (RFC 2177), not by polling.
const configYAML = `database:
  url: %q
  max_conns: 4
http:
  listen: %q
log:
  format: json
  level: debug
desk:
  name: E2E Service Desk
  domain: %q
  secret: "e2e-secret-0123456789abcdef"
mailin:
  poll_interval: 10m
  reconnect_min: 200ms
  reconnect_max: 2s
mailboxes:
  - name: support
    host: %q
    port: %d
    tls: none
    user: %q
    password: %q
    folder: INBOX
    processed_folder: %q
    queue: support
smtp:
  host: %q
  port: %d
  tls: none
  auth: none
  timeout: 10s
mailout:
  backoff_min: 1s
  backoff_max: 5s
queues:
  - name: support
    addresses: [%q]
    key_prefix: SD
    agents: [ana]
agents:
  - name: ana
    email: %q
    display_name: Ana Agent
`

// writeConfig writes the deskd configuration for the stack and database and returns its path.
func writeConfig(t *testing.T, dbURL, httpAddr string, st *mailstack.Stack) string {
	t.Helper()
	imapHost, imapPort := splitAddr(t, st.Dovecot.IMAPAddr())
	smtpHost, smtpPort := splitAddr(t, st.Postfix.SMTPAddr())
	yaml := fmt.Sprintf(configYAML, dbURL, httpAddr, deskDomain, imapHost, imapPort, supportAddr, password,
		processedFolder, smtpHost, smtpPort, supportAddr, anaAddr)
	path := filepath.Join(t.TempDir(), "deskd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		t.Fatalf("port of %s: %v", addr, err)
	}
	return host, p
}

// ticketShow is the part of `deskd ticket show --json` the test reads.
type ticketShow struct {
	Key      string `json:"key"`
	Messages []struct {
		Direction    string `json:"direction"`
		Visibility   string `json:"visibility"`
		Class        string `json:"class"`
		From         string `json:"from"`
		VisibleText  string `json:"visible_text"`
		ThreadReason string `json:"thread_reason"`
	} `json:"messages"`
}

// TestRealMailStack runs the deskd binary against Dovecot, Postfix and s-nail: a requester's mail
// becomes a ticket and an acknowledgement, her reply threads onto the ticket and reaches the agent,
// an auto-reply is recorded but never answered, and SIGTERM shuts deskd down cleanly.
func TestRealMailStack(t *testing.T) {
	if err := mailstack.Available(); err != nil && os.Getenv("CI") != "" {
		t.Fatalf("CI=%s and %v", os.Getenv("CI"), err) // mailstack.Require fails only for CI=true
	}
	start := time.Now()
	st := mailstack.StartStack(t, map[string]string{supportAddr: password, aliceAddr: password, anaAddr: password})
	pool, dbURL := testdb.NewWithURL(t)
	bin := buildDeskd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	httpAddr := freeAddr(t)
	cfg := writeConfig(t, dbURL, httpAddr, st)
	d := startDaemon(t, bin, cfg)
	d.waitReady(t, httpAddr, 15*time.Second)
	// Readiness covers the database; wait for the poller too, so the figures below measure IDLE.
	eventually(t, "mailbox poller active", 10*time.Second, 20*time.Millisecond, func() bool {
		return d.hasLog("mailbox poller active")
	})
	t.Logf("stack, database, build and deskd ready in %v", time.Since(start).Round(time.Millisecond))

	smtpAddr := st.Postfix.SMTPAddr()
	imapAddr := st.Dovecot.IMAPAddr()
	alice := openMailbox(t, imapAddr, aliceAddr, password)
	ana := openMailbox(t, imapAddr, anaAddr, password)
	support := openMailbox(t, imapAddr, supportAddr, password)

	// 1. Alice writes to the desk with s-nail through Postfix.
	const subject = "VPN drops every five minutes"
	sent := time.Now()
	if err := mailstack.SendWithSNail(ctx, smtpAddr, "Alice Example <"+aliceAddr+">", supportAddr, subject,
		"Hello,\n\nthe VPN drops every five minutes since this morning.\n\nAlice\n"); err != nil {
		t.Fatal(err)
	}
	submitted := time.Since(sent)
	var key string
	steps := []*milestone{
		{name: "in Dovecot", done: func() bool { return support.count("INBOX")+support.count(processedFolder) >= 1 }},
		{name: "raw mail stored", done: func() bool { return countRows(t, ctx, pool, `SELECT count(*) FROM raw_mails`) >= 1 }},
		{name: "ticket committed", done: func() bool {
			return pool.QueryRow(ctx, `SELECT key FROM tickets ORDER BY id LIMIT 1`).Scan(&key) == nil
		}},
		{name: "ack in alice's INBOX", done: func() bool { return alice.count("INBOX") >= 1 }},
		{name: "agent_new in ana's INBOX", done: func() bool { return ana.count("INBOX") >= 1 }},
	}
	waitMilestones(t, sent, 15*time.Second, steps...)
	t.Logf("FIGURE new mail %s, from s-nail's start: s-nail done %v, %s", key, submitted.Round(time.Millisecond),
		figures(steps...))

	var list []struct {
		Key, Requester, Subject, Queue, Status string
	}
	deskdJSON(t, ctx, bin, cfg, &list, "ticket", "list", "--json")
	if len(list) != 1 || list[0].Key != key || list[0].Requester != aliceAddr || list[0].Subject != subject ||
		list[0].Queue != "support" {
		t.Fatalf("deskd ticket list: %+v, want one ticket %s from %s on queue support with subject %q", list, key,
			aliceAddr, subject)
	}
	if !strings.HasPrefix(key, "SD-") {
		t.Errorf("ticket key %q, want prefix SD-", key)
	}

	// Dovecot delivered it to the desk's INBOX, and the poller moved it to the processed folder.
	support.waitCount(processedFolder, 1, 10*time.Second)
	if n := support.count("INBOX"); n != 0 {
		t.Errorf("support INBOX holds %d messages after ingest, want 0 (moved to %s)", n, processedFolder)
	}
	original := parsed(t, support.fetchAll(processedFolder)[0])
	if original.MessageID == "" || !strings.HasSuffix(original.MessageID, "@example.test") {
		t.Fatalf("alice's Message-ID %q: want one s-nail wrote at example.test", original.MessageID)
	}

	ackRaw := alice.fetchAll("INBOX")[0]
	checkAck(t, parsed(t, ackRaw), key, original.MessageID)

	// 2. Alice answers the acknowledgement: s-nail quotes it under an attribution line.
	const replyText = "Thanks. It dropped again at 10:15, right after I restarted the router."
	sent = time.Now()
	if err := mailstack.ReplyWithSNail(ctx, smtpAddr, "Alice Example <"+aliceAddr+">", ackRaw, replyText+"\n"); err != nil {
		t.Fatal(err)
	}
	submitted = time.Since(sent)
	var agentReply []byte
	steps = []*milestone{
		{name: "in Dovecot", done: func() bool { return support.count("INBOX")+support.count(processedFolder) >= 2 }},
		{name: "appended to the ticket", done: func() bool { return countRows(t, ctx, pool, `SELECT count(*) FROM messages`) >= 2 }},
		{name: "agent_reply in ana's INBOX", done: func() bool {
			if ana.count("INBOX") < 2 {
				return false
			}
			for _, raw := range ana.fetchAll("INBOX") {
				if strings.Contains(parsed(t, raw).Text, replyText) {
					agentReply = raw
					return true
				}
			}
			return false
		}},
	}
	// poll_interval is 10m: only IDLE can bring the reply in within the bound.
	waitMilestones(t, sent, 15*time.Second, steps...)
	t.Logf("FIGURE reply on %s, from s-nail's start: s-nail done %v, %s", key, submitted.Round(time.Millisecond),
		figures(steps...))

	var show ticketShow
	deskdJSON(t, ctx, bin, cfg, &show, "ticket", "show", key, "--json")
	if len(show.Messages) != 2 {
		t.Fatalf("ticket %s has %d messages after the reply, want 2: %+v", key, len(show.Messages), show.Messages)
	}
	checkReply(t, show, replyText)
	if n := countRows(t, ctx, pool, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets after the reply, want 1", n)
	}
	if m := parsed(t, agentReply); !strings.Contains(m.Subject, "["+key+"]") {
		t.Errorf("agent notification subject %q lacks [%s]", m.Subject, key)
	}

	// 3. Machines are never answered: an auto-reply to the ack is recorded on the ticket, and one
	// that threads nowhere opens no ticket; neither causes any outbound mail.
	outboxBefore := countRows(t, ctx, pool, `SELECT count(*) FROM outbox`)
	if err := mailstack.ReplyWithSNail(ctx, smtpAddr, aliceAddr, ackRaw,
		"I am out of the office until Monday.\n", "Auto-Submitted: auto-replied"); err != nil {
		t.Fatal(err)
	}
	if err := mailstack.SendWithSNail(ctx, smtpAddr, aliceAddr, supportAddr, "Automatic reply: out of office",
		"I am out of the office until Monday.\n", "Auto-Submitted: auto-replied"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both auto-replies processed", 15*time.Second, 10*time.Millisecond, func() bool {
		return countRows(t, ctx, pool, `SELECT count(*) FROM raw_mails WHERE state <> 'pending'`) >= 4
	})
	time.Sleep(1500 * time.Millisecond) // settle: an ack, if one were sent, would arrive by now
	checkMachineMail(t, ctx, pool, bin, cfg, key, outboxBefore)
	if n := alice.count("INBOX"); n != 1 {
		t.Errorf("alice's INBOX holds %d messages after her auto-replies, want only the first ack", n)
	}
	if n := support.count(processedFolder); n != 4 {
		t.Errorf("support %s holds %d messages, want 4", processedFolder, n)
	}
	checkMetrics(t, httpAddr)

	// 4. SIGTERM: deskd finishes in-flight work and exits 0.
	stopAt := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatal("deskd did not exit within 15s of SIGTERM")
	}
	if d.err != nil {
		t.Fatalf("deskd exited with %v after SIGTERM, want status 0", d.err)
	}
	t.Logf("FIGURE shutdown: SIGTERM -> exit 0 in %v", time.Since(stopAt).Round(time.Millisecond))
	for _, e := range d.logEntries() {
		switch e.Level {
		case "ERROR":
			t.Errorf("deskd logged an error: %s", e.raw)
		case "WARN":
			t.Logf("deskd warned: %s", e.raw)
		}
	}
	if !d.hasLog("deskd stopped") {
		t.Error(`deskd's log lacks "deskd stopped"`)
	}
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}

// countRows runs a count query on the test database.
func countRows(t *testing.T, ctx context.Context, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
