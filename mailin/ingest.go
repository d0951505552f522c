package mailin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailin/classify"
	"github.com/deskd/deskd/mailin/parse"
	"github.com/deskd/deskd/mailin/thread"
	"github.com/deskd/deskd/tickets"
)

// Queue routes new tickets: mail addressed to one of Addresses opens a ticket in this queue.
type Queue struct {
	Name            string
	Prefix          string
	Addresses       []string // lower-case
	DefaultKind     tickets.Kind
	DefaultPriority tickets.Priority
	Language        string
}

// Options configure an Ingester.
type Options struct {
	Signer                *token.Signer
	DeskDomain            string
	DeskAddresses         []string          // lower-case
	Queues                []Queue           // the first is the fallback queue
	MailboxQueue          map[string]string // mailbox name -> queue name
	Agents                map[string]string // lower-case agent address -> agent name
	AcceptRequesterDomain bool
	// BatchSize caps messages per ingest transaction (default 200); BatchBytes caps their raw bytes
	// (default 64 MiB) so a batch of large messages does not exhaust memory.
	BatchSize  int
	BatchBytes int64
	// Workers is how many transactions apply one batch's components at once (default two per
	// core, at least 4: one transaction computes while another waits for its commit; more only add
	// context switches between deskd and its database connections).
	Workers int
	Log     *slog.Logger
	// Observe, when set, is called after each commit for every message of the batch with its mailbox,
	// its outcome (ingested, ignored, duplicate, quarantined) and the time from storage to commit.
	Observe func(mailbox, outcome string, latency time.Duration)
}

// DefaultWorkers is Options.Workers when it is not set: two transactions per core, at least 4.
func DefaultWorkers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// Ingester turns stored raw mail into ticket changes (DESIGN.md data flow, "ONE transaction").
type Ingester struct {
	svc    *tickets.Service
	opts   Options
	thread thread.Options // derived from opts once
}

