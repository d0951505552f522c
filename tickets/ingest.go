package tickets

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Savepoint runs fn inside a savepoint of this transaction. When fn fails, everything it wrote
// (rows, events and the mail its changes caused, which is written before the savepoint is released)
// is rolled back to the savepoint and the transaction stays usable, so one bad message in a batch
// does not abort the others. Mail-in batches many messages into one commit this way.
func (t *Tx) Savepoint(ctx context.Context, fn func(tx *Tx) error) error {
	sp, err := t.tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin savepoint: %w", err)
	}
	child := &Tx{s: t.s, tx: sp, now: t.now}
	err = fn(child)
	if err == nil {
		err = child.FlushMail(ctx)
	}
	if err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return fmt.Errorf("%w (and roll back savepoint: %v)", err, rerr)
		}
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	t.events = append(t.events, child.events...)
	return nil
}

// AppendMachineMessage records machine mail (a bounce, auto-reply, read receipt or looping message)
// on a ticket as an internal message with one "machine_message" event. It never changes the ticket's
// status and never tells the Mailer: deskd never answers a machine (DESIGN.md invariant 5).
func (t *Tx) AppendMachineMessage(ctx context.Context, ticketID int64, m Message, why string) (*Message, error) {
	tk, err := lockTicket(ctx, t.tx, ticketID)
	if err != nil {
		return nil, err
	}
	m.TicketID = ticketID
	m.Visibility = Internal
	if err := insertMessage(ctx, t.tx, &m, t.now); err != nil {
		return nil, err
	}
	if err := touch(ctx, t.tx, ticketID, t.now); err != nil {
		return nil, err
	}
	ev := Event{TicketID: tk.ID, At: t.now, Actor: Actor{Kind: ActorSystem, Name: "mailin"}, Kind: EventMachineMessage,
		After: m.Class, Why: why, MessageID: &m.ID}
	if err := t.insertEvent(ctx, &ev); err != nil {
		return nil, err
	}
	return &m, nil
}

// AddParticipants adds addresses with role to a ticket without an event of their own: it is part of
// the calling use case (mail-in adds the To/Cc people of a message as watchers with its message event).
// Addresses already on the ticket are left alone. It returns the addresses it added.
func (t *Tx) AddParticipants(ctx context.Context, ticketID int64, emails []string, role Role) ([]string, error) {
	var added []string
	for _, e := range emails {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if err := upsertContact(ctx, t.tx, e, "", ""); err != nil {
			return nil, err
		}
		tag, err := t.tx.Exec(ctx, `INSERT INTO participants (ticket_id, email, role, added_at)
			SELECT $1, $2::text, $3::text, $4 WHERE NOT EXISTS (SELECT 1 FROM participants WHERE ticket_id = $1 AND email = $2::text)
			ON CONFLICT DO NOTHING`, ticketID, e, role, t.now)
		if err != nil {
			return nil, fmt.Errorf("add %s %s: %w", role, e, err)
		}
		if tag.RowsAffected() > 0 {
			added = append(added, e)
		}
	}
	return added, nil
}

// MarkUndeliverable flags an address as permanently failing (a hard bounce or a 5xx at SMTP time) so
// that no more mail is sent to it, and records an "address_undeliverable" event on the ticket when
// ticketID is non-zero.
func (t *Tx) MarkUndeliverable(ctx context.Context, ticketID int64, email, why string, actor Actor) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return fmt.Errorf("mark undeliverable: %w: empty address", ErrInvalid)
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO contacts (email, undeliverable_at, undeliverable_why) VALUES ($1, $2, $3)
		ON CONFLICT (email) DO UPDATE SET undeliverable_at = excluded.undeliverable_at, undeliverable_why = excluded.undeliverable_why`,
		email, t.now, why); err != nil {
		return fmt.Errorf("mark %s undeliverable: %w", email, err)
	}
	if ticketID == 0 {
		return nil
	}
	ev := Event{TicketID: ticketID, At: t.now, Actor: actor, Kind: EventAddressUndeliver, After: email, Why: why}
	return t.insertEvent(ctx, &ev)
}

// Undeliverable reports whether an address is flagged as permanently failing, and why.
func (s *Store) Undeliverable(ctx context.Context, email string) (bool, string, error) {
	var why *string
	err := s.db.QueryRow(ctx, `SELECT CASE WHEN undeliverable_at IS NULL THEN NULL ELSE undeliverable_why END
		FROM contacts WHERE email = $1`, strings.ToLower(email)).Scan(&why)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, "", nil
		}
		return false, "", fmt.Errorf("look up contact %s: %w", email, err)
	}
	if why == nil {
		return false, "", nil
	}
	return true, *why, nil
}
