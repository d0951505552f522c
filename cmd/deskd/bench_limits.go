package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/deskd/deskd/internal/db"
)

// measurePGCommits is the database's ceiling for deskd's write path: for d, one connection opened
// like deskd's pool (db.Open on the same URL) inserts one row per transaction into a scratch
// table. It returns commits per second.
func measurePGCommits(ctx context.Context, url string, d time.Duration) (float64, error) {
	pool, err := db.Open(ctx, url, 1)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `CREATE TABLE bench_commit_scratch (id bigserial PRIMARY KEY, at timestamptz NOT NULL, note text NOT NULL)`); err != nil {
		return 0, fmt.Errorf("create scratch table: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_commit_scratch`) //nolint:errcheck // best effort
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if _, err := conn.Exec(ctx, `INSERT INTO bench_commit_scratch (at, note) VALUES (now(), $1)`, "commit probe"); err != nil {
			return 0, fmt.Errorf("insert scratch row: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// dialIMAP connects to the bench's IMAP server (plaintext on loopback) and logs in.
func dialIMAP(addr, user, password string) (*imapclient.Client, error) {
	return dialIMAPWith(addr, user, password, nil)
}

func dialIMAPWith(addr, user, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(addr, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to IMAP %s: %w", addr, err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("log in to IMAP %s as %s: %w", addr, user, err)
	}
	return c, nil
}

// appendMessage APPENDs raw to INBOX (RFC 3501 §6.3.11) and returns when the server confirmed it.
func appendMessage(c *imapclient.Client, raw []byte) error { return appendTo(c, "INBOX", raw) }

func appendTo(c *imapclient.Client, folder string, raw []byte) error {
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return fmt.Errorf("append message: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("append message: %w", err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("append message: %w", err)
	}
	return nil
}

// measureFetch is the mailbox's ceiling for deskd's read path: one connection fetches BODY.PEEK[]
// (RFC 3501 §6.4.5, leaving \Seen alone) of every message in INBOX, streaming the bodies away. It
// returns messages per second and the bytes read.
func measureFetch(addr, user, password string) (float64, int, int64, error) {
	c, err := dialIMAP(addr, user, password)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, 0, 0, fmt.Errorf("examine INBOX: %w", err)
	}
	start := time.Now()
	section := &imap.FetchItemBodySection{Peek: true}
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}})
	n, bytes := 0, int64(0)
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				k, err := io.Copy(io.Discard, b.Literal)
				if err != nil {
					cmd.Close()
					return 0, 0, 0, fmt.Errorf("fetch bodies: %w", err)
				}
				bytes += k
			}
		}
		n++
	}
	if err := cmd.Close(); err != nil {
		return 0, 0, 0, fmt.Errorf("fetch bodies: %w", err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	c.Logout().Wait() //nolint:errcheck // done either way
	return rate, n, bytes, nil
}

// notifyFolder is where measureIdleNotify appends, away from the desk's INBOX.
const notifyFolder = "BenchNotify"

// measureIdleNotify is the mailbox's own floor for IDLE latency: one connection IDLEs
// (RFC 2177) on a scratch folder while another APPENDs to it, samples times, 100 ms apart; each
// sample is the time from the APPEND's completion to the untagged EXISTS. It returns the median.
func measureIdleNotify(addr, user, password string, samples int) (float64, error) {
	exists := make(chan time.Time, samples+8)
	opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- time.Now():
				default:
				}
			}
		}}}
	idler, err := dialIMAPWith(addr, user, password, opts)
	if err != nil {
		return 0, err
	}
	defer idler.Close()
	if err := idler.Create(notifyFolder, nil).Wait(); err != nil {
		return 0, fmt.Errorf("create %s: %w", notifyFolder, err)
	}
	if _, err := idler.Select(notifyFolder, nil).Wait(); err != nil {
		return 0, fmt.Errorf("select %s: %w", notifyFolder, err)
	}
	appender, err := dialIMAP(addr, user, password)
	if err != nil {
		return 0, err
	}
	defer appender.Close()
	idle, err := idler.Idle()
	if err != nil {
		return 0, fmt.Errorf("idle: %w", err)
	}
	var lat []time.Duration
	raw := []byte("From: probe@" + benchDomain + "\r\nSubject: IDLE probe\r\n\r\nprobe\r\n")
	for range samples {
		time.Sleep(100 * time.Millisecond)
		for len(exists) > 0 { // late notifications of an earlier sample
			<-exists
		}
		if err := appendTo(appender, notifyFolder, raw); err != nil {
			return 0, err
		}
		done := time.Now()
		select {
		case at := <-exists:
			lat = append(lat, max(at.Sub(done), 0))
		case <-time.After(5 * time.Second):
			idle.Close()
			return 0, errors.New("no EXISTS within 5 s of an APPEND while in IDLE")
		}
	}
	if err := idle.Close(); err != nil {
		return 0, fmt.Errorf("end idle: %w", err)
	}
	return percentileMs(lat, 50), nil
}

// procStatus returns a field of /proc/self/status in bytes (VmHWM: peak resident set, VmRSS:
// current), or 0 where /proc is missing.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		fs := strings.Fields(line[len(field)+1:])
		if len(fs) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// resetPeakRSS restarts VmHWM at the current RSS (Linux: "5" to clear_refs), so the peak
// measures one phase; it reports whether that worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