// NewIngester returns an Ingester applying changes through svc.
func NewIngester(svc *tickets.Service, opts Options) (*Ingester, error) {
	if len(opts.Queues) == 0 {
		return nil, errors.New("new ingester: at least one queue is required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 200
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 64 << 20
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	in := &Ingester{svc: svc, opts: opts}
	in.thread = in.threadOptions()
	return in, nil
}

// Outcome is what became of one raw mail.
type Outcome struct {
	RawID     int64
	Mailbox   string
	UID       uint32
	State     string // ingested, ignored, duplicate, quarantined
	TicketKey string // the ticket the message went to, "" when none
	Reason    string
	Latency   time.Duration

	receivedAt time.Time
}

// prepared is a raw mail with the pure stages (parse, classify) already run.
type prepared struct {
	raw   *RawMail
	msg   *parse.Message
	class classify.Result
	err   error // parse failure or recovered panic: quarantine
	dupOf int64 // an earlier, processed copy of the same message (same mailbox, Message-ID, content)
}

// ProcessPending ingests pending raw mail (of mailbox, or of all mailboxes when mailbox is ""),
// oldest first, batch by batch until none is left, and returns every outcome.
//
// A batch is parsed and classified in parallel outside any transaction, then split into thread
// components (messages linked by Message-ID, In-Reply-To, References or sender), which are applied
// by up to Options.Workers transactions at once; each component stays in one transaction, in arrival
// order, so a reply always sees the ticket its original created. Every transaction re-locks its rows
// with FOR UPDATE SKIP LOCKED and skips any that are no longer pending, so concurrent callers and
// replicas never process one message twice.
func (in *Ingester) ProcessPending(ctx context.Context, mailbox string) ([]Outcome, error) {
	return in.processPendingUpTo(ctx, mailbox, 0, nil)
}

// processPendingUpTo is ProcessPending for the raw mail with ids up to upTo (0: no bound): the
// poller ingests what it stored so far while the next chunk is being stored. fresh holds raw mail
// the caller has just stored, by id: its first attempt uses these bytes instead of reading them
// back (each entry is taken once; a retry reads the row). The work list still comes from the
// database (the pending rows); fresh only saves re-reading committed bytes, so nothing is lost
// with it (DESIGN.md invariant 3).
func (in *Ingester) processPendingUpTo(ctx context.Context, mailbox string, upTo int64, fresh map[int64]*RawMail) ([]Outcome, error) {
	var all []Outcome
	after := int64(0)
	for {
		outs, last, err := in.processBatch(ctx, mailbox, after, upTo, fresh)
		if err != nil {
			return all, err
		}
		if last == 0 {
			return all, nil
		}
		after = last
		all = append(all, outs...)
	}
}

// processBatch handles the next batch of pending mail with ids above after and returns its outcomes
// and the highest id it looked at (0 when there was nothing left).
func (in *Ingester) processBatch(ctx context.Context, mailbox string, after, upTo int64, fresh map[int64]*RawMail) ([]Outcome, int64, error) {
	raws, err := loadPending(ctx, in.svc.DB(), mailbox, after, upTo, in.opts.BatchSize, in.opts.BatchBytes, fresh)
	if err != nil || len(raws) == 0 {
		return nil, 0, err
	}
	last := raws[len(raws)-1].ID
	preps := in.prepare(raws)
	buckets := partition(preps, in.opts.Workers, in.isDeskAddress)
	results := make([][]Outcome, len(buckets))
	g, gctx := errgroup.WithContext(ctx)
	for i, b := range buckets {
		g.Go(func() error {
			var err error
			results[i], err = in.applyBucket(gctx, b)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, fmt.Errorf("ingest batch: %w", err)
	}
	var outs []Outcome
	for _, r := range results {
		outs = append(outs, r...)
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].RawID < outs[j].RawID })
	in.report(outs)
	return outs, last, nil
}

func (in *Ingester) report(outs []Outcome) {
	now := time.Now()
	for i := range outs {
		o := &outs[i]
		if o.State == StateQuarantined {
			in.opts.Log.Warn("message quarantined", "mailbox", o.Mailbox, "uid", o.UID, "raw_id", o.RawID, "reason", o.Reason)
		} else {
			in.opts.Log.Debug("message ingested", "mailbox", o.Mailbox, "uid", o.UID, "raw_id", o.RawID, "state", o.State,
				"ticket", o.TicketKey, "reason", o.Reason)
		}
		o.Latency = now.Sub(o.receivedAt)
		if in.opts.Observe != nil {
			in.opts.Observe(o.Mailbox, o.State, o.Latency)
		}
	}
}

// errRetryWithSavepoints aborts an optimistic batch transaction in which one message failed.
var errRetryWithSavepoints = errors.New("a message failed: retry the batch with a savepoint per message")

// applyBucket applies one bucket of components in one transaction. It first tries without
// savepoints (two round trips fewer per message); when a message fails it rolls back and redoes the
// bucket with a savepoint per message so the failure is quarantined alone. Deadlocks and
// serialization failures between concurrent buckets are retried.
func (in *Ingester) applyBucket(ctx context.Context, b []prepared) ([]Outcome, error) {
	savepoints := false
	for attempt := 1; ; attempt++ {
		outs, err := in.applyTx(ctx, b, savepoints)
		switch {
		case err == nil:
			return outs, nil
		case errors.Is(err, errRetryWithSavepoints) && !savepoints:
			savepoints = true
		case retryable(err) && attempt < 8 && ctx.Err() == nil:
			time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
		default:
			return nil, err
		}
	}
}

func (in *Ingester) applyTx(ctx context.Context, b []prepared, savepoints bool) ([]Outcome, error) {
	var outs []Outcome
	err := in.svc.Do(ctx, func(tx *tickets.Tx) error {
		outs = outs[:0]
		ids := make([]int64, len(b))
		for i, p := range b {
			ids[i] = p.raw.ID
		}
		rows, err := tx.PG().Query(ctx, `SELECT id FROM raw_mails WHERE id = ANY($1) AND state = 'pending' FOR UPDATE SKIP LOCKED`, ids)
		if err != nil {
			return fmt.Errorf("lock pending mail: %w", err)
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("lock pending mail: %w", err)
		}
		mine := make(map[int64]bool, len(locked))
		for _, id := range locked {
			mine[id] = true
		}
		dups, err := findDuplicates(ctx, tx, b)
		if err != nil {
			return err
		}
		seen := map[string]int64{} // messages of this transaction, for duplicates within the batch
		// Without savepoints the transaction's new tickets are opened together (createQueue); with
		// them each message, its ticket included, is written inside its own savepoint.
		var q *createQueue
		if !savepoints {
			q = &createQueue{}
		}
		for _, p := range b {
			if !mine[p.raw.ID] {
				continue // done meanwhile, or another replica has it
			}
			if q.mustFlushBefore(p) {
				if err := q.flush(ctx, tx, outs); err != nil {
					return err
				}
			}
			out := Outcome{RawID: p.raw.ID, Mailbox: p.raw.Mailbox, UID: p.raw.UID, receivedAt: p.raw.ReceivedAt}
			dk := dupKey(p.raw)
			if p.dupOf = dups[p.raw.ID]; p.dupOf == 0 && dk != "" {
				p.dupOf = seen[dk]
			}
			err := p.err
			if err == nil {
				if savepoints {
					err = tx.Savepoint(ctx, func(tx *tickets.Tx) error { return in.applyOne(ctx, tx, p, &out, nil) })
				} else if err = in.applyOne(ctx, tx, p, &out, q); err != nil {
					if retryable(err) || ctx.Err() != nil {
						return err
					}
					return fmt.Errorf("%w: %v", errRetryWithSavepoints, err)
				}
			}
			if err != nil {
				if retryable(err) || ctx.Err() != nil {
					return err
				}
				out.State, out.TicketKey, out.Reason = StateQuarantined, "", err.Error()
			} else if dk != "" && seen[dk] == 0 {
				seen[dk] = p.raw.ID
			}
			outs = append(outs, out)
		}
		if err := q.flush(ctx, tx, outs); err != nil {
			return err
		}
		// The mail of all the transaction's changes, written with a few statements (in savepoint mode
		// each message's mail was written inside its savepoint, so a failure there is its own).
		if err := tx.FlushMail(ctx); err != nil {
			if retryable(err) || ctx.Err() != nil {
				return err
			}
			return fmt.Errorf("%w: %v", errRetryWithSavepoints, err)
		}
		return setStates(ctx, tx.PG(), outs, tx.Now())
	})
	return outs, err
}

// applyOne applies one message, turning a panic into an error; its state is recorded with the
// others of the transaction (setStates). A new ticket goes to q when it is not nil.
func (in *Ingester) applyOne(ctx context.Context, tx *tickets.Tx, p prepared, out *Outcome, q *createQueue) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic while ingesting: %v\n%s", r, debug.Stack())
		}
	}()
	out.State, out.TicketKey, out.Reason, err = in.apply(ctx, tx, p, q)
	return err
}

