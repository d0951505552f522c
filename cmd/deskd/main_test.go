package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/tickets"
)

// deskd runs the CLI in-process and returns its exit code and output.
func deskd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeConfig(t *testing.T, dbURL, listen string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deskd.yaml")
	cfg := fmt.Sprintf(`database:
  url: %q
http:
  listen: %q
desk:
  domain: desk.example.com
  secret: 0123456789abcdef0123456789abcdef
smtp:
  host: 127.0.0.1
  port: 2525
  tls: none
queues:
  - name: support
    addresses: [support@desk.example.com]
    key_prefix: SD
    agents: [ana]
agents:
  - name: ana
    email: ana@desk.example.com
`, dbURL, listen)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMigrateTwiceIsANoOpAndConcurrentRunsSucceed(t *testing.T) {
	ctx := context.Background()
	url := testdb.NewEmpty(t)
	t.Setenv("DESKD_DATABASE_URL", url)

	var wg sync.WaitGroup
	codes := make([]int, 3)
	outs := make([]string, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], outs[i], _ = deskd(t, ctx, "migrate")
		}()
	}
	wg.Wait()
	applied := 0
	for i, c := range codes {
		if c != 0 {
			t.Fatalf("concurrent migrate %d exited %d: %s", i, c, outs[i])
		}
		if strings.Contains(outs[i], "applied 0001_core") {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("%d concurrent runs applied 0001_core, want exactly 1: %q", applied, outs)
	}
	code, out, _ := deskd(t, ctx, "migrate")
	if code != 0 || !strings.Contains(out, "nothing to apply") {
		t.Errorf("second migrate: code %d out %q, want a no-op", code, out)
	}
	pool, err := db.Open(ctx, url, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(db.Migrations()) {
		t.Errorf("schema_migrations rows %d (%v), want %d", n, err, len(db.Migrations()))
	}
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	ctx := context.Background()
	url := testdb.NewEmpty(t)
	cfg := writeConfig(t, url, "127.0.0.1:0")
	code, _, stderr := deskd(t, ctx, "serve", "--config", cfg, "--log-format", "json")
	if code == 0 {
		t.Fatal("serve on an unmigrated database exited 0")
	}
	if !strings.Contains(stderr, "deskd migrate") {
		t.Errorf("stderr %q lacks the `deskd migrate` hint", stderr)
	}
}

func TestCheckConfigPrintsProblemsWithKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(`desk:
  domain: desk.example.com
  secret: short
mailboxes:
  - name: inbox
    host: imap.example.com
    port: 70000
    user: u
    password: p
    queue: nope
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := deskd(t, ctx, "check-config", "--config", path)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, want := range []string{"mailboxes[0].port: must be 1-65535", "desk.secret:", "mailboxes[0].queue:"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	good := writeConfig(t, "postgres://x@127.0.0.1/x", "127.0.0.1:0")
	if code, out, errOut := deskd(t, ctx, "check-config", "--config", good); code != 0 || !strings.Contains(out, "configuration ok") {
		t.Errorf("valid config: code %d out %q err %q", code, out, errOut)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeEndpointsAndGracefulShutdown(t *testing.T) {
	pool, url := testdb.NewWithURL(t)
	addr := freePort(t)
	cfg := writeConfig(t, url, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--log-format", "json"}, io.Discard, &stderr)
	}()

	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(t, "http://"+addr+"/healthz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer /healthz: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, body := get(t, "http://"+addr+"/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics lacks runtime metrics: %d", code)
	}
	// schema gate in readiness: drop the migration record, /readyz must fail
	if _, err := pool.Exec(context.Background(), `DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(body, "deskd migrate") {
		t.Errorf("/readyz with outdated schema: %d %q", code, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after SIGTERM-equivalent: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not shut down within 10s")
	}
	if !strings.Contains(stderr.String(), `"msg":"deskd stopped"`) {
		t.Errorf("no structured shutdown log: %s", stderr.String())
	}
}

func TestTicketListAndShowJSON(t *testing.T) {
	ctx := context.Background()
	pool, url := testdb.NewWithURL(t)
	t.Setenv("DESKD_DATABASE_URL", url)
	svc := tickets.NewService(pool, tickets.Options{})
	tk, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
		tk, _, err := tx.Create(ctx, tickets.NewTicket{Prefix: "SD", Queue: "support", Kind: tickets.KindIncident, Priority: tickets.P2,
			Requester: "alice@example.com", Subject: "Printer on fire",
			Message: &tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, AuthorKind: tickets.ActorUser,
				MessageID: "a@x", From: "alice@example.com", Author: "alice@example.com", Text: "help", VisibleText: "help"},
			Actor: tickets.Actor{Kind: tickets.ActorUser, Name: "alice@example.com"}})
		return tk, err
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := deskd(t, ctx, "ticket", "list", "--json", "--status", "new", "--queue", "support")
	if code != 0 {
		t.Fatalf("ticket list: %d %s", code, errOut)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0]["key"] != tk.Key || list[0]["priority"] != "P2" {
		t.Errorf("ticket list --json: %v %s", err, out)
	}
	if code, out, _ := deskd(t, ctx, "ticket", "list", "--status", "closed", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("filtered list: %d %q", code, out)
	}
	code, out, errOut = deskd(t, ctx, "ticket", "show", strings.ToLower(tk.Key), "--json")
	if code != 0 {
		t.Fatalf("ticket show: %d %s", code, errOut)
	}
	var show struct {
		Key      string `json:"key"`
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
		Events []struct {
			Kind string `json:"kind"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil || show.Key != tk.Key || len(show.Messages) != 1 ||
		show.Messages[0].Text != "help" || len(show.Events) != 1 || show.Events[0].Kind != "created" {
		t.Errorf("ticket show --json: %v %s", err, out)
	}
	code, out, errOut = deskd(t, ctx, "ticket", "show", tk.Key)
	if code != 0 || !strings.Contains(out, " from alice@example.com at ") {
		t.Errorf("ticket show: %d %s %s: want the message's sender once", code, out, errOut)
	}
	if code, _, errOut := deskd(t, ctx, "ticket", "show", "SD-1"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("show missing ticket: %d %q", code, errOut)
	}
}

func TestMessageAuthorNamesTheSenderOnce(t *testing.T) {
	for _, c := range []struct {
		from, author, want string
	}{
		{"alice@example.com", "alice@example.com", "alice@example.com"},
		{"alice@example.com", "Alice@Example.com", "alice@example.com"},
		{"alice@example.com", "", "alice@example.com"},
		{"support@example.com", "ana", "support@example.com (ana)"},
		{"", "sla", "sla"},
	} {
		if got := messageAuthor(&tickets.Message{From: c.from, Author: c.author}); got != c.want {
			t.Errorf("messageAuthor(%q, %q) = %q, want %q", c.from, c.author, got, c.want)
		}
	}
}
