package mailin_test

import (
	"strings"
	"testing"
	"time"
)

func TestPollerAdvisoryLockFailover(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	mb := h.mailbox()
	var logA, logB logBuffer
	stopA := h.start(mb, pollOptions(logA.logger()))
	waitFor(t, 5*time.Second, "poller A active", func() bool { return strings.Contains(logA.String(), "mailbox poller active") })
	stopB := h.start(mb, pollOptions(logB.logger()))
	waitFor(t, 5*time.Second, "poller B standby", func() bool { return strings.Contains(logB.String(), "mailbox poller standby") })
	h.appendMail(4)
	h.waitTickets(4, 10*time.Second)
	h.waitAllSeen(h.folder, 4)
	time.Sleep(500 * time.Millisecond) // several lock retries of the standby
	if strings.Contains(logB.String(), "mailbox poller active") {
		t.Fatalf("both pollers active:\nA:\n%s\nB:\n%s", logA.String(), logB.String())
	}
	if n := strings.Count(logB.String(), "mailbox poller standby"); n != 1 {
		t.Errorf("standby logged %d times, want once", n)
	}
	h.assertExactlyOnce(4)

	if err := stopA(); err != nil {
		t.Fatalf("stop A: %v", err)
	}
	took := waitFor(t, 5*time.Second, "poller B taking over", func() bool { return strings.Contains(logB.String(), "mailbox poller active") })
	if lim := pollOptions(nil).LockRetry + 300*time.Millisecond; took > lim {
		t.Errorf("standby took over after %v, want within LockRetry (%v)", took, lim)
	}
	t.Logf("standby took over %v after the active poller stopped", took)
	h.appendMail(2)
	h.waitTickets(6, 5*time.Second)
	h.waitAllSeen(h.folder, 6)
	h.assertExactlyOnce(6)
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
}

// TestPollerLockLostWhenConnectionDies kills the database session that holds the mailbox lock: the
// poller that held it must stop polling, and exactly one poller holds the lock afterwards and
// goes on ingesting.
func TestPollerLockLostWhenConnectionDies(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	var logA, logB logBuffer
	h.start(h.mailbox(), pollOptions(logA.logger()))
	waitFor(t, 5*time.Second, "poller A active", func() bool { return strings.Contains(logA.String(), "mailbox poller active") })
	h.start(h.mailbox(), pollOptions(logB.logger()))
	waitFor(t, 5*time.Second, "poller B standby", func() bool { return strings.Contains(logB.String(), "mailbox poller standby") })
	h.appendMail(2)
	h.waitTickets(2, 5*time.Second)

	const holders = `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
	if n := h.count(holders); n != 1 {
		t.Fatalf("%d advisory lock holders, want 1", n)
	}
	if n := h.count(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); n != 1 {
		t.Fatalf("terminated %d sessions, want 1", n)
	}
	waitFor(t, 5*time.Second, "poller A noticing the lost lock", func() bool { return strings.Contains(logA.String(), "mailbox lock lost") })
	waitFor(t, 5*time.Second, "a new lock holder", func() bool { return h.count(holders) == 1 })
	h.appendMail(2)
	h.waitTickets(4, 5*time.Second)
	h.waitAllSeen(h.folder, 4)
	h.assertExactlyOnce(4)
	if n := h.count(holders); n != 1 {
		t.Errorf("%d advisory lock holders, want 1", n)
	}
}
