package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"
)

// appendAll APPENDs the generated bulk load to the desk mailbox over one IMAP connection and
// returns messages per second.
func appendAll(ctx context.Context, env *benchEnv, gen *benchGenerator, status io.Writer) (float64, error) {
	c, err := dialIMAP(env.imapAddr, benchDesk, benchPassword)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	p := newProgress(status, "bench append", env.f.messages)
	var spent time.Duration // APPEND time only, not generation
	for i := range env.f.messages {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		raw := gen.next(i)
		start := time.Now()
		if err := appendMessage(c, raw); err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		spent += time.Since(start)
		p.add(1)
	}
	p.finish()
	c.Logout().Wait() //nolint:errcheck // done either way
	return float64(env.f.messages) / spent.Seconds(), nil
}

// observer collects what the Ingester reports after each commit, in commit order.
type observer struct {
	mu       sync.Mutex
	latency  []time.Duration // raw stored -> committed
	at       []time.Time     // when Observe ran, right after the commit
	outcomes map[string]int
	bar      *progress
}

func (o *observer) observe(_, outcome string, latency time.Duration) {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.latency = append(o.latency, latency)
	o.at = append(o.at, now)
	o.outcomes[outcome]++
	if o.bar != nil && len(o.at) <= o.bar.total {
		o.bar.add(1)
	}
}

func (o *observer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.at)
}

