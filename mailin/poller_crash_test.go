package mailin_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/deskd/deskd/internal/db"
	"github.com/deskd/deskd/mailin"
)

// Environment of the crash helper process (TestHelperPoller).
const (
	helperEnv          = "DESKD_POLLER_HELPER"
	helperDBEnv        = "DESKD_POLLER_HELPER_DB"
	helperIMAPEnv      = "DESKD_POLLER_HELPER_IMAP"
	helperFailEnv      = "DESKD_POLLER_HELPER_FAILPOINT"
	helperProcessedEnv = "DESKD_POLLER_HELPER_PROCESSED"
	crashExitCode      = 137 // as if SIGKILLed
)

// TestHelperPoller is not a test: it is the body of the subprocess the crash tests start. It runs
// a poller against the parent's mail server and database and exits the process with code 137 at
// the failpoint named in the environment.
func TestHelperPoller(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for the poller crash tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, os.Getenv(helperDBEnv), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mb := pollMailbox(t, os.Getenv(helperIMAPEnv))
	mb.ProcessedFolder = os.Getenv(helperProcessedEnv)
	o := pollOptions(nil)
	point := os.Getenv(helperFailEnv)
	o.Failpoint = func(p string) {
		if p == point {
			os.Exit(crashExitCode) // a real process death: no deferred call, no rollback, no logout
		}
	}
	err = mailin.NewPoller(pool, newPollIngester(t, pool), mb, o).Run(ctx)
	t.Fatalf("poller returned (%v) without reaching failpoint %q", err, point)
}

// crashPoller runs the helper process against h until it dies at failpoint.
func crashPoller(t *testing.T, h *pollHarness, failpoint, processedFolder string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperPoller$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperDBEnv+"="+h.dbURL, helperIMAPEnv+"="+h.mail.addr(),
		helperFailEnv+"="+failpoint, helperProcessedEnv+"="+processedFolder)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("helper poller: %v, want exit code %d at %s\n%s", err, crashExitCode, failpoint, out)
	}
}

func TestPollerCrashAfterStore(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	h.appendMail(5)
	crashPoller(t, h, mailin.FailAfterStore, "")
	// died with the raw rows and checkpoint committed, before any ingest
	if got := h.count(`SELECT count(*) FROM raw_mails WHERE state = 'pending'`); got != 5 {
		t.Errorf("%d pending raw mails after the crash, want 5", got)
	}
	if got := h.count(`SELECT count(*) FROM tickets`); got != 0 {
		t.Errorf("%d tickets after the crash, want 0", got)
	}
	if got := h.count(`SELECT count(*) FROM mailbox_state WHERE last_uid = 5`); got != 1 {
		t.Errorf("checkpoint not at UID 5 after the crash")
	}
	h.start(h.mailbox(), pollOptions(nil))
	h.waitTickets(5, 10*time.Second)
	h.waitAllSeen(h.folder, 5)
	h.appendMail(1)
	h.waitTickets(6, 5*time.Second)
	h.waitAllSeen(h.folder, 6)
	h.assertExactlyOnce(6)
}

func TestPollerCrashAfterCommit(t *testing.T) {
	t.Parallel()
	for _, processed := range []string{"", "Processed"} {
		t.Run("processed="+processed, func(t *testing.T) {
			t.Parallel()
			h := newPollHarness(t, startMemmail(t))
			h.appendMail(5)
			crashPoller(t, h, mailin.FailAfterCommit, processed)
			// died with the tickets committed, before \Seen
			if got := h.count(`SELECT count(*) FROM tickets`); got != 5 {
				t.Errorf("%d tickets after the crash, want 5", got)
			}
			msgs := h.mail.messages(t, h.folder)
			if len(msgs) != 5 {
				t.Fatalf("%d messages in INBOX after the crash, want 5", len(msgs))
			}
			for _, m := range msgs {
				if m.seen {
					t.Fatalf("UID %d already seen: the helper did not die before \\Seen", m.uid)
				}
			}
			mb := h.mailbox()
			mb.ProcessedFolder = processed
			h.start(mb, pollOptions(nil))
			folder := "INBOX"
			if processed != "" {
				folder = processed
			}
			h.waitAllSeen(folder, 5)
			h.appendMail(1)
			h.waitTickets(6, 5*time.Second)
			h.waitAllSeen(folder, 6)
			h.assertExactlyOnce(6)
		})
	}
}