// createQueue holds the new tickets of a transaction's messages until one statement opens them all
// (tickets.Tx.CreateMany): a statement per ticket cost PostgreSQL the start-up of six table writes
// each time and both processes a round trip. A message that may thread to a queued ticket (it names
// a queued message's Message-ID) or concern it (machine mail) waits until the queue is written, so
// every look-up still sees all that came before it. A nil queue creates nothing (savepoint mode).
type createQueue struct {
	items []tickets.NewTicket // each with the message of its raw mail
	ids   map[string]bool     // canonical Message-IDs of the queued messages
}

// add queues nt, a ticket with the message of a raw mail (apply).
func (q *createQueue) add(nt tickets.NewTicket) {
	q.items = append(q.items, nt)
	if c := thread.CanonicalID(nt.Message.MessageID); c != "" {
		if q.ids == nil {
			q.ids = map[string]bool{}
		}
		q.ids[c] = true
	}
}

// mustFlushBefore reports whether p may need a queued ticket to be written first.
func (q *createQueue) mustFlushBefore(p prepared) bool {
	if q == nil || len(q.items) == 0 || p.msg == nil || p.err != nil {
		return false
	}
	if p.class.Class.Automated() {
		return true // a bounce names the original's Message-ID in its body, not its headers
	}
	for _, ids := range [][]string{{p.msg.MessageID}, p.msg.InReplyTo, p.msg.References} {
		for _, id := range ids {
			if q.ids[thread.CanonicalID(id)] {
				return true
			}
		}
	}
	return false
}

// flush opens the queued tickets and fills in their outcomes' keys.
func (q *createQueue) flush(ctx context.Context, tx *tickets.Tx, outs []Outcome) error {
	if q == nil || len(q.items) == 0 {
		return nil
	}
	created, err := tx.CreateMany(ctx, q.items)
	if err != nil {
		if retryable(err) || ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: %v", errRetryWithSavepoints, err)
	}
	byRaw := make(map[int64]*Outcome, len(outs)) // a queued ticket's outcome is its raw mail's
	for i := range outs {
		byRaw[outs[i].RawID] = &outs[i]
	}
	for i, c := range created {
		o := byRaw[*q.items[i].Message.RawMailID]
		switch {
		case o == nil:
			return fmt.Errorf("queued ticket of raw mail %d has no outcome", *q.items[i].Message.RawMailID)
		case errors.Is(c.Err, tickets.ErrDuplicateMail):
			o.TicketKey, o.Reason = "", "already ingested"
		case c.Err != nil:
			return fmt.Errorf("%w: %v", errRetryWithSavepoints, c.Err)
		default:
			o.TicketKey = c.Ticket.Key
		}
	}
	q.items, q.ids = q.items[:0], nil
	return nil
}