// runPipeline runs deskd over the loaded mailbox until every message is ingested and the outbox
// is drained, then measures IDLE latency, and fills res.
func runPipeline(ctx context.Context, env *benchEnv, gen *benchGenerator, log *slog.Logger, res *benchResult, status io.Writer) error {
	n := env.f.messages
	mem := startMemSampler(env.f.memProfile != "")
	a, err := newApp(ctx, env.cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	var releaseSender func()
	if env.f.sendAfterIngest {
		gate := make(chan struct{})
		a.sendGate, releaseSender = gate, sync.OnceFunc(func() { close(gate) })
		defer releaseSender()
	}
	obs := &observer{outcomes: map[string]int{}, bar: newProgress(status, "bench ingest", n)}
	inner := a.ingestOpts.Observe
	a.ingestOpts.Observe = func(mailbox, outcome string, latency time.Duration) {
		inner(mailbox, outcome, latency)
		obs.observe(mailbox, outcome, latency)
	}
	if env.f.cpuProfile != "" {
		pf, err := os.Create(env.f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if env.f.pgActivity {
		ps, err := startPGSampler(ctx, env.cfg.Database.URL)
		if err != nil {
			return err
		}
		defer ps.report(status, 25)
	}
	// Start every run's ingest from a fresh checkpoint: otherwise whether the WAL written while
	// loading the mailbox (and by the previous run) forces one during the ingest decides between
	// runs of the same binary by up to a fifth of PostgreSQL's CPU per message.
	if _, err := a.pool.Exec(ctx, `CHECKPOINT`); err != nil {
		fmt.Fprintf(status, "bench: no CHECKPOINT before the ingest (%v); runs may differ by when PostgreSQL checkpoints\n", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	start := time.Now()
	cpuStart := takeCPUSnapshot()
	go func() { errc <- a.run(runCtx) }()
	defer func() {
		stop()
		select {
		case <-errc:
		case <-time.After(30 * time.Second):
		}
	}()
	ingestBudget := 2*time.Minute + time.Duration(n)*100*time.Millisecond + time.Duration(env.f.large)*10*time.Second
	if err := waitUntil(ctx, errc, ingestBudget, "every message ingested", func() bool { return obs.count() >= n }); err != nil {
		return err
	}
	res.CPU = cpuBetween(cpuStart, takeCPUSnapshot(), n, runtime.NumCPU())
	obs.mu.Lock()
	last := obs.at[n-1]
	lat := slices.Clone(obs.latency[:n])
	maps.Copy(res.Outcomes, obs.outcomes) // the bulk load's; the IDLE samples come later
	obs.bar.finish()
	obs.bar = nil
	obs.mu.Unlock()
	pprof.StopCPUProfile()
	var sendStart cpuSnapshot
	sentBeforeRelease := 0
	if releaseSender != nil {
		sentBeforeRelease = env.sink.count()
		sendStart = takeCPUSnapshot()
		releaseSender()
	}
	res.IngestSeconds = last.Sub(start).Seconds()
	res.IngestMsgsPerSec = float64(n) / res.IngestSeconds
	res.CommitLatencyP50Ms, res.CommitLatencyP99Ms = percentileMs(lat, 50), percentileMs(lat, 99)

	fmt.Fprintln(status, "bench: waiting for the outbox to drain")
	// The outbox is counted only once the relay has received nothing for a tick: the count reads
	// the whole young (unanalyzed) table, 7 ms a time at 18,000 rows, and every 20 ms it took a
	// third of a core from the sender it was waiting for.
	sent := -1
	drainedOut := func() bool {
		if now := env.sink.count(); now != sent {
			sent = now
			return false
		}
		var left int
		err := a.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')`).Scan(&left)
		return err == nil && left == 0
	}
	if err := waitUntil(ctx, errc, 5*time.Minute+time.Duration(n)*10*time.Millisecond, "the outbox drained", drainedOut); err != nil {
		return err
	}
	drained := time.Now()
	res.MailsSent = env.sink.count()
	res.OutboxDrainSeconds = drained.Sub(start).Seconds()
	res.SendMsgsPerSec = float64(res.MailsSent) / res.OutboxDrainSeconds
	if sendStart.ok {
		// The sender ran alone: its rate and its cost per mail, from the release to the last mail
		// (the drain check waits a tick after it, which this window includes).
		sentHeld := res.MailsSent - sentBeforeRelease
		res.SendCPU = cpuBetween(sendStart, takeCPUSnapshot(), sentHeld, runtime.NumCPU())
		if d := drained.Sub(sendStart.at).Seconds(); d > 0 {
			res.SendAloneMailsPerSec = float64(sentHeld) / d
		}
	}
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM tickets`).Scan(&res.Tickets); err != nil {
		return fmt.Errorf("count tickets: %w", err)
	}
	if err := measureIdle(ctx, env, gen, obs, errc, res, status); err != nil {
		return err
	}
	res.PeakRSSBytes = procStatus("VmHWM")
	res.PeakHeapBytes = mem.stop()
	if env.f.memProfile != "" {
		if err := os.WriteFile(env.f.memProfile, mem.profile(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measureIdle appends idle-samples new requests one at a time, 100 ms apart, to the mailbox deskd
// is IDLE on, and measures arrival -> commit and arrival -> acknowledgement at the relay.
func measureIdle(ctx context.Context, env *benchEnv, gen *benchGenerator, obs *observer, errc <-chan error, res *benchResult, status io.Writer) error {
	m := env.f.idleSamples
	res.IdleSamples = m
	if m == 0 {
		return nil
	}
	c, err := dialIMAP(env.imapAddr, benchDesk, benchPassword)
	if err != nil {
		return err
	}
	defer c.Close()
	// Let the poller finish its last round and enter IDLE.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	base, sinkBase := obs.count(), env.sink.count()
	ids := make([]string, m)
	rcpts := make([]string, m)
	arrived := make([]time.Time, m)
	p := newProgress(status, "bench IDLE samples", m)
	for i := range m {
		t0 := time.Now()
		var raw []byte
		raw, ids[i], rcpts[i] = gen.sample(i)
		if err := appendMessage(c, raw); err != nil {
			return fmt.Errorf("idle sample %d: %w", i, err)
		}
		arrived[i] = time.Now()
		p.add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(t0.Add(100 * time.Millisecond))):
		}
	}
	p.finish()
	acks := map[string]time.Time{}
	matchAcks := func() bool {
		for _, s := range env.sink.since(sinkBase) {
			if _, seen := acks[s.inReplyTo]; !seen && slices.Contains(s.to, rcptFor(ids, rcpts, s.inReplyTo)) {
				acks[s.inReplyTo] = s.at
			}
		}
		return obs.count() >= base+m && len(acks) >= m
	}
	if err := waitUntil(ctx, errc, 60*time.Second, "every IDLE sample acknowledged", matchAcks); err != nil {
		return fmt.Errorf("%w (%d of %d committed, %d acknowledged)", err, obs.count()-base, m, len(acks))
	}
	obs.mu.Lock()
	committed := slices.Clone(obs.at[base : base+m])
	obs.mu.Unlock()
	var commitLat, ackLat []time.Duration
	for i := range m {
		commitLat = append(commitLat, committed[i].Sub(arrived[i]))
		ackLat = append(ackLat, acks[ids[i]].Sub(arrived[i]))
	}
	res.AcksMatched = len(acks)
	res.IdleCommitLatencyP50Ms, res.IdleCommitLatencyP99Ms = percentileMs(commitLat, 50), percentileMs(commitLat, 99)
	res.AckLatencyP50Ms, res.AckLatencyP99Ms = percentileMs(ackLat, 50), percentileMs(ackLat, 99)
	return nil
}

// rcptFor returns the requester of the sample whose Message-ID is id, "" when id is none of them.
func rcptFor(ids, rcpts []string, id string) string {
	if i := slices.Index(ids, id); i >= 0 {
		return rcpts[i]
	}
	return ""
}

// waitUntil polls done every 20 ms until it holds, deskd stops, ctx ends or budget runs out.
func waitUntil(ctx context.Context, errc <-chan error, budget time.Duration, what string, done func() bool) error {
	deadline := time.Now().Add(budget)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", budget, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("deskd stopped while waiting for %s: %v", what, err)
		case <-t.C:
		}
	}
	return nil
}

// percentileMs is the p-th percentile (nearest rank) of ds in milliseconds; 0 for none.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

// memSampler follows the Go heap during the pipeline and, when asked, keeps the heap profile taken
// at the highest RSS seen (for --memprofile: where the memory goes at the peak).
type memSampler struct {
	done     chan struct{}
	wg       sync.WaitGroup
	peakHeap uint64
	prof     []byte
}

func startMemSampler(keepProfile bool) *memSampler {
	s := &memSampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var peakRSS int64
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			s.peakHeap = max(s.peakHeap, ms.HeapAlloc)
			if rss := procStatus("VmRSS"); keepProfile && rss > peakRSS+4<<20 {
				peakRSS = rss
				var b bytes.Buffer
				if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
					s.prof = b.Bytes()
				}
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends sampling and returns the highest heap in use seen.
func (s *memSampler) stop() uint64 {
	close(s.done)
	s.wg.Wait()
	return s.peakHeap
}

func (s *memSampler) profile() []byte { return s.prof }

// printBench writes the human summary.
func printBench(w io.Writer, r *benchResult) {
	mb := func(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "deskd bench: %d messages from %s; deskd %s; %d cores (load %s), %s, PostgreSQL %s\n\n", r.Messages,
		r.MailServer, r.Machine.Revision, r.Machine.Cores, r.Machine.LoadAvg, r.Machine.GoVersion, r.Machine.Postgres)
	fmt.Fprintf(w, "physical limits (same run)\n")
	fmt.Fprintf(w, "  pg single-row commits   %8.0f /s   (one connection, one INSERT per transaction)\n", r.PGCommitTPS)
	fmt.Fprintf(w, "  IMAP FETCH BODY.PEEK[]  %8.0f msgs/s (one connection, %s)\n", r.FetchMsgsPerSec, mb(r.FetchBytes))
	fmt.Fprintf(w, "  IMAP APPEND             %8.0f msgs/s\n", r.AppendMsgsPerSec)
	fmt.Fprintf(w, "  IMAP IDLE notification  p50 %.0f ms (APPEND -> EXISTS on another connection)\n\n", r.IdleNotifyP50Ms)
	fmt.Fprintf(w, "deskd\n")
	fmt.Fprintf(w, "  ingest                  %8.0f msgs/s (%d in %.1f s) = %.2f x pg commits, %.2f x fetch\n",
		r.IngestMsgsPerSec, r.Messages, r.IngestSeconds, r.RatioPG, r.RatioFetch)
	fmt.Fprintf(w, "  commit latency          p50 %.0f ms, p99 %.0f ms (raw stored -> committed)\n", r.CommitLatencyP50Ms, r.CommitLatencyP99Ms)
	fmt.Fprintf(w, "  outcomes                %v; %d tickets\n", r.Outcomes, r.Tickets)
	fmt.Fprintf(w, "  outbox                  %d mails sent, drained %.1f s after start (%.0f mails/s)\n", r.MailsSent,
		r.OutboxDrainSeconds, r.SendMsgsPerSec)
	if r.IdleSamples > 0 {
		fmt.Fprintf(w, "  IDLE arrival -> commit  p50 %.0f ms, p99 %.0f ms (%d samples)\n", r.IdleCommitLatencyP50Ms,
			r.IdleCommitLatencyP99Ms, r.IdleSamples)
		fmt.Fprintf(w, "  IDLE arrival -> ack     p50 %.0f ms, p99 %.0f ms\n", r.AckLatencyP50Ms, r.AckLatencyP99Ms)
	}
	fmt.Fprintf(w, "  peak RSS                %s (before ingest %s; peak Go heap %s)\n", mb(r.PeakRSSBytes),
		mb(r.RSSBeforeIngestBytes), mb(int64(r.PeakHeapBytes)))
	if c := r.CPU; c != nil {
		fmt.Fprintf(w, "  CPU per message         %.2f ms: deskd %.2f, PostgreSQL %.2f, mail server %.2f, other %.2f (machine %.0f%% busy)\n",
			c.TotalMsPerMsg, c.DeskdMsPerMsg, c.PostgresMsPerMsg, c.MailServerMsPerMsg, c.OtherMsPerMsg, 100*c.MachineBusy)
		fmt.Fprintf(w, "  CPU-bound ceiling       %8.0f msgs/s (%d cores / %.2f ms a message)\n", c.CPUBoundMsgsPerSec,
			r.Machine.Cores, c.TotalMsPerMsg)
	}
	if c := r.SendCPU; c != nil {
		fmt.Fprintf(w, "  sender alone            %8.0f mails/s after the ingest (--send-after-ingest)\n", r.SendAloneMailsPerSec)
		fmt.Fprintf(w, "  CPU per mail sent       %.2f ms: deskd with the relay %.2f, PostgreSQL %.2f, other %.2f (machine %.0f%% busy)\n",
			c.TotalMsPerMsg, c.DeskdMsPerMsg, c.PostgresMsPerMsg, c.OtherMsPerMsg+c.MailServerMsPerMsg, 100*c.MachineBusy)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "targets\n")
	budget := ""
	if c := r.CPU; c != nil && r.Machine.Cores > 0 {
		budget = fmt.Sprintf(" (needs <= %.2f ms of CPU per message on %d cores; this run used %.2f)",
			float64(r.Machine.Cores)*1000/2000, r.Machine.Cores, c.TotalMsPerMsg)
	}
	fmt.Fprintf(w, "  ingest >= 2,000 msgs/s  %s%s\n", met(r.IngestMsgsPerSec >= 2000), budget)
	if r.IdleSamples > 0 {
		fmt.Fprintf(w, "  ack p50 < 1 s (IDLE)    %s\n", met(r.AckLatencyP50Ms < 1000))
	}
	rssNote := ""
	if r.MailServer == "memmail" {
		rssNote = " (includes the built-in mail server's copy of the mailbox; use --dovecot)"
	}
	fmt.Fprintf(w, "  RSS < 200 MB            %s%s\n", met(r.PeakRSSBytes < 200e6), rssNote)
}
