package mailout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)) that serialise rate-limit
// checks per ticket and per recipient, so two concurrent transactions cannot both see "9 of 10" and
// both send. The values spell "mo" and "mr"; they only have to differ from other packages' classes.
const (
	lockClassTicket    = 0x6d6f
	lockClassRecipient = 0x6d72
)

// rateWindow is the window of every rate limit.
const rateWindow = time.Hour

// decision is what the policy decided for one mail.
type decision struct {
	to         []Address // recipients the mail goes to
	dropped    []string  // "address: why" for recipients removed
	suppressed string    // non-empty: the whole mail is suppressed, and why
	trip       string    // non-empty: trip the ticket's loop breaker, and why
	tripCount  int       // automated mails in the window that made it trip
	tripAddrs  []string  // the recipients of the mail that made it trip
}

// decideMany applies the loop and flood policy (DESIGN.md invariant 5) inside tx to each mail i of ms
// with use[i] set, in order, each mail counting against the limits of the mails after it:
//
//   - never to the desk's own addresses, to contacts marked undeliverable, or when the caller
//     flagged the recipients as machines (m.Machine);
//   - automated mail about a ticket whose loop breaker is open is suppressed;
//   - automated mail beyond the per-ticket, per-recipient or global hourly limit is suppressed (a
//     recipient over its limit is dropped from the mail). Human-authored mail is never rate limited.
//
// A per-ticket limit hit, or a per-recipient hit where that recipient's automated mail about this
// ticket alone reached the limit within the hour, is a loop: the decision asks for the breaker to trip.
func (o *Outbox) decideMany(ctx context.Context, tx pgx.Tx, ms []Mail, use []bool, now time.Time) ([]decision, error) {
	ds := make([]decision, len(ms))
	var all []string
	for i := range ms {
		if !use[i] {
			continue
		}
		m, d := &ms[i], &ds[i]
		for _, a := range m.To {
			switch {
			case o.own[baseAddress(a.Email)]:
				d.dropped = append(d.dropped, a.Email+": the desk's own address")
			case m.Machine != "":
				d.dropped = append(d.dropped, a.Email+": recipient is a machine ("+m.Machine+")")
			default:
				d.to = append(d.to, a)
				all = append(all, a.Email)
			}
		}
	}
	undeliverable, err := undeliverableContacts(ctx, tx, all)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		d := &ds[i]
		keep := d.to[:0]
		for _, a := range d.to {
			if why, ok := undeliverable[a.Email]; ok {
				d.dropped = append(d.dropped, a.Email+": undeliverable ("+why+")")
				continue
			}
			keep = append(keep, a)
		}
		d.to = keep
	}
	if err := o.limitMany(ctx, tx, ms, use, ds, now); err != nil {
		return nil, err
	}
	for i := range ds {
		if d := &ds[i]; use[i] && len(d.to) == 0 && d.suppressed == "" {
			d.suppressed = "no deliverable recipient: " + strings.Join(d.dropped, "; ")
		}
	}
	return ds, nil
}

// perTicketLimited reports whether the per-ticket limit and the loop breaker apply to m: automated
// mail about an existing ticket, other than mailout's own notices.
func (m *Mail) perTicketLimited() bool {
	return m.automated() && m.TicketID > 0 && !m.noticeKind() && !m.NewTicket
}

// rateState is what limitMany knows of the last hour: read once from the database, then advanced by
// each mail of the batch that will be sent.
type rateState struct {
	tripped   map[int64]time.Time      // ticket -> breaker tripped at (open breakers only)
	perTicket map[int64]int            // ticket -> automated mails in the window
	perRcpt   map[string]map[int64]int // recipient -> ticket (0: none, -1: any ticket outside the batch) -> automated mails
	global    int                      // automated mails in the window (-1: not read)
}