// retryable reports a deadlock or serialization failure between concurrent transactions.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// loadPending reads the next pending messages (ids above after, and up to upTo unless it is 0)
// without locking them: at most limit messages and maxBytes of raw mail (but always one). Rows in
// fresh are taken from there (and removed) instead of being read back.
func loadPending(ctx context.Context, q tickets.DB, mailbox string, after, upTo int64, limit int, maxBytes int64,
	fresh map[int64]*RawMail) ([]*RawMail, error) {
	rows, err := q.Query(ctx, `SELECT id, size FROM raw_mails
		WHERE state = 'pending' AND id > $1 AND ($2 = '' OR mailbox = $2) AND ($4 = 0 OR id <= $4)
		ORDER BY id LIMIT $3`, after, mailbox, limit, upTo)
	if err != nil {
		return nil, fmt.Errorf("list pending mail: %w", err)
	}
	var (
		ids   []int64
		total int64
	)
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list pending mail: %w", err)
		}
		if len(ids) > 0 && total+size > maxBytes {
			break
		}
		ids = append(ids, id)
		total += size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending mail: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var out []*RawMail
	read := ids[:0:0]
	for _, id := range ids {
		if r := fresh[id]; r != nil {
			out = append(out, r)
			delete(fresh, id)
			continue
		}
		read = append(read, id)
	}
	if len(read) > 0 {
		rs, err := q.Query(ctx, `SELECT `+rawColumns+` FROM raw_mails WHERE id = ANY($1)`, read)
		if err != nil {
			return nil, fmt.Errorf("load pending mail: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			r, err := scanRaw(rs)
			if err != nil {
				return nil, fmt.Errorf("load pending mail: %w", err)
			}
			out = append(out, r)
		}
		if err := rs.Err(); err != nil {
			return nil, fmt.Errorf("load pending mail: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b *RawMail) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// partition groups messages into components (union of Message-ID, In-Reply-To, References and every
// sender and recipient address except the desk's own) and deals the components to at most n buckets
// of about equal work, keeping each component whole and in order. Messages of one thread stay in one
// transaction, and no two concurrent transactions touch the same contact or recipient, so they never
// wait for each other's row or rate-limit locks.
func partition(preps []prepared, n int, desk func(string) bool) [][]prepared {
	parent := make([]int, len(preps))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	link := func(i int, key string) {
		if j, ok := owner[key]; ok {
			parent[find(i)] = find(j)
			return
		}
		owner[key] = i
	}
	for i, p := range preps {
		if p.msg == nil {
			continue
		}
		ids := append(append([]string{p.msg.MessageID}, p.msg.InReplyTo...), p.msg.References...)
		for _, id := range ids {
			if c := thread.CanonicalID(id); c != "" {
				link(i, "id:"+c)
			}
		}
		if p.msg.From != nil && p.msg.From.Address != "" {
			link(i, "addr:"+strings.ToLower(p.msg.From.Address))
		}
		for _, list := range [][]*mail.Address{p.msg.To, p.msg.Cc} {
			for _, a := range list {
				if a != nil && a.Address != "" && !desk(a.Address) {
					link(i, "addr:"+strings.ToLower(a.Address))
				}
			}
		}
	}
	n = max(1, min(n, len(preps)))
	// Largest component first to the least loaded bucket (LPT), by an estimate of each message's
	// work: the transactions of a batch then end close together, and the next batch, which waits
	// for the last of them, starts sooner. Each bucket keeps its messages in arrival order.
	cost := map[int]int{}
	var roots []int
	for i, p := range preps {
		root := find(i)
		if _, ok := cost[root]; !ok {
			roots = append(roots, root)
		}
		cost[root] += messageCost(p)
	}
	sort.SliceStable(roots, func(a, b int) bool { return cost[roots[a]] > cost[roots[b]] })
	load := make([]int, n)
	slot := make(map[int]int, len(roots))
	for _, root := range roots {
		b := 0
		for j := range load {
			if load[j] < load[b] {
				b = j
			}
		}
		slot[root] = b
		load[b] += cost[root]
	}
	buckets := make([][]prepared, n)
	for i, p := range preps {
		b := slot[find(i)]
		buckets[b] = append(buckets[b], p)
	}
	out := buckets[:0]
	for _, b := range buckets {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// messageCost estimates the work of applying p: 8 for the statements every message needs, plus one
// per 4 KB of raw mail (the text stored, the attachments written).
func messageCost(p prepared) int {
	return 8 + len(p.raw.Raw)/4096
}

// prepare runs the pure stages on all messages in parallel, keeping their order; a message the
// poller already prepared (prepareAhead) is taken as it is.
func (in *Ingester) prepare(raws []*RawMail) []prepared {
	out := make([]prepared, len(raws))
	in.parallel(len(raws), func(i int) {
		if r := raws[i]; r.prep != nil {
			out[i], r.prep = *r.prep, nil
			return
		}
		out[i] = in.prepareOne(raws[i])
	})
	return out
}

// prepareAhead parses and classifies the pending messages of raws in the background and returns
// a function that waits for it: the poller runs it while the chunk is being stored, during the
// previous chunk's ingest, so the parsing is off the ingest's path. Nothing is written: the result
// only spares the ingest the same pure work.
func (in *Ingester) prepareAhead(raws []RawMail) (wait func()) {
	done := make(chan struct{})
	preps := make([]*prepared, len(raws))
	go func() {
		defer close(done)
		in.parallel(len(raws), func(i int) {
			if r := &raws[i]; r.State == StatePending && r.Raw != nil {
				p := in.prepareOne(r)
				preps[i] = &p
			}
		})
	}()
	return func() { // attached only now: the store reads raws meanwhile
		<-done
		for i, p := range preps {
			raws[i].prep = p
		}
	}
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines.
func (in *Ingester) parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func (in *Ingester) prepareOne(r *RawMail) (p prepared) {
	p.raw = r
	defer func() {
		if v := recover(); v != nil {
			p.err = fmt.Errorf("panic while parsing: %v\n%s", v, debug.Stack())
		}
	}()
	if r.Raw == nil {
		p.err = errors.New("raw bytes not stored (oversize message); raise mailin.max_message_bytes and re-fetch it from the mailbox")
		return p
	}
	msg, err := parse.Parse(r.Raw)
	if err != nil {
		p.err = fmt.Errorf("parse: %w", err)
		return p
	}
	p.msg = msg
	co := classify.Options{DeskAddresses: in.opts.DeskAddresses, DeskDomain: in.opts.DeskDomain}
	if signer := in.opts.Signer; signer != nil {
		// only Message-IDs we signed are ours: the desk domain may also be the company's mail domain
		co.OwnMessageID = func(id string) bool { _, err := signer.TicketFromMessageID(id); return err == nil }
	}
	p.class = classify.Classify(msg, co)
	return p
}

// InspectResult is what the pure stages and threading decide for one message (`deskd inspect`).
type InspectResult struct {
	Message  *parse.Message
	Class    classify.Result
	Decision *thread.Decision
}

// Inspect parses, classifies and (when lk is non-nil) threads a raw message without writing anything.
func (in *Ingester) Inspect(ctx context.Context, raw []byte, lk thread.Lookup) (*InspectResult, error) {
	p := in.prepareOne(&RawMail{Raw: raw})
	if p.err != nil {
		return nil, p.err
	}
	res := &InspectResult{Message: p.msg, Class: p.class}
	if lk == nil {
		lk = emptyLookup{}
	}
	d, err := thread.Decide(ctx, in.threadInput(p.msg), in.thread, lk)
	if err != nil {
		return nil, err
	}
	res.Decision = &d
	return res, nil
}

type emptyLookup struct{}

func (emptyLookup) TicketByID(context.Context, int64) (thread.TicketRef, error) {
	return thread.TicketRef{}, thread.ErrNotFound
}
func (emptyLookup) TicketByMessageID(context.Context, []string) (thread.TicketRef, string, error) {
	return thread.TicketRef{}, "", thread.ErrNotFound
}
func (emptyLookup) TicketByKey(context.Context, string) (thread.TicketRef, error) {
	return thread.TicketRef{}, thread.ErrNotFound
}

func (in *Ingester) threadOptions() thread.Options {
	prefixes := make([]string, 0, len(in.opts.Queues))
	for _, q := range in.opts.Queues {
		prefixes = append(prefixes, q.Prefix)
	}
	return thread.Options{
		Signer:                in.opts.Signer,
		KeyPrefixes:           prefixes,
		IsAgent:               func(addr string) bool { _, ok := in.opts.Agents[strings.ToLower(addr)]; return ok },
		AcceptRequesterDomain: in.opts.AcceptRequesterDomain,
	}
}

func (in *Ingester) threadInput(m *parse.Message) thread.Input {
	ti := thread.Input{Subject: m.Subject, MessageID: m.MessageID, InReplyTo: m.InReplyTo, References: m.References,
		To: addrs(m.To), Cc: addrs(m.Cc)}
	if m.From != nil {
		ti.From = m.From.Address
	}
	for _, k := range []string{"Delivered-To", "X-Original-To", "Envelope-To"} {
		for _, v := range m.Header[k] {
			ti.DeliveredTo = append(ti.DeliveredTo, strings.TrimSpace(v))
		}
	}
	return ti
}
