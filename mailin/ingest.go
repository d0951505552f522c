package mailin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

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
	Log        *slog.Logger
	// Observe, when set, is called after each commit for every message of the batch with its mailbox,
	// its outcome (ingested, ignored, duplicate, quarantined) and the time from storage to commit.
	Observe func(mailbox, outcome string, latency time.Duration)
}

// Ingester turns stored raw mail into ticket changes (DESIGN.md data flow, "ONE transaction").
type Ingester struct {
	svc  *tickets.Service
	opts Options
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
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Ingester{svc: svc, opts: opts}, nil
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
}

// ProcessPending ingests pending raw mail (of mailbox, or of all mailboxes when mailbox is ""),
// oldest first, batch by batch until none is left, and returns every outcome. Rows are claimed with
// FOR UPDATE SKIP LOCKED, so concurrent callers never process one message twice.
func (in *Ingester) ProcessPending(ctx context.Context, mailbox string) ([]Outcome, error) {
	var all []Outcome
	for {
		outs, err := in.processBatch(ctx, mailbox)
		if err != nil {
			return all, err
		}
		if len(outs) == 0 {
			return all, nil
		}
		all = append(all, outs...)
	}
}

func (in *Ingester) processBatch(ctx context.Context, mailbox string) ([]Outcome, error) {
	var outs []Outcome
	err := in.svc.Do(ctx, func(tx *tickets.Tx) error {
		outs = outs[:0]
		raws, err := claimPending(ctx, tx, mailbox, in.opts.BatchSize, in.opts.BatchBytes)
		if err != nil || len(raws) == 0 {
			return err
		}
		preps := in.prepare(raws)
		for _, p := range preps {
			out := Outcome{RawID: p.raw.ID, Mailbox: p.raw.Mailbox, UID: p.raw.UID, receivedAt: p.raw.ReceivedAt}
			if p.err == nil {
				err = tx.Savepoint(ctx, func(tx *tickets.Tx) (err error) {
					defer func() {
						if r := recover(); r != nil {
							err = fmt.Errorf("panic while ingesting: %v\n%s", r, debug.Stack())
						}
					}()
					out.State, out.TicketKey, out.Reason, err = in.apply(ctx, tx, p)
					if err != nil {
						return err
					}
					return setState(ctx, tx.PG(), p.raw.ID, out.State, out.Reason, tx.Now())
				})
			} else {
				err = p.err
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				out.State, out.TicketKey, out.Reason = StateQuarantined, "", err.Error()
				if err := setState(ctx, tx.PG(), p.raw.ID, StateQuarantined, out.Reason, tx.Now()); err != nil {
					return err
				}
			}
			outs = append(outs, out)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ingest batch: %w", err)
	}
	now := time.Now()
	for i := range outs {
		o := &outs[i]
		if o.State == StateQuarantined {
			in.opts.Log.Warn("message quarantined", "mailbox", o.Mailbox, "uid", o.UID, "raw_id", o.RawID, "reason", o.Reason)
		} else {
			in.opts.Log.Debug("message ingested", "mailbox", o.Mailbox, "uid", o.UID, "raw_id", o.RawID, "state", o.State,
				"ticket", o.TicketKey, "reason", o.Reason)
		}
	}
	if in.opts.Observe != nil {
		for i := range outs {
			outs[i].Latency = now.Sub(outs[i].receivedAt)
			in.opts.Observe(outs[i].Mailbox, outs[i].State, outs[i].Latency)
		}
	}
	return outs, nil
}

// claimPending locks up to limit pending messages (and at most maxBytes of them, but always one).
func claimPending(ctx context.Context, tx *tickets.Tx, mailbox string, limit int, maxBytes int64) ([]*RawMail, error) {
	rows, err := tx.PG().Query(ctx, `SELECT id, size FROM raw_mails
		WHERE state = 'pending' AND ($1 = '' OR mailbox = $1)
		ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, mailbox, limit)
	if err != nil {
		return nil, fmt.Errorf("claim pending mail: %w", err)
	}
	var (
		ids   []int64
		total int64
	)
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim pending mail: %w", err)
		}
		if len(ids) > 0 && total+size > maxBytes {
			break
		}
		ids = append(ids, id)
		total += size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim pending mail: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rs, err := tx.PG().Query(ctx, `SELECT `+rawColumns+` FROM raw_mails WHERE id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, fmt.Errorf("load pending mail: %w", err)
	}
	defer rs.Close()
	var out []*RawMail
	for rs.Next() {
		r, err := scanRaw(rs)
		if err != nil {
			return nil, fmt.Errorf("load pending mail: %w", err)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// prepare runs the pure stages on all messages in parallel, keeping their order.
func (in *Ingester) prepare(raws []*RawMail) []prepared {
	out := make([]prepared, len(raws))
	workers := min(runtime.GOMAXPROCS(0), len(raws))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = in.prepareOne(raws[i])
			}
		}()
	}
	for i := range raws {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
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
	p.class = classify.Classify(msg, classify.Options{DeskAddresses: in.opts.DeskAddresses, DeskDomain: in.opts.DeskDomain})
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
	d, err := thread.Decide(ctx, in.threadInput(p.msg), in.threadOptions(), lk)
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