// limitMany applies the breaker and the rate limits to the automated mail among ms: the rows it needs
// are read with one statement each, after the per-ticket and per-recipient advisory locks are taken
// in one sorted pass (tickets first), so that two concurrent transactions cannot both see "9 of 10"
// and both send, and cannot deadlock against each other.
func (o *Outbox) limitMany(ctx context.Context, tx pgx.Tx, ms []Mail, use []bool, ds []decision, now time.Time) error {
	since := now.Add(-rateWindow)
	var (
		ticketSet = map[int64]bool{}
		rcptSet   = map[string]bool{}
		automated bool
	)
	for i := range ms {
		m := &ms[i]
		if !use[i] || len(ds[i].to) == 0 || !m.automated() {
			continue
		}
		automated = true
		if m.perTicketLimited() {
			ticketSet[m.TicketID] = true
		}
		if o.limits.PerRecipientPerHour > 0 && !m.Internal {
			for _, a := range ds[i].to {
				rcptSet[a.Email] = true
			}
		}
	}
	if !automated {
		return nil
	}
	st, err := o.readRates(ctx, tx, ticketSet, rcptSet, since, now)
	if err != nil {
		return err
	}
	for i := range ms {
		m, d := &ms[i], &ds[i]
		if !use[i] || len(d.to) == 0 || !m.automated() {
			continue
		}
		o.limitOne(m, d, st, now)
		if d.suppressed != "" {
			continue
		}
		// this mail will be sent: it counts against the mails after it
		st.global++
		if m.TicketID > 0 {
			st.perTicket[m.TicketID]++
		}
		for _, a := range d.to {
			if st.perRcpt[a.Email] == nil {
				st.perRcpt[a.Email] = map[int64]int{}
			}
			st.perRcpt[a.Email][m.TicketID]++
		}
	}
	return nil
}

// limitOne decides one automated mail against the state of the window.
func (o *Outbox) limitOne(m *Mail, d *decision, st *rateState, now time.Time) {
	perTicket := m.perTicketLimited()
	if perTicket {
		if at, ok := st.tripped[m.TicketID]; ok {
			d.suppressed = fmt.Sprintf("loop breaker open since %s", at.UTC().Format(time.RFC3339))
			return
		}
		if lim := o.limits.PerTicketPerHour; lim > 0 {
			if n := st.perTicket[m.TicketID]; n >= lim {
				d.suppressed = fmt.Sprintf("ticket rate limit: %d automated mails in the last hour (limit %d)", n, lim)
				d.trip, d.tripCount, d.tripAddrs = d.suppressed, n, emails(d.to)
				st.tripped[m.TicketID] = now
				return
			}
		}
	}
	if lim := o.limits.PerRecipientPerHour; lim > 0 && !m.Internal {
		keep := d.to[:0]
		for _, a := range d.to {
			n, onTicket := 0, st.perRcpt[a.Email][m.TicketID]
			for _, c := range st.perRcpt[a.Email] {
				n += c
			}
			if n < lim {
				keep = append(keep, a)
				continue
			}
			why := fmt.Sprintf("recipient rate limit: %d automated mails to %s in the last hour (limit %d)", n, a.Email, lim)
			d.dropped = append(d.dropped, a.Email+": "+why)
			if perTicket && onTicket >= lim && d.trip == "" {
				d.trip, d.tripCount, d.tripAddrs = why, onTicket, []string{a.Email}
				st.tripped[m.TicketID] = now
			}
		}
		d.to = keep
		if len(d.to) == 0 {
			d.suppressed = strings.Join(d.dropped, "; ")
			return
		}
	}
	if lim := o.limits.GlobalPerHour; lim > 0 && st.global >= lim {
		d.suppressed = fmt.Sprintf("global rate limit: %d automated mails in the last hour (limit %d)", st.global, lim)
	}
}

