package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deskd/deskd/internal/syncbuf"
	"github.com/deskd/deskd/internal/testdb"
)

// demoDatabase points DATABASE_URL at a per-test demo database on the test server.
func demoDatabase(t *testing.T) {
	t.Helper()
	name := fmt.Sprintf("deskd_demo_t%d", time.Now().UnixNano()%1e9)
	url := strings.Replace(testdb.AdminURL(), "/postgres?", "/"+name+"?", 1)
	t.Setenv("DATABASE_URL", url)
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, testdb.AdminURL())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
}

func TestDemoSendProducesTicketAndAcknowledgement(t *testing.T) {
	demoDatabase(t)
	imapAddr, smtpAddr, httpAddr := freePort(t), freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errOut syncbuf.Buffer // the demo keeps logging while the test reads
	go func() {
		done <- run(ctx, []string{"demo", "--imap", imapAddr, "--smtp", smtpAddr, "--http", httpAddr, "--log-format", "json"}, &out, &errOut)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get(t, "http://"+httpAddr+"/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not become ready: %s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, sendOut, sendErr := deskd(t, ctx, "demo", "send", "--smtp", smtpAddr, "--from", "alice@demo.test",
		"--subject", "VPN is down", "--body", "It drops every 5 minutes.")
	if code != 0 {
		t.Fatalf("demo send: %d %s", code, sendErr)
	}
	if !strings.Contains(sendOut, "sent <") {
		t.Errorf("demo send output %q", sendOut)
	}
	inbox := waitInbox(t, ctx, imapAddr, "alice@demo.test", "[SD-", deadline)
	if !strings.Contains(inbox, "[SD-1000] Received: VPN is down") {
		t.Errorf("alice's inbox lacks the acknowledgement:\n%s", inbox)
	}
	// The agents' notification is a separate outbox row, delivered by another sender worker: it may
	// land after the acknowledgement.
	agentInbox := waitInbox(t, ctx, imapAddr, "ana@demo.test", "[SD-1000]", deadline)
	if !strings.Contains(agentInbox, "[SD-1000]") {
		t.Errorf("agent ana got no notification:\n%s", agentInbox)
	}
	if !strings.Contains(out.String(), "deskd demo send --from alice@demo.test") {
		t.Errorf("banner lacks the next step:\n%s", out.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited %d: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop")
	}
}

func TestDemoScenarioEndsWithSummary(t *testing.T) {
	demoDatabase(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"demo", "--scenario", "--imap", freePort(t), "--smtp", freePort(t),
		"--http", freePort(t), "--log-format", "json", "--log-level", "warn"}, &out, io.MultiWriter(&errOut))
	if code != 0 {
		t.Fatalf("scenario exited %d: %s\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"Scenario finished", "SD-1000", "SD-1001", "CHG-1002", "Mails sent by the desk:",
		"agent ana answered by mail -> alice received"} {
		if !strings.Contains(s, want) {
			t.Errorf("scenario output lacks %q:\n%s", want, s)
		}
	}
}

// waitInbox lists who's demo inbox until it contains want or the deadline passes, and returns the
// last listing.
func waitInbox(t *testing.T, ctx context.Context, imapAddr, who, want string, deadline time.Time) string {
	t.Helper()
	for {
		_, inbox, _ := deskd(t, ctx, "demo", "inbox", who, "--imap", imapAddr)
		if strings.Contains(inbox, want) || time.Now().After(deadline) {
			return inbox
		}
		time.Sleep(50 * time.Millisecond)
	}
}
