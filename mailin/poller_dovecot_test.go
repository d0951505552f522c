package mailin_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/deskd/deskd/internal/mailstack"
	"github.com/deskd/deskd/mailin"
)

// The core poller suite against a real Dovecot (internal/mailstack). It skips when Dovecot is not
// installed, and fails instead under CI=true. The polled folder is "Support" rather than INBOX so
// that the UIDVALIDITY test can delete and re-create it (RFC 3501 §6.3.4: INBOX cannot be deleted).

const dovecotFolder = "Support"

// dovecotServer drives a private Dovecot over IMAP as a mail client would.
type dovecotServer struct{ d *mailstack.Dovecot }

func startDovecot(t *testing.T) *pollHarness {
	t.Helper()
	mailstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := mailstack.StartDovecot(ctx, mailstack.DovecotOptions{Dir: t.TempDir(), Users: map[string]string{pollUser: pollPass}})
	if err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() { d.Stop() })
	s := dovecotServer{d}
	c := s.client(t)
	defer c.Close()
	if err := c.Create(dovecotFolder, nil).Wait(); err != nil {
		t.Fatalf("create %s: %v", dovecotFolder, err)
	}
	h := newPollHarness(t, s)
	h.folder = dovecotFolder
	return h
}

func (s dovecotServer) addr() string { return s.d.IMAPAddr() }

func (s dovecotServer) client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.d.IMAPAddr(), nil)
	if err != nil {
		t.Fatalf("dial dovecot: %v", err)
	}
	if err := c.Login(pollUser, pollPass).Wait(); err != nil {
		c.Close()
		t.Fatalf("login to dovecot: %v\n%s", err, s.d.Log())
	}
	return c
}

func appendIMAP(t testing.TB, c *imapclient.Client, folder string, raw []byte, flags []imap.Flag) {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("append: %v", err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func (s dovecotServer) appendMsg(t testing.TB, folder string, raw []byte) {
	t.Helper()
	c := s.client(t)
	defer c.Close()
	appendIMAP(t, c, folder, raw, nil)
}

func (s dovecotServer) messages(t testing.TB, folder string) []folderMessage {
	t.Helper()
	c := s.client(t)
	defer c.Close()
	msgs, _ := fetchFolder(t, c, folder)
	return msgs
}

// fetchFolder EXAMINEs folder and returns its messages and UIDVALIDITY.
func fetchFolder(t testing.TB, c *imapclient.Client, folder string) ([]folderMessage, uint32) {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("examine %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil, sel.UIDValidity
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	out := make([]folderMessage, len(bufs))
	for i, b := range bufs {
		out[i] = folderMessage{uid: b.UID, seen: slices.Contains(b.Flags, imap.FlagSeen), raw: b.FindBodySection(section)}
	}
	slices.SortFunc(out, func(a, b folderMessage) int { return int(a.uid) - int(b.uid) })
	return out, sel.UIDValidity
}

// recreate deletes the folder and creates it again with the same messages and flags, which gives
// it a new UIDVALIDITY (RFC 3501 §2.3.1.1). Each step uses a fresh connection, as separate clients
// would.
func (s dovecotServer) recreate(t testing.TB, folder string) uint32 {
	t.Helper()
	c := s.client(t)
	msgs, oldUV := fetchFolder(t, c, folder)
	c.Close()
	c = s.client(t)
	if err := c.Delete(folder).Wait(); err != nil {
		t.Fatalf("delete %s: %v", folder, err)
	}
	if err := c.Create(folder, nil).Wait(); err != nil {
		t.Fatalf("create %s: %v", folder, err)
	}
	c.Close()
	c = s.client(t)
	defer c.Close()
	for _, m := range msgs {
		var flags []imap.Flag
		if m.seen {
			flags = []imap.Flag{imap.FlagSeen}
		}
		appendIMAP(t, c, folder, m.raw, flags)
	}
	st, err := c.Status(folder, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v\n%s", folder, err, s.d.Log())
	}
	if st.UIDValidity == oldUV {
		t.Fatalf("UIDVALIDITY unchanged (%d) after re-creating %s", st.UIDValidity, folder)
	}
	return st.UIDValidity
}

func TestPollerDovecot(t *testing.T) {
	t.Parallel()
	// Dovecot delays IDLE notifications by about half a second, so the latency test runs before
	// the others start, on a quieter machine.
	t.Run("IdleLatency", func(t *testing.T) {
		pollerIdleLatency(t, startDovecot(t), 5)
	})
	t.Run("CheckpointAcrossRestart", func(t *testing.T) {
		t.Parallel()
		h := startDovecot(t)
		h.auth = mailin.AuthLogin // SASL LOGIN, which Dovecot offers
		pollerCheckpointAcrossRestart(t, h)
	})
	t.Run("UIDValidityChange", func(t *testing.T) {
		t.Parallel()
		pollerUIDValidityChange(t, startDovecot(t))
	})
	t.Run("Move", func(t *testing.T) {
		t.Parallel()
		pollerProcessedFolder(t, startDovecot(t), false)
	})
	t.Run("CopyExpunge", func(t *testing.T) {
		t.Parallel()
		pollerProcessedFolder(t, startDovecot(t), true)
	})
	t.Run("Backlog", func(t *testing.T) {
		t.Parallel()
		pollerBacklog(t, startDovecot(t), false, 0)
	})
	t.Run("BacklogFlaggedOnASecondConnection", func(t *testing.T) {
		t.Parallel()
		pollerBacklog(t, startDovecot(t), false, 100)
	})
}
