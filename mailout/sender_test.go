package mailout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/internal/memmail"
	"github.com/deskd/deskd/internal/testdb"
)

// faultFor makes the sink refuse DATA with e for mail addressed to rcpt (while *on is true).
func faultFor(srv *memmail.Server, rcpt string, e *smtp.SMTPError) {
	srv.SetSMTPFault(func(_ string, to []string) *smtp.SMTPError {
		for _, a := range to {
			if strings.EqualFold(a, rcpt) {
				return e
			}
		}
		return nil
	})
}

// deliveriesByMessageID counts the sink's accepted messages per Message-ID (without brackets).
func deliveriesByMessageID(t *testing.T, srv *memmail.Server) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, d := range srv.Deliveries() {
		msg, err := mail.ReadMessage(bytes.NewReader(d.Data))
		if err != nil {
			t.Fatal(err)
		}
		out[strings.Trim(msg.Header.Get("Message-Id"), "<>")]++
	}
	return out
}

func runOnce(t *testing.T, s *Sender) int {
	t.Helper()
	n, err := s.runOnce(context.Background())
	if err != nil {
		t.Fatalf("runOnce: %v", err)
	}
	return n
}

func TestSendHeadersAsReceived(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	srv := startSink(t, "zoe@example.net")
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	ticket := seedTicket(t, pool, "zoe@example.net")

	m := ackMail("ack:hdr", ticket, "zoe@example.net")
	m.From.Name = "Służba Techniczna — Desk"
	m.To[0].Name = "Zoë Ærøskøbing"
	m.Subject = "[SD-1042] Drucker brennt — Büro"
	m.References = []string{"<root@client.example.net>"}
	id, _ := enqueue(t, pool, ob, m)
	if n := runOnce(t, s); n != 1 {
		t.Fatalf("sent %d, want 1", n)
	}
	row := readRow(t, pool, id)
	if row.Status != "sent" || row.Attempts != 1 {
		t.Fatalf("row %+v, want sent after 1 attempt", row)
	}
	ds := srv.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("%d deliveries", len(ds))
	}
	if ds[0].From == "" || !strings.HasPrefix(ds[0].From, "support+t-") {
		t.Errorf("envelope sender %q, want the signed reply address", ds[0].From)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(ds[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	mid := strings.Trim(h.Get("Message-Id"), "<>")
	if !strings.HasSuffix(mid, "@"+testDomain) || mid != row.MessageID {
		t.Errorf("Message-ID %q, want the stored %q on %s", mid, row.MessageID, testDomain)
	}
	if got, err := testSigner(t).TicketFromMessageID(mid); err != nil || got != ticket {
		t.Errorf("Message-ID token gives ticket %d (%v), want %d", got, err, ticket)
	}
	checks := map[string]string{
		"In-Reply-To":              "<orig-1@client.example.net>",
		"References":               "<root@client.example.net> <orig-1@client.example.net>",
		"Auto-Submitted":           "auto-replied",
		"X-Auto-Response-Suppress": "All",
		"Precedence":               "bulk",
		LoopHeader:                 testDomain,
	}
	for k, v := range checks {
		if got := unfold(h.Get(k)); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if subj != "[SD-1042] Drucker brennt — Büro" {
		t.Errorf("Subject %q", subj)
	}
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "Służba Techniczna — Desk" || !strings.Contains(strings.ToLower(h.Get("From")), "=?utf-8?") {
		t.Errorf("From %q decodes to %v (%v)", h.Get("From"), from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || to[0].Name != "Zoë Ærøskøbing" {
		t.Errorf("To %q decodes to %v (%v)", h.Get("To"), to, err)
	}
}

func TestSendRetriesWithBackoffThenDies(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	limits := testLimits()
	limits.RetryDeadline = 10 * time.Minute
	ob := newTestOutbox(t, clk, limits)
	srv := startSink(t, "zoe@example.net", agentAddr)
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	ticket := seedTicket(t, pool, "zoe@example.net")
	id, _ := enqueue(t, pool, ob, ackMail("ack:retry", ticket, "zoe@example.net"))
	outcomes := map[string]int{}
	s.outcome = func(o string) { outcomes[o]++ } // runOnce below sends one row at a time

	faults := []*smtp.SMTPError{
		{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down"},
		{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"},
	}
	var waits []time.Duration
	for attempt := 1; ; attempt++ {
		faultFor(srv, "zoe@example.net", faults[attempt%2])
		runOnce(t, s)
		row := readRow(t, pool, id)
		if row.Attempts != attempt {
			t.Fatalf("attempt %d: attempts column %d", attempt, row.Attempts)
		}
		if row.Status == "dead" {
			if !strings.Contains(row.LastError, "retry deadline") {
				t.Errorf("dead row last_error %q, want the deadline", row.LastError)
			}
			break
		}
		if row.Status != "pending" || !strings.Contains(row.LastError, "4") {
			t.Fatalf("attempt %d: %+v, want pending with the 4xx reply", attempt, row)
		}
		waits = append(waits, row.NextAttemptAt.Sub(clk.Now()))
		clk.Advance(row.NextAttemptAt.Sub(clk.Now()))
		if attempt > 20 {
			t.Fatal("never gave up")
		}
	}
	// Equal jitter draws from [d/2, d] with d = 30s, 60s, 120s, 240s (cap), 240s, ... and never past
	// the deadline (10 minutes after enqueue).
	for i, w := range waits {
		d := min(30*time.Second<<i, 4*time.Minute)
		if w > d || (w < d/2 && i < len(waits)-1) {
			t.Errorf("wait %d = %v, want within [%v, %v]", i+1, w, d/2, d)
		}
	}
	if len(waits) < 3 {
		t.Errorf("only %d retries before the deadline: %v", len(waits), waits)
	}
	if srv.Accepted() != 0 {
		t.Fatalf("the sink accepted %d messages while failing", srv.Accepted())
	}
	if whys := eventKinds(t, pool, ticket, "mail_dead"); len(whys) != 1 {
		t.Errorf("mail_dead events %q, want 1", whys)
	}
	// The dead-letter notice goes to the agent on the next round.
	clk.Advance(time.Second)
	runOnce(t, s)
	ds := srv.Deliveries()
	if len(ds) != 1 || ds[0].To[0] != agentAddr {
		t.Fatalf("deliveries %+v, want the dead-letter notice to the agent", ds)
	}
	if n := countRows(t, pool, `SELECT count(*) FROM outbox WHERE kind = $1`, KindDeadLetter); n != 1 {
		t.Errorf("%d dead-letter notices, want 1", n)
	}
	if outcomes["retry"] != len(waits) || outcomes["dead"] != 1 || outcomes["sent"] != 1 {
		t.Errorf("outcomes %v, want %d retry, 1 dead, 1 sent", outcomes, len(waits))
	}
}

func TestSendPermanentFailures(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	// The agent is unknown to the sink: the dead-letter notices die too, and must not beget more.
	srv := startSink(t, "zoe@example.net", "max@example.net")
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	ticket := seedTicket(t, pool, "zoe@example.net")

	// 550 5.7.1 at DATA: dead at once, the contact stays deliverable.
	faultFor(srv, "zoe@example.net", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Rejected"})
	policyID, _ := enqueue(t, pool, ob, ackMail("ack:policy", ticket, "zoe@example.net"))
	// Unknown mailbox (550 5.1.1 at RCPT): dead and undeliverable.
	ghostID, _ := enqueue(t, pool, ob, ackMail("ack:ghost", ticket, "ghost@example.net"))
	// One refused recipient among good ones: sent to the good one, the other marked.
	mixed := ackMail("ack:mixed", ticket, "max@example.net")
	mixed.To = append(mixed.To, Address{Email: "ghost2@example.net"})
	mixedID, _ := enqueue(t, pool, ob, mixed)

	runOnce(t, s)
	for _, id := range []int64{policyID, ghostID} {
		if row := readRow(t, pool, id); row.Status != "dead" || row.Attempts != 1 || !strings.Contains(row.LastError, "550") {
			t.Errorf("row %d: %+v, want dead after one attempt with the 550", id, row)
		}
	}
	if row := readRow(t, pool, mixedID); row.Status != "sent" || !strings.Contains(row.LastError, "ghost2@example.net") {
		t.Errorf("mixed row %+v, want sent noting the refused recipient", row)
	}
	undeliverable := func(email string) bool {
		return countRows(t, pool, `SELECT count(*) FROM contacts WHERE email = $1 AND undeliverable_at IS NOT NULL`, email) == 1
	}
	if !undeliverable("ghost@example.net") || !undeliverable("ghost2@example.net") || undeliverable("zoe@example.net") {
		t.Error("want ghost and ghost2 undeliverable (5.1.1), zoe not (5.7.1)")
	}
	if got := eventKinds(t, pool, ticket, "mail_dead"); len(got) != 2 {
		t.Errorf("mail_dead events %q, want 2", got)
	}
	if got := eventKinds(t, pool, ticket, "mail_refused"); len(got) != 2 {
		t.Errorf("mail_refused events %q, want 2 (ghost, ghost2)", got)
	}
	// The two notices fail (agent unknown) and die without a notice about a notice.
	clk.Advance(time.Second)
	runOnce(t, s)
	if n := countRows(t, pool, `SELECT count(*) FROM outbox WHERE kind = $1 AND status = 'dead'`, KindDeadLetter); n != 2 {
		t.Errorf("%d dead dead-letter notices, want 2", n)
	}
	clk.Advance(time.Second)
	runOnce(t, s)
	if n := countRows(t, pool, `SELECT count(*) FROM outbox WHERE kind = $1`, KindDeadLetter); n != 2 {
		t.Errorf("%d dead-letter notices in all, want 2 (none about a notice)", n)
	}
	// Later mail to the undeliverable contact is suppressed at enqueue.
	if _, queued := enqueue(t, pool, ob, ackMail("ack:ghost-again", ticket, "ghost@example.net")); queued {
		t.Error("mail to an undeliverable contact was queued")
	}
}

func TestSendCrashAfterAcceptance(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	srv := startSink(t, "zoe@example.net")
	smtpCfg := sinkSMTP(t, srv)
	var ids []int64
	for i := range 6 {
		id, _ := enqueue(t, pool, ob, ackMail("ack:crash:"+string(rune('a'+i)), seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
		ids = append(ids, id)
	}
	crashed := map[int64]bool{ids[1]: true, ids[4]: true}
	errCrash := errors.New("killed")

	// First life: the process "dies" right after the server accepted rows 1 and 4.
	s1 := newTestSender(t, pool, ob, clk, smtpCfg)
	s1.afterAccept = func(id int64) error {
		if crashed[id] {
			return errCrash
		}
		return nil
	}
	if _, err := s1.runOnce(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("runOnce err = %v, want the crash", err)
	}
	if srv.Accepted() != 6 {
		t.Fatalf("accepted %d, want 6", srv.Accepted())
	}
	for id := range crashed {
		if row := readRow(t, pool, id); row.Status != "sending" {
			t.Fatalf("crashed row %d is %s, want sending", id, row.Status)
		}
	}

	// Second life, before the lease expires: nothing is resent.
	s2 := newTestSender(t, pool, ob, clk, smtpCfg)
	if n := runOnce(t, s2); n != 0 {
		t.Fatalf("resent %d mails within the lease", n)
	}
	// After the lease: exactly the crashed rows are resent, identical Message-IDs.
	clk.Advance(s2.lease + time.Second)
	if n := runOnce(t, s2); n != len(crashed) {
		t.Fatalf("resent %d mails after the lease, want %d", n, len(crashed))
	}
	clk.Advance(time.Hour)
	runOnce(t, s2)

	counts := deliveriesByMessageID(t, srv)
	for _, id := range ids {
		row := readRow(t, pool, id)
		want := 1
		if crashed[id] {
			want = 2 // the documented window: at most one extra delivery per interruption
		}
		if row.Status != "sent" || counts[row.MessageID] != want {
			t.Errorf("row %d: status %s, delivered %d times; want sent, %d", id, row.Status, counts[row.MessageID], want)
		}
	}
	if len(counts) != len(ids) {
		t.Errorf("%d distinct Message-IDs delivered, want %d", len(counts), len(ids))
	}
}

func TestSendReusesConnectionsAndReleasesOnCancel(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	srv := startSink(t, "zoe@example.net")
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	for i := range 5 {
		enqueue(t, pool, ob, ackMail("ack:"+string(rune('a'+i)), seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
	}
	if n := runOnce(t, s); n != 5 {
		t.Fatalf("sent %d, want 5", n)
	}
	if idle := len(s.tr.idle); idle < 1 || idle > cap(s.tr.sem) {
		t.Errorf("%d idle connections after a round, want 1..%d kept for reuse", idle, cap(s.tr.sem))
	}
	// A cancelled round leaves nothing claimed: rows go back to pending, attempt uncounted.
	id, _ := enqueue(t, pool, ob, ackMail("ack:cancel", seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
	ctx, cancel := context.WithCancel(context.Background())
	s.afterAccept = nil
	rows, err := s.claim(ctx)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claim: %d rows, %v", len(rows), err)
	}
	cancel()
	if _, err := s.sendRow(ctx, rows[0]); !errors.Is(err, errNotAttempted) {
		t.Fatalf("sendRow after cancel: %v", err)
	}
	if err := s.release(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	if row := readRow(t, pool, id); row.Status != "pending" || row.Attempts != 0 {
		t.Errorf("released row %+v, want pending with 0 attempts", row)
	}
}

func TestSendSTARTTLSAndAuth(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	srv, err := memmail.Start(context.Background(), memmail.Options{
		Users:    map[string]string{"zoe@example.net": "pw", "relay@example.net": "relay-pw"},
		STARTTLS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg := sinkSMTP(t, srv)
	cfg.TLS, cfg.Auth, cfg.User, cfg.Password = config.TLSStartTLS, config.AuthPlain, "relay@example.net", "relay-pw"
	s, err := NewSender(SenderOptions{Pool: pool, Outbox: ob, SMTP: cfg, Now: clk.Now, TLSConfig: srv.ClientTLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.tr.close()
	enqueue(t, pool, ob, ackMail("ack:tls", seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
	if n := runOnce(t, s); n != 1 {
		t.Fatalf("sent %d over STARTTLS, want 1", n)
	}
	if d := srv.Deliveries(); len(d) != 1 || d[0].Auth != "relay@example.net" {
		t.Errorf("deliveries %+v, want one authenticated as relay@example.net", d)
	}
}

func TestTransportSecurityRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg     config.SMTP
		wantErr string
	}{
		{config.SMTP{Host: "smtp.example.net", TLS: config.TLSNone}, "needs allow_insecure"},
		{config.SMTP{Host: "smtp.example.net", TLS: config.TLSNone, AllowInsecure: true}, ""},
		{config.SMTP{Host: "127.0.0.1", TLS: config.TLSNone, Auth: config.AuthPlain, User: "u", Password: "p"}, ""},
		{config.SMTP{Host: "smtp.example.net", TLS: config.TLSOpportunistic, Auth: config.AuthLogin, User: "u", Password: "p"}, "needs allow_insecure"},
		{config.SMTP{Host: "smtp.example.net", TLS: config.TLSOpportunistic, Auth: config.AuthCRAMMD5, User: "u", Password: "p"}, ""},
		{config.SMTP{Host: "smtp.example.net", TLS: config.TLSStartTLS, Auth: config.AuthPlain, User: "u", Password: "p"}, ""},
		{config.SMTP{Host: "smtp.example.net", TLS: config.TLSImplicit, Auth: config.AuthLogin, User: "u", Password: "p"}, ""},
		{config.SMTP{Host: "smtp.example.net", TLS: "sometimes"}, "unknown tls mode"},
	}
	for _, tc := range tests {
		_, err := newTransport(tc.cfg, "desk.example.org", nil)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.wantErr)
		}
	}
}

// TestSendSIGKILL kills a real sender process with SIGKILL right after the SMTP server accepted its
// third mail, before the outcome is committed, then restarts sending in this process after the lease.
// Every mail must arrive; only the one in flight may arrive twice, with the same Message-ID.
func TestSendSIGKILL(t *testing.T) {
	t.Parallel()
	pool, dbURL := testdb.NewWithURL(t)
	clk := newClock()
	clk.t = time.Now()
	ob := newTestOutbox(t, clk, testLimits())
	srv := startSink(t, "zoe@example.net")
	for i := range 5 {
		enqueue(t, pool, ob, ackMail(fmt.Sprintf("ack:kill:%d", i), seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILLChild$")
	cmd.Env = append(os.Environ(), "MAILOUT_CHILD_DB="+dbURL, "MAILOUT_CHILD_SMTP="+srv.SMTPAddr())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	if srv.Accepted() != 3 {
		t.Fatalf("sink accepted %d before the kill, want 3", srv.Accepted())
	}
	// Restart: within the lease nothing is claimed; after it, the rest go out.
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	if n := runOnce(t, s); n != 0 {
		t.Fatalf("resent %d mails within the dead sender's lease", n)
	}
	clk.Advance(time.Hour) // past any lease the child took
	for range 3 {
		runOnce(t, s)
	}
	counts := deliveriesByMessageID(t, srv)
	twice := 0
	for id, n := range counts {
		switch n {
		case 1:
		case 2:
			twice++
		default:
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if len(counts) != 5 || twice != 1 {
		t.Errorf("%d distinct mails delivered, %d twice; want 5 and exactly 1 (the one in flight)", len(counts), twice)
	}
	if n := countRows(t, pool, `SELECT count(*) FROM outbox WHERE status = 'sent'`); n != 5 {
		t.Errorf("%d rows sent, want 5", n)
	}
}

// TestSIGKILLChild is the sender process of TestSendSIGKILL; it does nothing unless started by it.
func TestSIGKILLChild(t *testing.T) {
	dbURL, addr := os.Getenv("MAILOUT_CHILD_DB"), os.Getenv("MAILOUT_CHILD_SMTP")
	if dbURL == "" {
		t.Skip("helper process for TestSendSIGKILL")
	}
	ctx := context.Background()
	pool, err := db.Open(ctx, dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ob := newTestOutbox(t, &clock{t: time.Now()}, testLimits())
	cfg := config.SMTP{Host: host, Port: p, TLS: config.TLSNone, MaxConnections: 1, Timeout: 5 * time.Second}
	s, err := NewSender(SenderOptions{Pool: pool, Outbox: ob, SMTP: cfg, MailOut: testLimits()})
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	s.afterAccept = func(int64) error {
		if accepted++; accepted == 3 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never reached in practice: the signal ends the process
		}
		return nil
	}
	_, err = s.runOnce(ctx)
	t.Fatalf("child survived: %v", err)
}

func TestRunDrainsAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	srv := startSink(t, "zoe@example.net")
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	s.interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := range 3 {
		enqueue(t, pool, ob, ackMail(fmt.Sprintf("ack:run:%d", i), seedTicket(t, pool, "zoe@example.net"), "zoe@example.net"))
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := srv.WaitAccepted(wctx, 3); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if n := countRows(t, pool, `SELECT count(*) FROM outbox WHERE status = 'sent'`); n != 3 {
		t.Errorf("%d rows sent, want 3", n)
	}
	if len(s.tr.idle) != 0 {
		t.Errorf("%d idle connections left open after Run returned", len(s.tr.idle))
	}
}

// TestTwoSendersNeverSendOneRowTwice runs two senders (two replicas) on one outbox at once.
func TestTwoSendersNeverSendOneRowTwice(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	limits := testLimits()
	limits.PerRecipientPerHour = 0
	ob := newTestOutbox(t, clk, limits)
	srv := startSink(t, "zoe@example.net")
	ticket := seedTicket(t, pool, "zoe@example.net")
	const n = 60
	for i := range n {
		m := ackMail(fmt.Sprintf("ack:two:%d", i), ticket, "zoe@example.net")
		m.AutoSubmitted = "" // no per-ticket limit
		enqueue(t, pool, ob, m)
	}
	a := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	b := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	a.batch, b.batch = 7, 7
	var wg sync.WaitGroup
	for _, s := range []*Sender{a, b} {
		wg.Go(func() {
			for range 20 {
				if _, err := s.runOnce(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	counts := deliveriesByMessageID(t, srv)
	for id, c := range counts {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if len(counts) != n || countRows(t, pool, `SELECT count(*) FROM outbox WHERE status = 'sent'`) != n {
		t.Errorf("%d distinct deliveries, want %d all sent", len(counts), n)
	}
}
