package mailin_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/memmail"
	"github.com/deskd/deskd/internal/syncbuf"
	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/tickets"
)

const (
	pollUser = "support@example.com"
	pollPass = "desk-secret"
	pollBox  = "inbox" // the mailbox name (MailboxQueue maps it to the support queue)
)

// mailServer is what the poller tests need from an IMAP server: memmail or a real Dovecot.
type mailServer interface {
	addr() string
	appendMsg(t testing.TB, folder string, raw []byte)
	messages(t testing.TB, folder string) []folderMessage
	recreate(t testing.TB, folder string) uint32 // forces a new UIDVALIDITY
}

// folderMessage is one message as seen in a folder.
type folderMessage struct {
	uid  imap.UID
	seen bool
	raw  []byte
}

type memServer struct{ s *memmail.Server }

func (m memServer) addr() string { return m.s.IMAPAddr() }

func (m memServer) appendMsg(t testing.TB, folder string, raw []byte) {
	t.Helper()
	if err := m.s.Append(context.Background(), pollUser, folder, raw); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func (m memServer) messages(t testing.TB, folder string) []folderMessage {
	t.Helper()
	msgs, err := m.s.MessagesWithUID(pollUser, folder)
	if err != nil {
		t.Fatalf("read %s: %v", folder, err)
	}
	out := make([]folderMessage, len(msgs))
	for i, msg := range msgs {
		out[i] = folderMessage{uid: msg.UID, seen: slices.Contains(msg.Flags, imap.FlagSeen), raw: msg.Raw}
	}
	return out
}

func (m memServer) recreate(t testing.TB, folder string) uint32 {
	t.Helper()
	uv, err := m.s.RecreateMailbox(pollUser, folder)
	if err != nil {
		t.Fatalf("recreate %s: %v", folder, err)
	}
	return uv
}

func startMemmail(t testing.TB) memServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := memmail.Start(ctx, memmail.Options{Users: map[string]string{pollUser: pollPass}})
	if err != nil {
		t.Fatalf("start memmail: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return memServer{s}
}

// pollHarness is a database, an Ingester and a mail server for poller tests.
type pollHarness struct {
	t      testing.TB
	pool   *pgxpool.Pool
	dbURL  string
	ing    *mailin.Ingester
	mail   mailServer
	folder string // the folder polled; INBOX unless a test sets it
	auth   string // mailin.AuthPlain unless a test sets it
	seq    atomic.Int64
}

func newPollHarness(t testing.TB, mail mailServer) *pollHarness {
	t.Helper()
	pool, url := testdb.NewWithURL(t)
	return &pollHarness{t: t, pool: pool, dbURL: url, ing: newPollIngester(t, pool), mail: mail, folder: "INBOX"}
}

// mailbox is the poller configuration for the harness's server and folder.
func (h *pollHarness) mailbox() mailin.MailboxConfig {
	mb := pollMailbox(h.t, h.mail.addr())
	mb.Folder = h.folder
	if h.auth != "" {
		mb.Auth = h.auth
	}
	return mb
}

// newPollIngester is the Ingester of the poller tests (also built by the crash helper process).
func newPollIngester(t testing.TB, pool *pgxpool.Pool) *mailin.Ingester {
	t.Helper()
	signer, err := token.New([]byte("0123456789abcdef0123456789abcdef"), deskDomain)
	if err != nil {
		t.Fatal(err)
	}
	ing, err := mailin.NewIngester(tickets.NewService(pool, tickets.Options{}), mailin.Options{
		Signer: signer, DeskDomain: deskDomain, DeskAddresses: []string{pollUser},
		Queues: []mailin.Queue{{Name: "support", Prefix: "SD", Addresses: []string{pollUser},
			DefaultKind: tickets.KindIncident, DefaultPriority: tickets.P3}},
		MailboxQueue: map[string]string{pollBox: "support"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

// pollMailbox points a poller at addr (plaintext on loopback).
func pollMailbox(t testing.TB, addr string) mailin.MailboxConfig {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return mailin.MailboxConfig{Name: pollBox, Host: host, Port: port, TLS: mailin.TLSNone, User: pollUser, Password: pollPass}
}

// pollOptions are fast timings for tests; PollInterval is long so only IDLE can deliver quickly.
func pollOptions(log *slog.Logger) mailin.PollerOptions {
	return mailin.PollerOptions{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		LockRetry: 200 * time.Millisecond, PollInterval: time.Hour, Log: log}
}

// logBuffer collects a poller's log for assertions.
type logBuffer struct{ syncbuf.Buffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs a poller until the returned stop is called; stop returns Run's result.
func (h *pollHarness) start(mb mailin.MailboxConfig, o mailin.PollerOptions) (stop func() error) {
	h.t.Helper()
	if o.Log == nil {
		logs := &logBuffer{}
		o.Log = logs.logger()
		h.t.Cleanup(func() {
			if h.t.Failed() {
				h.t.Logf("poller log:\n%s", logs.String())
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := mailin.NewPoller(h.pool, h.ing, mb, o)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s of cancel")
			}
		})
		return err
	}
	h.t.Cleanup(func() { stop() })
	return stop
}

// appendMail appends n new messages, each from its own sender (so each opens a ticket).
func (h *pollHarness) appendMail(n int) {
	h.t.Helper()
	for range n {
		h.mail.appendMsg(h.t, h.folder, h.newMail(""))
	}
}

func (h *pollHarness) newMail(padding string) []byte {
	i := h.seq.Add(1)
	raw := mailFrom(fmt.Sprintf("User %d <user%d@corp.example>", i, i), pollUser, fmt.Sprintf("Printer %d jams", i),
		fmt.Sprintf("p%d.%d@corp.example", i, time.Now().UnixNano()), "", "It jams again."+padding)
	return []byte(strings.ReplaceAll(raw, "\n", "\r\n"))
}

func (h *pollHarness) count(q string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitFor polls cond every 5ms until it holds, failing the test after within; it returns how long
// it took.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func (h *pollHarness) waitTickets(n int, within time.Duration) time.Duration {
	h.t.Helper()
	return waitFor(h.t, within, fmt.Sprintf("%d tickets", n), func() bool { return h.count(`SELECT count(*) FROM tickets`) >= n })
}

// waitAllSeen waits until folder holds n messages, all with \Seen.
func (h *pollHarness) waitAllSeen(folder string, n int) {
	h.t.Helper()
	waitFor(h.t, 5*time.Second, fmt.Sprintf("%d seen messages in %s", n, folder), func() bool {
		msgs := h.mail.messages(h.t, folder)
		return len(msgs) == n && !slices.ContainsFunc(msgs, func(m folderMessage) bool { return !m.seen })
	})
}

// assertExactlyOnce checks that n messages became n tickets with one message each, with one raw
// row each, none pending, and that nothing else arrives afterwards.
func (h *pollHarness) assertExactlyOnce(n int) {
	h.t.Helper()
	time.Sleep(300 * time.Millisecond) // let a duplicate, if any, show up
	if got := h.count(`SELECT count(*) FROM tickets`); got != n {
		h.t.Errorf("%d tickets, want %d", got, n)
	}
	if got := h.count(`SELECT count(*) FROM messages`); got != n {
		h.t.Errorf("%d messages, want %d", got, n)
	}
	if got := h.count(`SELECT count(DISTINCT message_id) FROM messages`); got != n {
		h.t.Errorf("%d distinct Message-IDs, want %d", got, n)
	}
	if got := h.count(`SELECT count(*) FROM raw_mails WHERE state = 'ingested'`); got != n {
		h.t.Errorf("%d ingested raw mails, want %d", got, n)
	}
	if got := h.count(`SELECT count(*) FROM raw_mails WHERE state = 'pending'`); got != 0 {
		h.t.Errorf("%d raw mails still pending", got)
	}
}

// pollerIdleLatency appends messages one at a time while the poller IDLEs and returns the time
// each took to become a ticket.
func pollerIdleLatency(t *testing.T, h *pollHarness, rounds int) []time.Duration {
	var logs logBuffer
	stop := h.start(h.mailbox(), pollOptions(logs.logger()))
	h.appendMail(1)
	h.waitTickets(1, 10*time.Second)
	var lat []time.Duration
	for i := range rounds {
		time.Sleep(150 * time.Millisecond) // back in IDLE
		h.appendMail(1)
		lat = append(lat, h.waitTickets(2+i, 3*time.Second))
	}
	h.waitAllSeen(h.folder, rounds+1)
	if err := stop(); err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	for i, d := range lat {
		if d >= time.Second {
			t.Errorf("message %d became a ticket %v after arrival, want < 1s (IDLE push)\n%s", i+2, d, logs.String())
		}
	}
	slices.Sort(lat)
	t.Logf("IDLE arrival-to-ticket latency over %d messages: min %v, median %v, max %v",
		len(lat), lat[0], lat[len(lat)/2], lat[len(lat)-1])
	h.assertExactlyOnce(rounds + 1)
	return lat
}

func TestPollerIdleLatency(t *testing.T) {
	t.Parallel()
	pollerIdleLatency(t, newPollHarness(t, startMemmail(t)), 5)
}

// pollerCheckpointAcrossRestart stops the poller, appends mail, and restarts it.
func pollerCheckpointAcrossRestart(t *testing.T, h *pollHarness) {
	mb := h.mailbox()
	stop := h.start(mb, pollOptions(nil))
	h.appendMail(2)
	h.waitTickets(2, 10*time.Second)
	h.waitAllSeen(h.folder, 2)
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	h.appendMail(3)
	time.Sleep(50 * time.Millisecond)
	if got := h.count(`SELECT count(*) FROM tickets`); got != 2 {
		t.Fatalf("%d tickets while stopped, want 2", got)
	}
	h.start(mb, pollOptions(nil))
	h.waitTickets(5, 10*time.Second)
	h.waitAllSeen(h.folder, 5)
	h.assertExactlyOnce(5)
	var last int64
	if err := h.pool.QueryRow(context.Background(), `SELECT last_uid FROM mailbox_state WHERE mailbox = $1`, pollBox).Scan(&last); err != nil {
		t.Fatal(err)
	}
	msgs := h.mail.messages(t, h.folder)
	if want := int64(msgs[len(msgs)-1].uid); last != want {
		t.Errorf("checkpoint last_uid %d, want the highest UID %d", last, want)
	}
}

func TestPollerCheckpointAcrossRestart(t *testing.T) {
	t.Parallel()
	pollerCheckpointAcrossRestart(t, newPollHarness(t, startMemmail(t)))
}

// pollerProcessedFolder checks that processed mail ends up \Seen in the processed folder (created
// by the poller), by MOVE or, with DisableMove, by COPY + \Deleted + UID EXPUNGE.
func pollerProcessedFolder(t *testing.T, h *pollHarness, disableMove bool) {
	mb := h.mailbox()
	mb.ProcessedFolder = "Processed"
	o := pollOptions(nil)
	o.DisableMove = disableMove
	h.start(mb, o)
	h.appendMail(3)
	h.waitTickets(3, 10*time.Second)
	h.waitAllSeen("Processed", 3)
	// without MOVE the copies show up in Processed before the originals are expunged from INBOX
	waitFor(t, 5*time.Second, "no message left in "+h.folder, func() bool { return len(h.mail.messages(t, h.folder)) == 0 })
	h.appendMail(1)
	h.waitTickets(4, 3*time.Second)
	h.waitAllSeen("Processed", 4)
	h.assertExactlyOnce(4)
}

// pollerBacklog starts a poller on a folder holding several chunks of mail: each chunk is fetched
// while the one before is ingested, and every message must end up \Seen in the processed folder,
// exactly once, without the session failing on the way (a message the previous chunk's ingest took
// along must not be moved a second time). With moveBatch > 0 the processed mail is flagged every
// moveBatch messages on a second connection while the first fetches on.
func pollerBacklog(t *testing.T, h *pollHarness, disableMove bool, moveBatch int) {
	const n = 350 // four chunks
	for range n {
		h.mail.appendMsg(t, h.folder, h.newMail(""))
	}
	mb := h.mailbox()
	mb.ProcessedFolder = "Processed"
	logs := &logBuffer{}
	o := pollOptions(logs.logger())
	o.DisableMove = disableMove
	if moveBatch > 0 {
		mailin.SetMoveBatch(&o, moveBatch)
	}
	h.start(mb, o)
	h.waitTickets(n, 60*time.Second)
	h.waitAllSeen("Processed", n)
	if left := len(h.mail.messages(t, h.folder)); left != 0 {
		t.Errorf("%d messages left in the folder, want 0", left)
	}
	h.assertExactlyOnce(n)
	if strings.Contains(logs.String(), "session failed") {
		t.Errorf("the poller's session failed on the way:\n%s", logs.String())
	}
}

func TestPollerBacklog(t *testing.T) {
	t.Parallel()
	for _, disableMove := range []bool{false, true} {
		for _, moveBatch := range []int{0, 100} {
			t.Run(fmt.Sprintf("disableMove=%v/moveBatch=%d", disableMove, moveBatch), func(t *testing.T) {
				t.Parallel()
				pollerBacklog(t, newPollHarness(t, startMemmail(t)), disableMove, moveBatch)
			})
		}
	}
}

func TestPollerMoveToProcessedFolder(t *testing.T) {
	t.Parallel()
	pollerProcessedFolder(t, newPollHarness(t, startMemmail(t)), false)
}

func TestPollerCopyExpungeWithoutMove(t *testing.T) {
	t.Parallel()
	pollerProcessedFolder(t, newPollHarness(t, startMemmail(t)), true)
}

// pollerUIDValidityChange renumbers the folder under a running poller: it re-reads everything,
// opens no duplicate ticket, and goes on with new mail.
func pollerUIDValidityChange(t *testing.T, h *pollHarness) {
	var logs logBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("poller log:\n%s", logs.String())
		}
	})
	o := pollOptions(logs.logger())
	// Dovecot does not tell a session in IDLE that its folder was deleted; the poller finds out at
	// the next command, which the IDLE refresh brings (25 minutes by default).
	o.IdleRefresh = 300 * time.Millisecond
	h.start(h.mailbox(), o)
	h.appendMail(3)
	h.waitTickets(3, 10*time.Second)
	h.waitAllSeen(h.folder, 3)
	uv := h.mail.recreate(t, h.folder)
	waitFor(t, 10*time.Second, "the re-scan under the new UIDVALIDITY", func() bool {
		return h.count(`SELECT count(*) FROM raw_mails WHERE uidvalidity = $1 AND state <> 'pending'`, int64(uv)) == 3
	})
	if got := h.count(`SELECT count(*) FROM raw_mails WHERE uidvalidity = $1 AND state = 'duplicate'`, int64(uv)); got != 3 {
		t.Errorf("%d re-read messages marked duplicate, want 3", got)
	}
	if got := h.count(`SELECT count(*) FROM tickets`); got != 3 {
		t.Errorf("%d tickets after the UIDVALIDITY change, want 3", got)
	}
	if got := h.count(`SELECT count(*) FROM mailbox_state WHERE mailbox = $1 AND uidvalidity = $2`, pollBox, int64(uv)); got != 1 {
		t.Errorf("checkpoint not moved to UIDVALIDITY %d", uv)
	}
	if !strings.Contains(logs.String(), "UIDVALIDITY changed") {
		t.Errorf("no UIDVALIDITY warning logged:\n%s", logs.String())
	}
	h.appendMail(1)
	h.waitTickets(4, 3*time.Second)
	h.waitAllSeen(h.folder, 4)
	if got := h.count(`SELECT count(*) FROM tickets`); got != 4 {
		t.Errorf("%d tickets, want 4", got)
	}
}

func TestPollerUIDValidityChange(t *testing.T) {
	t.Parallel()
	pollerUIDValidityChange(t, newPollHarness(t, startMemmail(t)))
}

func TestPollerOversizeMessageStaysUnseen(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	mb := h.mailbox()
	o := pollOptions(nil)
	o.MaxMessageBytes = 4096
	h.mail.appendMsg(t, h.folder, h.newMail(""))
	h.mail.appendMsg(t, h.folder, h.newMail(strings.Repeat(" too big", 1000)))
	h.mail.appendMsg(t, h.folder, h.newMail(""))
	stop := h.start(mb, o)
	h.waitTickets(2, 10*time.Second)
	waitFor(t, 5*time.Second, "the two small messages seen", func() bool {
		msgs := h.mail.messages(t, h.folder)
		return len(msgs) == 3 && msgs[0].seen && msgs[2].seen
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// a restart neither fetches it again nor flags it
	h.start(mb, o)
	h.appendMail(1)
	h.waitTickets(3, 5*time.Second)
	msgs := h.mail.messages(t, h.folder)
	if len(msgs) != 4 || msgs[1].seen {
		t.Errorf("the oversize message must stay in the mailbox unseen: %d messages, seen=%v", len(msgs), len(msgs) > 1 && msgs[1].seen)
	}
	var state, reason string
	var rawNull bool
	err := h.pool.QueryRow(context.Background(), `SELECT state, reason, raw IS NULL FROM raw_mails WHERE uid = $1`,
		int64(msgs[1].uid)).Scan(&state, &reason, &rawNull)
	if err != nil {
		t.Fatal(err)
	}
	if state != mailin.StateQuarantined || !rawNull || !strings.Contains(reason, "oversize") {
		t.Errorf("oversize raw row: state %q, raw null %v, reason %q", state, rawNull, reason)
	}
	if got := h.count(`SELECT count(*) FROM raw_mails`); got != 4 {
		t.Errorf("%d raw rows, want 4 (the oversize one stored once)", got)
	}
	if got := h.count(`SELECT count(*) FROM tickets`); got != 3 {
		t.Errorf("%d tickets, want 3", got)
	}
}

func TestPollerStartTLSAndLogin(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := memmail.Start(ctx, memmail.Options{Users: map[string]string{pollUser: pollPass}, STARTTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := newPollHarness(t, memServer{s})
	mb := pollMailbox(t, s.IMAPAddr())
	mb.TLS, mb.Auth = mailin.TLSStartTLS, mailin.AuthLogin
	o := pollOptions(nil)
	o.TLSConfig = s.ClientTLSConfig()
	h.start(mb, o)
	h.appendMail(2)
	h.waitTickets(2, 10*time.Second)
	h.waitAllSeen(h.folder, 2)
}

func TestPollerRefusesCleartextToRemoteHost(t *testing.T) {
	t.Parallel()
	p := mailin.NewPoller(nil, nil, mailin.MailboxConfig{Name: "x", Host: "imap.example.com", TLS: mailin.TLSNone,
		User: "u", Password: "p"}, mailin.PollerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "allow_insecure") {
		t.Fatalf("Run = %v, want a refusal naming allow_insecure", err)
	}
}

func TestPollerPollsWithoutIdle(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	o := pollOptions(nil)
	o.DisableIdle, o.PollInterval = true, 100*time.Millisecond
	h.start(h.mailbox(), o)
	h.appendMail(2)
	h.waitTickets(2, 5*time.Second)
	h.waitAllSeen(h.folder, 2)
	h.appendMail(1)
	h.waitTickets(3, 5*time.Second)
	h.waitAllSeen(h.folder, 3)
	h.assertExactlyOnce(3)
}
