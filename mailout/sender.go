package mailout

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/config"
)

// SenderOptions configures a Sender.
type SenderOptions struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Outbox enqueues dead-letter notices (through its Noticer and policy) and supplies the HELO
	// fallback domain. Required.
	Outbox *Outbox
	// SMTP is the relay. HELO defaults to the Outbox's domain.
	SMTP config.SMTP
	// MailOut supplies BackoffMin (default 30s), BackoffMax (default 1h), BatchSize (default 50) and
	// Workers (default 4; never more than SMTP.MaxConnections).
	MailOut config.MailOut
	// TLSConfig optionally replaces the default TLS settings (custom roots, client certificates).
	TLSConfig *tls.Config
	// Interval is the polling period of Run. Default 1s.
	Interval time.Duration
	// Lease is how long a claimed row stays reserved for this sender. A row still 'sending' after
	// its lease (the sender died) is claimed again. Default: SMTP.Timeout × (rows per worker + 2).
	Lease time.Duration
	// Logger receives one record per failure; nil discards.
	Logger *slog.Logger
	// Outcome, when set, is called after each committed attempt with "sent", "retry" or "dead"
	// (for metrics such as ops.Metrics.MailOut). It must not block.
	Outcome func(outcome string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sender drains the outbox over SMTP. Run it in one goroutine per process; several processes (or
// replicas) may run Senders on one database: rows are claimed with FOR UPDATE SKIP LOCKED.
type Sender struct {
	pool     *pgxpool.Pool
	outbox   *Outbox
	tr       *transport
	log      *slog.Logger
	outcome  func(string)
	now      func() time.Time
	interval time.Duration
	lease    time.Duration
	batch    int
	workers  int
	minWait  time.Duration
	maxWait  time.Duration
	jitter   func(time.Duration) time.Duration

	// afterAccept, when set (tests only), runs after the server accepted DATA and before the outcome
	// is committed; an error makes the worker abandon the row as a crash at that instant would.
	afterAccept func(id int64) error
}

// NewSender returns a Sender configured by o. It does not connect; Run and the first send do.
func NewSender(o SenderOptions) (*Sender, error) {
	if o.Pool == nil || o.Outbox == nil {
		return nil, errors.New("create sender: pool and outbox are required")
	}
	helo := o.SMTP.HELO
	if helo == "" {
		helo = o.Outbox.Domain()
	}
	tr, err := newTransport(o.SMTP, helo, o.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("create sender: %w", err)
	}
	s := &Sender{
		pool:     o.Pool,
		outbox:   o.Outbox,
		tr:       tr,
		log:      o.Logger,
		outcome:  o.Outcome,
		now:      o.Now,
		interval: o.Interval,
		lease:    o.Lease,
		batch:    o.MailOut.BatchSize,
		workers:  o.MailOut.Workers,
		minWait:  o.MailOut.BackoffMin,
		maxWait:  o.MailOut.BackoffMax,
		jitter:   equalJitter,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.outcome == nil {
		s.outcome = func(string) {}
	}
	if s.interval <= 0 {
		s.interval = time.Second
	}
	if s.batch <= 0 {
		s.batch = 50
	}
	if s.workers <= 0 {
		s.workers = 4
	}
	s.workers = min(s.workers, cap(tr.sem))
	if s.minWait <= 0 {
		s.minWait = 30 * time.Second
	}
	if s.maxWait <= 0 {
		s.maxWait = time.Hour
	}
	s.maxWait = max(s.maxWait, s.minWait)
	if s.lease <= 0 {
		perWorker := (s.batch + s.workers - 1) / s.workers
		s.lease = tr.timeout * time.Duration(perWorker+2)
	}
	return s, nil
}

// Run sends due mail until ctx is cancelled, then closes its connections and returns nil. It polls
// every Interval, immediately again after a full batch, and at once when a transaction that
// enqueued mail commits (LISTEN on WakeChannel). Errors of one round are logged, and the
// next round retries; Run itself only fails if it cannot start.
func (s *Sender) Run(ctx context.Context) error {
	defer s.tr.close()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	lctx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	wake := listen(lctx, s.pool, s.log)
	for {
		n, err := s.runOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "send outbox", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && n >= s.batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
	}
}

// claimed is one outbox row reserved by this sender.
type claimed struct {
	id         int64
	ticketID   int64 // 0 for none
	kind       string
	messageID  string
	mailFrom   string
	rcptTo     []string
	raw        []byte // nil for a draft, until sendRow renders it
	draft      []byte
	attempts   int // including this one
	deadline   time.Time
	leaseUntil time.Time
}

// runOnce claims up to one batch of due rows, sends them on up to Workers connections and records
// each outcome. It returns how many mails the server accepted. Rows it claimed but did not attempt
// (ctx cancelled, lease too short) are released for the next round.
func (s *Sender) runOnce(ctx context.Context) (int, error) {
	rows, err := s.claim(ctx)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	work := make(chan claimed)
	var (
		sent     atomic.Int64
		mu       sync.Mutex
		errs     []error
		released []claimed
		wg       sync.WaitGroup
	)
	for range min(s.workers, len(rows)) {
		wg.Go(func() {
			for r := range work {
				ok, err := s.sendRow(ctx, r)
				mu.Lock()
				switch {
				case errors.Is(err, errNotAttempted):
					released = append(released, r)
				case err != nil:
					errs = append(errs, err)
				case ok:
					sent.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	for _, r := range rows {
		work <- r
	}
	close(work)
	wg.Wait()
	if len(released) > 0 {
		if err := s.release(context.WithoutCancel(ctx), released); err != nil {
			errs = append(errs, err)
		}
	}
	return int(sent.Load()), errors.Join(errs...)
}

// claim reserves due rows: pending ones whose next attempt is due and 'sending' ones whose lease
// expired. It marks them 'sending' with a lease (next_attempt_at = now + lease), counts the attempt
// and COMMITS before any SMTP traffic, so a crash after this point leaves rows that are retried when
// the lease expires, never rows that are lost.
func (s *Sender) claim(ctx context.Context) ([]claimed, error) {
	now := s.now()
	leaseUntil := now.Add(s.lease)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	rows, err := tx.Query(ctx, `
		WITH due AS (
			SELECT id FROM outbox
			WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1
			ORDER BY next_attempt_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE outbox o SET status = 'sending', attempts = o.attempts + 1, next_attempt_at = $3
		FROM due WHERE o.id = due.id
		RETURNING o.id, coalesce(o.ticket_id, 0), o.kind, o.message_id, o.mail_from, o.rcpt_to, o.raw,
		          o.draft, o.attempts, o.deadline`,
		now, s.batch, leaseUntil)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	var out []claimed
	for rows.Next() {
		c := claimed{leaseUntil: leaseUntil}
		if err := rows.Scan(&c.id, &c.ticketID, &c.kind, &c.messageID, &c.mailFrom, &c.rcptTo, &c.raw,
			&c.draft, &c.attempts, &c.deadline); err != nil {
			return nil, fmt.Errorf("claim outbox rows: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit claim: %w", err)
	}
	return out, nil
}

// errNotAttempted marks a claimed row that was not sent and goes back to pending.
var errNotAttempted = errors.New("not attempted")

// sendRow delivers one claimed row and records the outcome. It reports whether the server accepted
// the mail. A row is only transmitted when the whole SMTP transaction (bounded by the SMTP timeout)
// ends before the row's lease does, so no other sender can claim it while it is on the wire.
func (s *Sender) sendRow(ctx context.Context, r claimed) (bool, error) {
	if ctx.Err() != nil {
		return false, errNotAttempted
	}
	if r.raw == nil {
		// A draft is rendered now. It cannot fail differently on the next attempt (the Composer is
		// pure), so a failure is permanent: the row goes dead and the agents hear of it.
		raw, err := s.outbox.renderDraft(r.draft)
		if err != nil {
			return false, s.record(context.WithoutCancel(ctx), r, delivery{permanent: err})
		}
		r.raw = raw
	}
	// Only put a row on the wire if its whole SMTP transaction ends before its lease does.
	ready := func() bool { return !s.now().Add(s.tr.timeout).After(r.leaseUntil) }
	d, attempted, err := s.tr.send(ctx, r.mailFrom, r.rcptTo, r.raw, ready)
	switch {
	case err != nil && ctx.Err() != nil:
		return false, errNotAttempted
	case err != nil:
		return false, s.record(ctx, r, delivery{temporary: err})
	case !attempted:
		return false, errNotAttempted
	}
	if d.accepted && s.afterAccept != nil {
		if err := s.afterAccept(r.id); err != nil {
			return true, fmt.Errorf("outbox %d: abandoned after acceptance: %w", r.id, err)
		}
	}
	// The outcome must be recorded even during shutdown: the server already answered.
	return d.accepted, s.record(context.WithoutCancel(ctx), r, d)
}

// release puts claimed but unattempted rows back to pending, due now, their attempt uncounted.
func (s *Sender) release(ctx context.Context, rows []claimed) error {
	for _, r := range rows {
		if _, err := s.pool.Exec(ctx, `
			UPDATE outbox SET status = 'pending', attempts = attempts - 1, next_attempt_at = $3
			WHERE id = $1 AND status = 'sending' AND attempts = $2`, r.id, r.attempts, s.now()); err != nil {
			return fmt.Errorf("release outbox %d: %w", r.id, err)
		}
	}
	return nil
}

// backoff returns the wait before the next attempt after attempts failed ones: BackoffMin doubled per
// attempt, capped at BackoffMax, with jitter so that mail deferred together does not retry together.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.minWait
	for i := 1; i < attempts && d < s.maxWait; i++ {
		d *= 2
	}
	return s.jitter(min(d, s.maxWait))
}

// equalJitter returns a duration uniformly drawn from [d/2, d].
func equalJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// record commits the outcome of one attempt. Every update is guarded by the attempt number, so a
// sender whose lease was overtaken cannot overwrite the state written by the one that took over.
func (s *Sender) record(ctx context.Context, r claimed, d delivery) error {
	if d.accepted && len(d.refused) == 0 {
		return s.recordSent(ctx, r)
	}
	now := s.now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record outbox %d: %w", r.id, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	refused := make(map[string]bool, len(d.refused))
	var notes []string
	for _, f := range d.refused {
		refused[f.email] = true
		notes = append(notes, f.err.Error())
	}
	var (
		status, lastErr string
		next            = now
	)
	switch {
	case d.accepted:
		status, lastErr = "sent", strings.Join(notes, "; ")
	case d.temporary != nil && now.Before(r.deadline):
		status, lastErr = "pending", strings.Join(append([]string{d.temporary.Error()}, notes...), "; ")
		next = now.Add(s.backoff(r.attempts))
		if next.After(r.deadline) {
			next = r.deadline // one last try at the deadline
		}
	case d.temporary != nil:
		status = "dead"
		lastErr = fmt.Sprintf("retry deadline %s passed after %d attempts; last error: %s",
			r.deadline.UTC().Format(time.RFC3339), r.attempts, d.temporary)
	default:
		status, lastErr = "dead", "permanent failure"
		if d.permanent != nil {
			lastErr = d.permanent.Error()
		}
		if len(notes) > 0 {
			lastErr += ": " + strings.Join(notes, "; ")
		}
	}
	remaining := make([]string, 0, len(r.rcptTo))
	for _, e := range r.rcptTo {
		if !refused[e] {
			remaining = append(remaining, e)
		}
	}
	if status != "pending" {
		remaining = r.rcptTo // keep the full envelope of finished rows for audit
	}
	tag, err := tx.Exec(ctx, `
		UPDATE outbox SET status = $3::text, last_error = $4, next_attempt_at = $5, rcpt_to = $6,
		       sent_at = CASE WHEN $3::text = 'sent' THEN $7::timestamptz END
		WHERE id = $1 AND status = 'sending' AND attempts = $2`,
		r.id, r.attempts, status, lastErr, next, remaining, now)
	if err != nil {
		return fmt.Errorf("record outbox %d: %w", r.id, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // another sender took the row over after our lease expired
	}
	if err := s.refuse(ctx, tx, r, d.refused, now); err != nil {
		return err
	}
	if status == "dead" {
		if err := s.bury(ctx, tx, r, lastErr, now); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record outbox %d: %w", r.id, err)
	}
	if status == "pending" {
		s.outcome("retry")
	} else {
		s.outcome(status)
	}
	if status != "sent" {
		s.log.WarnContext(ctx, "outbound mail not delivered", "outbox", r.id, "ticket", r.ticketID,
			"message_id", r.messageID, "status", status, "attempt", r.attempts, "err", lastErr)
	}
	return nil
}

// refuse records recipients the server refused permanently: a mail_refused event on the ticket and,
// when the refusal says the mailbox is gone, the contact marked undeliverable so that no more mail is
// recordSent marks a row accepted by every recipient as sent: the transaction, its statements and
// the commit go to PostgreSQL in one round trip (a pipeline). A plain "sent" needs no WAL flush of its
// own: losing it in a PostgreSQL crash only re-sends the mail with the same Message-ID, which is the
// at-least-once window documented above. Skipping the flush per mail keeps the sender from competing
// with ingest for it.
func (s *Sender) recordSent(ctx context.Context, r claimed) error {
	now := s.now()
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit TO OFF`)
	upd := b.Queue(`
		UPDATE outbox SET status = 'sent', last_error = '', next_attempt_at = $3, rcpt_to = $4, sent_at = $3
		WHERE id = $1 AND status = 'sending' AND attempts = $2`, r.id, r.attempts, now, r.rcptTo)
	b.Queue(`COMMIT`)
	var affected int64
	upd.Exec(func(tag pgconn.CommandTag) error { affected = tag.RowsAffected(); return nil })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record outbox %d: %w", r.id, err)
	}
	if affected > 0 { // 0: another sender took the row over after our lease expired
		s.outcome("sent")
	}
	return nil
}

// queued for it.
func (s *Sender) refuse(ctx context.Context, tx pgx.Tx, r claimed, refused []rcptFailure, now time.Time) error {
	for _, f := range refused {
		if mailboxGone(f.err) {
			if _, err := tx.Exec(ctx, `
				INSERT INTO contacts (email, undeliverable_at, undeliverable_why) VALUES ($1, $2, $3)
				ON CONFLICT (email) DO UPDATE
				SET undeliverable_at = coalesce(contacts.undeliverable_at, excluded.undeliverable_at),
				    undeliverable_why = excluded.undeliverable_why`,
				f.email, now, f.err.Error()); err != nil {
				return fmt.Errorf("mark %s undeliverable: %w", f.email, err)
			}
		}
		if r.ticketID > 0 {
			if err := insertEvent(ctx, tx, r.ticketID, now, "mail_refused",
				fmt.Sprintf("outbox %d (%s) to %s", r.id, r.kind, f.email), f.err.Error()); err != nil {
				return err
			}
		}
	}
	return nil
}

// bury records a dead mail: a mail_dead event on its ticket and a dead-letter notice to the queue's
// agents, except for a dead notice itself (never a dead-letter notice about a dead-letter notice).
func (s *Sender) bury(ctx context.Context, tx pgx.Tx, r claimed, why string, now time.Time) error {
	if r.ticketID == 0 {
		return nil
	}
	if err := insertEvent(ctx, tx, r.ticketID, now, "mail_dead",
		fmt.Sprintf("outbox %d (%s) to %s", r.id, r.kind, strings.Join(r.rcptTo, ", ")), why); err != nil {
		return err
	}
	if r.kind == KindDeadLetter || r.kind == KindLoopDetected {
		return nil
	}
	return s.outbox.enqueueNotice(ctx, tx, Notice{
		Kind:       KindDeadLetter,
		Key:        fmt.Sprintf("%s:outbox:%d", KindDeadLetter, r.id),
		TicketID:   r.ticketID,
		Why:        why,
		OutboxID:   r.id,
		FailedKind: r.kind,
		Recipients: r.rcptTo,
		MessageID:  r.messageID,
		Subject:    rawSubject(r.raw),
		Attempts:   r.attempts,
		At:         now,
	})
}

// rawSubject returns the decoded Subject of a rendered message, "" when unreadable.
func rawSubject(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return msg.Header.Get("Subject")
	}
	return s
}