// readRates locks the tickets' and recipients' rate limits (advisory locks, held to the end of the
// transaction, taken in sorted order) and reads the window's breakers and counts.
func (o *Outbox) readRates(ctx context.Context, tx pgx.Tx, ticketSet map[int64]bool, rcptSet map[string]bool, since, now time.Time) (*rateState, error) {
	st := &rateState{tripped: map[int64]time.Time{}, perTicket: map[int64]int{}, perRcpt: map[string]map[int64]int{}}
	ticketIDs := slices.Sorted(maps.Keys(ticketSet))
	rcpts := slices.Sorted(maps.Keys(rcptSet))
	// The locks and the reads go out in one pipeline (one round trip per ingest transaction instead
	// of five); PostgreSQL runs them in order, so every count is read after its locks are held.
	var (
		batch pgx.Batch
		reads []func(pgx.BatchResults) error
	)
	lock := func(what, sql string, args ...any) {
		batch.Queue(sql, args...)
		reads = append(reads, func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
	}
	read := func(what, sql string, scan func(pgx.Rows) error, args ...any) {
		batch.Queue(sql, args...)
		reads = append(reads, func(br pgx.BatchResults) error {
			rows, err := br.Query()
			if err == nil {
				err = collect(rows, scan)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
	}
	if len(ticketIDs) > 0 {
		// unnest returns the sorted array in order, so the locks are taken in that order
		lock("lock ticket rate", `SELECT count(pg_advisory_xact_lock($1, (t % 2147483647)::int)) FROM unnest($2::bigint[]) AS t`,
			lockClassTicket, ticketIDs)
		read("read loop breakers", `SELECT ticket_id, tripped_at FROM mail_breakers WHERE ticket_id = ANY($1) AND tripped_at > $2`,
			func(r pgx.Rows) error {
				var id int64
				var at time.Time
				err := r.Scan(&id, &at)
				st.tripped[id] = at
				return err
			}, ticketIDs, now.Add(-o.cooldown))
		if o.limits.PerTicketPerHour > 0 {
			read("count ticket mail", `
				SELECT ticket_id, count(*) FROM outbox
				WHERE ticket_id = ANY($1) AND created_at > $2 AND auto_submitted <> '' AND status <> 'suppressed'
				GROUP BY ticket_id`,
				func(r pgx.Rows) error {
					var id int64
					var n int
					err := r.Scan(&id, &n)
					st.perTicket[id] = n
					return err
				}, ticketIDs, since)
		}
	}
	if len(rcpts) > 0 {
		lock("lock recipient rate", `SELECT count(pg_advisory_xact_lock($1, hashtext(e))) FROM unnest($2::text[]) AS e`,
			lockClassRecipient, rcpts)
		// Per recipient: the count on each of this batch's tickets, and one sum (ticket -1) for all
		// others, so a recipient with hundreds of tickets in the window is still a few rows.
		read("count recipient mail", `
			SELECT email, t, count(*) FROM (
				SELECT email, CASE WHEN ticket_id IS NULL THEN 0 WHEN ticket_id = ANY($3) THEN ticket_id ELSE -1 END AS t
				FROM outbox_rate WHERE email = ANY($1) AND created_at > $2) r
			GROUP BY email, t`,
			func(r pgx.Rows) error {
				var e string
				var id int64
				var n int
				if err := r.Scan(&e, &id, &n); err != nil {
					return err
				}
				if st.perRcpt[e] == nil {
					st.perRcpt[e] = map[int64]int{}
				}
				st.perRcpt[e][id] += n
				return nil
			}, rcpts, since, ticketIDs)
	}
	if len(reads) > 0 {
		br := tx.SendBatch(ctx, &batch)
		for _, r := range reads {
			if err := r(br); err != nil {
				br.Close()
				return nil, err
			}
		}
		if err := br.Close(); err != nil {
			return nil, fmt.Errorf("read mail rates: %w", err)
		}
	}
	if lim := o.limits.GlobalPerHour; lim > 0 {
		// A flood guard, not an exact quota: the count is refreshed from the database at most every
		// globalRefresh (plus this process's own mail since), so concurrent transactions and other
		// replicas may overshoot it briefly.
		n, err := o.global.count(ctx, tx, since, lim, now)
		if err != nil {
			return nil, err
		}
		st.global = n
	}
	return st, nil
}

// collect calls scan for every row and closes rows.
func collect(rows pgx.Rows, scan func(pgx.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// record writes what the policy decided for the freshly inserted outbox row id: a mail_suppressed
// event for a suppressed mail or dropped recipients, and the loop breaker trip with its event and,
// once per trip, the loop_detected notice to the queue's agents.
func (o *Outbox) record(ctx context.Context, tx pgx.Tx, id int64, m Mail, d decision, now time.Time) error {
	if m.TicketID == 0 {
		return nil
	}
	why := d.suppressed
	if why == "" && len(d.dropped) > 0 {
		why = "recipients dropped: " + strings.Join(d.dropped, "; ")
	}
	if why != "" {
		after := fmt.Sprintf("outbox %d (%s) to %s", id, m.Kind, strings.Join(emails(m.To), ", "))
		if err := insertEvent(ctx, tx, m.TicketID, now, "mail_suppressed", after, why); err != nil {
			return err
		}
	}
	if d.trip == "" {
		return nil
	}
	var ticket int64
	err := tx.QueryRow(ctx, `
		INSERT INTO mail_breakers (ticket_id, tripped_at, why) VALUES ($1, $2, $3)
		ON CONFLICT (ticket_id) DO UPDATE SET tripped_at = excluded.tripped_at, why = excluded.why
		WHERE mail_breakers.tripped_at <= $4
		RETURNING ticket_id`,
		m.TicketID, now, d.trip, now.Add(-o.cooldown)).Scan(&ticket)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // already open: the agents were told when it tripped
	}
	if err != nil {
		return fmt.Errorf("trip loop breaker: %w", err)
	}
	if err := insertEvent(ctx, tx, m.TicketID, now, "loop_detected", "automated mail stopped", d.trip); err != nil {
		return err
	}
	return o.enqueueNotice(ctx, tx, Notice{
		Kind:      KindLoopDetected,
		Key:       fmt.Sprintf("%s:%d:%d", KindLoopDetected, m.TicketID, now.UnixMicro()),
		TicketID:  m.TicketID,
		Why:       d.trip,
		At:        now,
		Addresses: d.tripAddrs,
		Count:     d.tripCount,
		Until:     now.Add(o.cooldown),
	})
}

// ResetBreaker closes the loop breaker of a ticket (an agent dealt with the loop), so automated mail
// about it flows again, and records a loop_reset event. It is a no-op when the breaker is not open.
func (o *Outbox) ResetBreaker(ctx context.Context, tx pgx.Tx, ticketID int64) error {
	tag, err := tx.Exec(ctx, `DELETE FROM mail_breakers WHERE ticket_id = $1`, ticketID)
	if err != nil {
		return fmt.Errorf("reset loop breaker: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	return insertEvent(ctx, tx, ticketID, o.now(), "loop_reset", "automated mail resumed", "")
}

// undeliverableContacts returns, for those of addrs marked undeliverable, the recorded reason.
func undeliverableContacts(ctx context.Context, tx pgx.Tx, addrs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(addrs) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT email, undeliverable_why FROM contacts WHERE email = ANY($1) AND undeliverable_at IS NOT NULL`, addrs)
	if err != nil {
		return nil, fmt.Errorf("read undeliverable contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var email, why string
		if err := rows.Scan(&email, &why); err != nil {
			return nil, fmt.Errorf("read undeliverable contacts: %w", err)
		}
		out[email] = why
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read undeliverable contacts: %w", err)
	}
	return out, nil
}

// baseAddress lower-cases addr and removes a sub-address ("support+t-x@d" becomes "support@d"), so
// every plus-variant of a desk address counts as the desk's own.
func baseAddress(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local := addr[:at]
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local = local[:plus]
	}
	return local + addr[at:]
}

// globalRefresh is how long a global mail count read from the database is reused.
const globalRefresh = 2 * time.Second

// globalCount caches the hourly count of automated mail so that the global limit costs one bounded
// query every globalRefresh instead of a scan of the last hour's outbox for every mail.
type globalCount struct {
	mu    sync.Mutex
	read  time.Time // when n was read; zero: never
	n     int       // count read from the database
	local int       // mail this process enqueued since
}

func (g *globalCount) count(ctx context.Context, tx pgx.Tx, since time.Time, limit int, now time.Time) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.read.IsZero() && now.Sub(g.read) < globalRefresh && now.After(g.read) {
		return g.n + g.local, nil
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM outbox
		WHERE created_at > $1 AND auto_submitted <> '' AND status <> 'suppressed' LIMIT $2) AS recent`,
		since, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("count global mail: %w", err)
	}
	g.read, g.n, g.local = now, n, 0
	return n, nil
}

func (g *globalCount) add(n int) {
	g.mu.Lock()
	g.local += n
	g.mu.Unlock()
}
