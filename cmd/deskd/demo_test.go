package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deskd/deskd/internal/mailstack"
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

// runningDemo is `deskd demo` running in this process on free ports.
type runningDemo struct {
	imapAddr, smtpAddr string
	ctx                context.Context
	cancel             context.CancelFunc
	done               chan int
	out, errOut        syncbuf.Buffer // the demo keeps logging while the test reads
	deadline           time.Time      // for everything the test waits for
}

// startDemo runs the demo until it is ready.
func startDemo(t *testing.T) *runningDemo {
	t.Helper()
	demoDatabase(t)
	d := &runningDemo{imapAddr: freePort(t), smtpAddr: freePort(t), done: make(chan int, 1),
		deadline: time.Now().Add(20 * time.Second)}
	httpAddr := freePort(t)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	go func() {
		d.done <- run(d.ctx, []string{"demo", "--imap", d.imapAddr, "--smtp", d.smtpAddr, "--http", httpAddr, "--log-format", "json"},
			&d.out, &d.errOut)
	}()
	for {
		if code, _ := get(t, "http://"+httpAddr+"/readyz"); code == 200 {
			return d
		}
		if time.Now().After(d.deadline) {
			t.Fatalf("demo did not become ready: %s", d.errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the demo and requires a clean exit.
func (d *runningDemo) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case code := <-d.done:
		if code != 0 {
			t.Errorf("demo exited %d: %s", code, d.errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop")
	}
}

func TestDemoSendProducesTicketAndAcknowledgement(t *testing.T) {
	d := startDemo(t)
	ctx, imapAddr, smtpAddr, deadline := d.ctx, d.imapAddr, d.smtpAddr, d.deadline
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
	if !strings.Contains(d.out.String(), "deskd demo send --from alice@demo.test") {
		t.Errorf("banner lacks the next step:\n%s", d.out.String())
	}
	d.stop(t)
}

// TestDemoWorksWithARealMailClient: a person's mail client (s-nail from Debian) sends a request to
// the demo's SMTP port and reads the acknowledgement from the demo's IMAP port.
func TestDemoWorksWithARealMailClient(t *testing.T) {
	mailstack.Require(t)
	d := startDemo(t)
	if err := mailstack.SendWithSNail(d.ctx, d.smtpAddr, "Bob <bob@demo.test>", "support@demo.test", "Printer jammed",
		"The printer on floor 3 eats every page."); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for {
		var err error
		subjects, err = mailstack.SubjectsWithSNail(d.ctx, d.imapAddr, "bob@demo.test", "demo")
		if err != nil {
			t.Fatal(err)
		}
		if len(subjects) > 0 || time.Now().After(d.deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(subjects) != 1 || !regexp.MustCompile(`^\[SD-\d+\] Received: Printer jammed$`).MatchString(subjects[0]) {
		t.Errorf("bob's INBOX as s-nail lists it: %q; want one acknowledgement with the ticket key", subjects)
	}
	d.stop(t)
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
