package mailout

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

// decide applies the loop and flood policy (DESIGN.md invariant 5) to m inside tx:
//
//   - never to the desk's own addresses, to contacts marked undeliverable, or when the caller
//     flagged the recipients as machines (m.Machine);
//   - automated mail about a ticket whose loop breaker is open is suppressed;
//   - automated mail beyond the per-ticket, per-recipient or global hourly limit is suppressed (a
//     recipient over its limit is dropped from the mail). Human-authored mail is never rate limited.
//
// A per-ticket limit hit, or a per-recipient hit where that recipient's automated mail about this
// ticket alone reached the limit within the hour, is a loop: decide asks for the breaker to trip.
func (o *Outbox) decide(ctx context.Context, tx pgx.Tx, m *Mail, now time.Time) (decision, error) {
	var d decision
	keep := make([]Address, 0, len(m.To))
	for _, a := range m.To {
		switch {
		case o.own[baseAddress(a.Email)]:
			d.dropped = append(d.dropped, a.Email+": the desk's own address")
		case m.Machine != "":
			d.dropped = append(d.dropped, a.Email+": recipient is a machine ("+m.Machine+")")
		default:
			keep = append(keep, a)
		}
	}
	undeliverable, err := undeliverableContacts(ctx, tx, emails(keep))
	if err != nil {
		return d, err
	}
	d.to = keep[:0]
	for _, a := range keep {
		if why, ok := undeliverable[a.Email]; ok {
			d.dropped = append(d.dropped, a.Email+": undeliverable ("+why+")")
			continue
		}
		d.to = append(d.to, a)
	}
	if len(d.to) > 0 && m.automated() {
		if err := o.limit(ctx, tx, m, now, &d); err != nil {
			return d, err
		}
	}
	if len(d.to) == 0 && d.suppressed == "" {
		d.suppressed = "no deliverable recipient: " + strings.Join(d.dropped, "; ")
	}
	return d, nil
}

// limit applies the breaker and the rate limits to automated mail.
func (o *Outbox) limit(ctx context.Context, tx pgx.Tx, m *Mail, now time.Time, d *decision) error {
	since := now.Add(-rateWindow)
	perTicket := m.TicketID > 0 && !m.noticeKind() && !m.NewTicket
	if perTicket {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)`, lockClassTicket, m.TicketID); err != nil {
			return fmt.Errorf("lock ticket rate: %w", err)
		}
		var trippedAt time.Time
		err := tx.QueryRow(ctx, `SELECT tripped_at FROM mail_breakers WHERE ticket_id = $1 AND tripped_at > $2`,
			m.TicketID, now.Add(-o.cooldown)).Scan(&trippedAt)
		switch {
		case err == nil:
			d.suppressed = fmt.Sprintf("loop breaker open since %s", trippedAt.UTC().Format(time.RFC3339))
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read loop breaker: %w", err)
		}
		if lim := o.limits.PerTicketPerHour; lim > 0 {
			var n int
			if err := tx.QueryRow(ctx, `
				SELECT count(*) FROM outbox
				WHERE ticket_id = $1 AND created_at > $2 AND auto_submitted <> '' AND status <> 'suppressed'`,
				m.TicketID, since).Scan(&n); err != nil {
				return fmt.Errorf("count ticket mail: %w", err)
			}
			if n >= lim {
				d.suppressed = fmt.Sprintf("ticket rate limit: %d automated mails in the last hour (limit %d)", n, lim)
				d.trip, d.tripCount, d.tripAddrs = d.suppressed, n, emails(d.to)
				return nil
			}
		}
	}
	if lim := o.limits.PerRecipientPerHour; lim > 0 && !m.Internal {
		// Sorted, so that two transactions locking the same recipients cannot deadlock.
		sort.Slice(d.to, func(i, j int) bool { return d.to[i].Email < d.to[j].Email })
		keep := d.to[:0]
		for _, a := range d.to {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClassRecipient, a.Email); err != nil {
				return fmt.Errorf("lock recipient rate: %w", err)
			}
			var n, onTicket int
			if err := tx.QueryRow(ctx, `
				SELECT count(*), count(*) FILTER (WHERE ticket_id = $3) FROM outbox_rate
				WHERE email = $1 AND created_at > $2`,
				a.Email, since, m.TicketID).Scan(&n, &onTicket); err != nil {
				return fmt.Errorf("count recipient mail: %w", err)
			}
			if n < lim {
				keep = append(keep, a)
				continue
			}
			why := fmt.Sprintf("recipient rate limit: %d automated mails to %s in the last hour (limit %d)", n, a.Email, lim)
			d.dropped = append(d.dropped, a.Email+": "+why)
			if perTicket && onTicket >= lim && d.trip == "" {
				d.trip, d.tripCount, d.tripAddrs = why, onTicket, []string{a.Email}
			}
		}
		d.to = keep
		if len(d.to) == 0 {
			d.suppressed = strings.Join(d.dropped, "; ")
			return nil
		}
	}
	if lim := o.limits.GlobalPerHour; lim > 0 {
		// A flood guard, not an exact quota: the count is refreshed from the database at most every
		// globalRefresh (plus this process's own mail since), so concurrent transactions and other
		// replicas may overshoot it briefly.
		n, err := o.global.count(ctx, tx, since, lim, now)
		if err != nil {
			return err
		}
		if n >= lim {
			d.suppressed = fmt.Sprintf("global rate limit: %d automated mails in the last hour (limit %d)", n, lim)
		}
	}
	return nil
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
