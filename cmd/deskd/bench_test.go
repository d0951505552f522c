package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/mailin/parse"
)

// benchDatabase returns the URL of a per-test bench database on the test server, dropped at cleanup.
func benchDatabase(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("deskd_bench_t%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, testdb.AdminURL())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) //nolint:errcheck // best effort
	})
	return strings.Replace(testdb.AdminURL(), "/postgres?", "/"+name+"?", 1)
}

func TestBenchJSONReportsEveryMeasurement(t *testing.T) {
	dbURL := benchDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"bench", "--messages", "50", "--idle-samples", "3", "--json", "--database-url", dbURL}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"messages", "ingest_msgs_per_sec", "commit_latency_p50_ms", "commit_latency_p99_ms",
		"ack_latency_p50_ms", "peak_rss_bytes", "pg_commit_tps", "fetch_msgs_per_sec", "ratio_pg", "ratio_fetch", "machine", "config"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	var res benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Messages != 50 || res.Outcomes["ingested"] != 50 || len(res.Outcomes) != 1 {
		t.Errorf("messages %d, outcomes %v: want all 50 ingested", res.Messages, res.Outcomes)
	}
	if res.Tickets < 30 || res.Tickets > 50 {
		t.Errorf("%d tickets for 50 messages of which about 20%% are replies", res.Tickets)
	}
	for name, v := range map[string]float64{"ingest_msgs_per_sec": res.IngestMsgsPerSec, "pg_commit_tps": res.PGCommitTPS,
		"fetch_msgs_per_sec": res.FetchMsgsPerSec, "ratio_pg": res.RatioPG, "ratio_fetch": res.RatioFetch,
		"ack_latency_p50_ms": res.AckLatencyP50Ms, "commit_latency_p99_ms": res.CommitLatencyP99Ms} {
		if v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if res.AcksMatched != 3 || res.IdleSamples != 3 {
		t.Errorf("%d of %d IDLE samples acknowledged", res.AcksMatched, res.IdleSamples)
	}
	if res.PeakRSSBytes <= 0 || res.Machine.Cores < 1 || res.Machine.GoVersion == "" || res.Config.Messages != 50 {
		t.Errorf("peak RSS %d, machine %+v, config %+v", res.PeakRSSBytes, res.Machine, res.Config)
	}
	if c := res.CPU; c == nil || c.DeskdMsPerMsg <= 0 || c.TotalMsPerMsg < c.DeskdMsPerMsg || c.MachineBusy <= 0 ||
		c.MachineBusy > 1 || c.CPUBoundMsgsPerSec <= 0 {
		t.Errorf("cpu %+v: want deskd's share of a positive total, the machine busy in (0, 1] and a ceiling", c)
	}
	// Every new ticket is acknowledged (and announced to the agents).
	if res.MailsSent < res.Tickets {
		t.Errorf("%d mails sent for %d tickets", res.MailsSent, res.Tickets)
	}
	if _, ok := raw["send_cpu"]; ok || res.SendAloneMailsPerSec != 0 {
		t.Errorf("send_cpu %v, send_alone_mails_per_sec %v without --send-after-ingest", raw["send_cpu"], res.SendAloneMailsPerSec)
	}
}

// TestBenchSendAfterIngestMeasuresTheSender: with the sender held until the bulk load is in, the
// JSON carries the sender's own rate and its CPU per mail, over every mail of the run.
func TestBenchSendAfterIngestMeasuresTheSender(t *testing.T) {
	dbURL := benchDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"bench", "--messages", "200", "--idle-samples", "0", "--send-after-ingest", "--json",
		"--database-url", dbURL}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	var res benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.MailsSent < res.Tickets || res.SendAloneMailsPerSec <= 0 {
		t.Errorf("%d mails for %d tickets at %v mails/s alone: want every ticket acknowledged and a rate",
			res.MailsSent, res.Tickets, res.SendAloneMailsPerSec)
	}
	if c := res.SendCPU; c == nil || c.TotalMsPerMsg < c.DeskdMsPerMsg || c.MachineBusy < 0 || c.MachineBusy > 1 || c.WindowSeconds <= 0 {
		t.Errorf("send_cpu %+v: want a window and deskd's share of the machine's total", c)
	}
}

func TestBenchGeneratorIsDeterministicAndParses(t *testing.T) {
	a, b := newBenchGenerator(200, 0), newBenchGenerator(200, 0)
	ids := map[string]int{}
	replies := 0
	for i := range 200 {
		ra, rb := a.next(i), b.next(i)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("message %d differs between two generators with the same seed", i)
		}
		if bytes.Contains(bytes.ReplaceAll(ra, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("message %d has a bare LF", i)
		}
		m, err := parse.Parse(ra)
		if err != nil {
			t.Fatalf("message %d does not parse: %v\n%s", i, err, ra)
		}
		if m.Subject == "" || m.From == nil || m.Text == "" {
			t.Fatalf("message %d: subject %q, from %v, %d bytes of text", i, m.Subject, m.From, len(m.Text))
		}
		if strings.Contains(m.Subject, "=?") {
			t.Errorf("message %d: subject not decoded: %q", i, m.Subject)
		}
		ids[m.MessageID] = i
		if len(m.InReplyTo) > 0 {
			replies++
			if j, ok := ids[m.InReplyTo[0]]; !ok || j >= i {
				t.Errorf("message %d answers %q, which is not an earlier message", i, m.InReplyTo)
			}
			if !strings.HasPrefix(m.Subject, "Re: ") {
				t.Errorf("reply %d has subject %q", i, m.Subject)
			}
		}
	}
	if replies < 20 || replies > 60 {
		t.Errorf("%d replies in 200 messages, want about 20%%", replies)
	}
	st := a.stats
	if st.Plain == 0 || st.Alternative == 0 || st.Attachments == 0 || st.Latin1 == 0 {
		t.Errorf("shapes not mixed: %+v", st)
	}
	if _, err := mail.ParseAddress(benchDesk); err != nil {
		t.Fatal(err)
	}
}

func TestProcTicksReadsNamesWithSpacesAndParentheses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	// proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
	line := "4242 (post (gres) x) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 269 0 0 20 0 1 0 100 0 0\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	comm, ticks, ok := procTicks(path)
	if !ok || comm != "post (gres) x" || ticks != 1000 {
		t.Errorf("procTicks = %q, %d, %v; want \"post (gres) x\", 1000, true", comm, ticks, ok)
	}
	a := cpuSnapshot{ok: true, busy: 100, total: 400, byGroup: map[string]uint64{"deskd": 10, "postgres": 20}}
	b := cpuSnapshot{ok: true, busy: 300, total: 800, byGroup: map[string]uint64{"deskd": 110, "postgres": 70, "mailserver": 10}}
	b.at = a.at.Add(2 * time.Second)
	c := cpuBetween(a, b, 100, 2) // 200 busy ticks = 2 s of CPU over 100 messages
	if c == nil || c.TotalMsPerMsg != 20 || c.DeskdMsPerMsg != 10 || c.PostgresMsPerMsg != 5 || c.MailServerMsPerMsg != 1 ||
		c.OtherMsPerMsg != 4 || c.MachineBusy != 0.5 || c.CPUBoundMsgsPerSec != 100 || c.WindowSeconds != 2 {
		t.Errorf("cpuBetween = %+v", c)
	}
}
