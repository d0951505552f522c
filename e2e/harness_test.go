package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/deskd/deskd/internal/syncbuf"
	"github.com/deskd/deskd/mailin/parse"
)

// buildDeskd builds cmd/deskd into a temporary directory and returns the binary's path. The
// module root comes from `go env GOMOD`, so the test does not depend on its working directory.
func buildDeskd(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		t.Fatal("go env GOMOD: not inside the deskd module")
	}
	bin := filepath.Join(t.TempDir(), "deskd")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/deskd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/deskd: %v\n%s", err, out)
	}
	t.Logf("built deskd in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// deskdEnv is the test's environment without DESKD_* variables, so that the configuration file
// alone decides what the subprocess does (every DESKD_ variable overrides a key).
func deskdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DESKD_") {
			env = append(env, kv)
		}
	}
	return env
}

// daemon is a running `deskd serve` subprocess.
type daemon struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
}

// startDaemon runs `deskd serve --config cfg --log-format json --log-level debug` and stops it at
// cleanup (SIGKILL if the test did not stop it), printing its log when the test failed. The
// process also gets SIGKILL if the test process dies.
func startDaemon(t *testing.T, bin, cfg string) *daemon {
	t.Helper()
	d := &daemon{stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin, "serve", "--config", cfg, "--log-format", "json", "--log-level", "debug")
	d.cmd.Env = deskdEnv()
	d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start deskd serve: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("--- deskd serve log:\n%s", tail(d.stderr.String(), 16<<10))
		}
	})
	return d
}

// exited reports whether the process has ended.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz until it answers 200; it fails t when deskd exits first or within.
func (d *daemon) waitReady(t *testing.T, httpAddr string, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	eventually(t, "deskd /readyz answers 200", within, 20*time.Millisecond, func() bool {
		if d.exited() {
			t.Fatalf("deskd serve exited before it was ready: %v\n%s", d.err, d.stderr.String())
		}
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	})
}

// logEntry is one line of deskd's JSON log (log/slog's JSONHandler).
type logEntry struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	raw   string
}

// logEntries parses deskd's log so far; lines that are not JSON are returned with Level "".
func (d *daemon) logEntries() []logEntry {
	var out []logEntry
	sc := bufio.NewScanner(strings.NewReader(d.stderr.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		e := logEntry{raw: sc.Text()}
		_ = json.Unmarshal(sc.Bytes(), &e)
		out = append(out, e)
	}
	return out
}

// hasLog reports whether deskd logged msg.
func (d *daemon) hasLog(msg string) bool {
	for _, e := range d.logEntries() {
		if e.Msg == msg {
			return true
		}
	}
	return false
}

// deskdJSON runs a deskd subcommand with --config cfg and decodes its JSON output into v.
func deskdJSON(t *testing.T, ctx context.Context, bin, cfg string, v any, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, append(args, "--config", cfg)...)
	cmd.Env = deskdEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deskd %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("deskd %s: decode output: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// eventually calls cond every interval until it returns true and returns how long that took; it
// fails t when within passes first.
func eventually(t *testing.T, what string, within, interval time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(within); ; time.Sleep(interval) {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// milestone is one observable step of a mail's way through the stack, timed from a common start.
type milestone struct {
	name string
	done func() bool
	took time.Duration // 0 until done first returned true
}

// waitMilestones polls every milestone not yet reached until all are, and records for each how long
// after since it was first seen. It fails t, naming the missing steps, when within passes first.
func waitMilestones(t *testing.T, since time.Time, within time.Duration, ms ...*milestone) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		var missing []string
		for _, m := range ms {
			if m.took == 0 && m.done() {
				m.took = time.Since(since)
			}
			if m.took == 0 {
				missing = append(missing, m.name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, strings.Join(missing, ", "))
		}
	}
}

// figures formats milestones as "name 123ms, name 456ms".
func figures(ms ...*milestone) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s %v", m.name, m.took.Round(time.Millisecond))
	}
	return strings.Join(parts, ", ")
}

// freeAddr returns a free 127.0.0.1 port as host:port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// mailbox is one user's IMAP session on the stack's Dovecot, used to look at what arrived.
type mailbox struct {
	t    *testing.T
	user string
	c    *imapclient.Client
}

// openMailbox logs user in over plaintext IMAP (the stack listens on loopback only).
func openMailbox(t *testing.T, addr, user, pass string) *mailbox {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("dial IMAP %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("IMAP login %s: %v", user, err)
	}
	return &mailbox{t: t, user: user, c: c}
}

// count returns the number of messages in folder (STATUS, RFC 3501 §6.3.10); a folder that does
// not exist yet counts 0.
func (m *mailbox) count(folder string) int {
	m.t.Helper()
	st, err := m.c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		var ierr *imap.Error
		if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo {
			return 0
		}
		m.t.Fatalf("IMAP STATUS %s of %s: %v", folder, m.user, err)
	}
	return int(*st.NumMessages)
}

// waitCount waits until folder holds at least n messages and returns how long that took.
func (m *mailbox) waitCount(folder string, n int, within time.Duration) time.Duration {
	m.t.Helper()
	return eventually(m.t, fmt.Sprintf("%d message(s) in %s's %s", n, m.user, folder), within, 25*time.Millisecond,
		func() bool { return m.count(folder) >= n })
}

// fetchAll returns the raw bytes of every message in folder, oldest first, without setting \Seen.
func (m *mailbox) fetchAll(folder string) [][]byte {
	m.t.Helper()
	sel, err := m.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		m.t.Fatalf("IMAP EXAMINE %s of %s: %v", folder, m.user, err)
	}
	defer func() {
		if err := m.c.Unselect().Wait(); err != nil {
			m.t.Errorf("IMAP UNSELECT: %v", err)
		}
	}()
	if sel.NumMessages == 0 {
		return nil
	}
	var seq imap.SeqSet
	seq.AddRange(1, sel.NumMessages)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := m.c.Fetch(seq, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		m.t.Fatalf("IMAP FETCH %s of %s: %v", folder, m.user, err)
	}
	out := make([][]byte, 0, len(msgs))
	for _, msg := range msgs {
		out = append(out, msg.FindBodySection(section))
	}
	return out
}

// parsed parses raw with the same parser deskd uses for inbound mail.
func parsed(t *testing.T, raw []byte) *parse.Message {
	t.Helper()
	m, err := parse.Parse(raw)
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	return m
}
