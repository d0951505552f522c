package tickets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is what both a pool and a transaction offer; store functions run on either.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store reads tickets, messages and events. Writes go through Service use cases.
type Store struct {
	db DB
}

// NewStore returns a Store reading through db (a pool, or a transaction to read its own writes).
func NewStore(db DB) *Store { return &Store{db: db} }

// NewPoolStore is NewStore for a pool.
func NewPoolStore(p *pgxpool.Pool) *Store { return &Store{db: p} }

const ticketColumns = `id, key, prefix, number, kind, status, priority, queue, requester, coalesce(assignee, ''),
	subject, language, created_at, updated_at, first_response_at, resolved_at, closed_at`

func scanTicket(row pgx.Row, extra ...any) (*Ticket, error) {
	var t Ticket
	err := row.Scan(append([]any{&t.ID, &t.Key, &t.Prefix, &t.Number, &t.Kind, &t.Status, &t.Priority, &t.Queue, &t.Requester,
		&t.Assignee, &t.Subject, &t.Language, &t.CreatedAt, &t.UpdatedAt, &t.FirstResponseAt, &t.ResolvedAt, &t.ClosedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Ticket returns the ticket with id, or ErrNotFound.
func (s *Store) Ticket(ctx context.Context, id int64) (*Ticket, error) {
	t, err := scanTicket(s.db.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("load ticket %d: %w", id, err)
	}
	return t, nil
}

// TicketAndOthers returns a ticket with the addresses of its participants other than the requester
// (watchers and agents), in one round trip: what the threader checks a sender against. With lock
// (inside a transaction) the ticket is locked FOR UPDATE, so a caller about to change it reads it
// once (Tx.AppendMessageLocked).
func (s *Store) TicketAndOthers(ctx context.Context, id int64, lock bool) (*Ticket, []string, error) {
	var others []string
	t, err := scanTicket(s.db.QueryRow(ctx, `SELECT `+ticketColumns+`, `+othersColumn+`
		FROM tickets WHERE id = $1`+forUpdate(lock), id), &others)
	if err != nil {
		return nil, nil, fmt.Errorf("load ticket %d: %w", id, err)
	}
	return t, others, nil
}

// othersColumn is the participants other than the requester, for TicketAndOthers.
const othersColumn = `coalesce((SELECT array_agg(p.email ORDER BY p.role, p.email) FROM participants p
	WHERE p.ticket_id = tickets.id AND p.role <> 'requester'), '{}')`

// messageIDHit finds the stored message with the first of the canonical Message-IDs $1 that any
// has: its ticket_id and message_id (names no column of tickets has, for joins).
const messageIDHit = `SELECT m.ticket_id, m.message_id
	FROM unnest($1::text[]) WITH ORDINALITY AS want(id, ord)
	JOIN messages m ON lower(m.message_id) = want.id
	ORDER BY want.ord, m.id LIMIT 1`

// TicketAndOthersByMessageID is TicketByMessageID returning the ticket as TicketAndOthers does, in
// one round trip when a stored message matches (mail found only in the outbox takes two more). With
// lock the ticket is locked FOR UPDATE, as by TicketAndOthers.
func (s *Store) TicketAndOthersByMessageID(ctx context.Context, ids []string, lock bool) (*Ticket, []string, string, error) {
	if len(ids) == 0 {
		return nil, nil, "", fmt.Errorf("find ticket by message-id: %w", ErrNotFound)
	}
	var (
		others  []string
		matched string
	)
	t, err := scanTicket(s.db.QueryRow(ctx, `WITH hit AS (`+messageIDHit+`)
		SELECT `+ticketColumns+`, `+othersColumn+`, hit.message_id
		FROM hit JOIN tickets ON tickets.id = hit.ticket_id`+forUpdate(lock, "tickets"), ids), &others, &matched)
	if errors.Is(err, ErrNotFound) {
		// outbound mail that is still in (or was only in) the outbox also threads
		var id int64
		if id, matched, err = s.ticketIDInOutbox(ctx, ids); err != nil {
			return nil, nil, "", err
		}
		t, others, err = s.TicketAndOthers(ctx, id, lock)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("find ticket by message-id: %w", err)
	}
	return t, others, matched, nil
}

// forUpdate is the locking clause of a read that locks (of the tables named, or of all).
func forUpdate(lock bool, of ...string) string {
	switch {
	case !lock:
		return ""
	case len(of) == 0:
		return " FOR UPDATE"
	}
	return " FOR UPDATE OF " + strings.Join(of, ", ")
}

// TicketByKey returns the ticket with key (case-insensitive, e.g. "sd-1042"), or ErrNotFound.
func (s *Store) TicketByKey(ctx context.Context, key string) (*Ticket, error) {
	t, err := scanTicket(s.db.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE key = $1`, strings.ToUpper(key)))
	if err != nil {
		return nil, fmt.Errorf("load ticket %s: %w", key, err)
	}
	return t, nil
}

// lockTicket loads a ticket FOR UPDATE inside a transaction.
func lockTicket(ctx context.Context, tx DB, id int64) (*Ticket, error) {
	t, err := scanTicket(tx.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, fmt.Errorf("lock ticket %d: %w", id, err)
	}
	return t, nil
}

// Filter selects tickets for List; zero fields match everything.
type Filter struct {
	Status   []Status
	Queue    string
	Assignee string // agent name; "-" selects unassigned tickets
	Kind     Kind
	Limit    int // default 100
}

// List returns tickets matching f, newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]*Ticket, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if len(f.Status) > 0 {
		ss := make([]string, len(f.Status))
		for i, st := range f.Status {
			ss[i] = string(st)
		}
		where = append(where, "status = ANY("+arg(ss)+")")
	}
	if f.Queue != "" {
		where = append(where, "queue = "+arg(f.Queue))
	}
	switch f.Assignee {
	case "":
	case "-":
		where = append(where, "assignee IS NULL")
	default:
		where = append(where, "assignee = "+arg(f.Assignee))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(string(f.Kind)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + ticketColumns + ` FROM tickets`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ` + arg(limit)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tickets: %w", err)
	}
	defer rows.Close()
	var out []*Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("list tickets: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tickets: %w", err)
	}
	return out, nil
}

// messageColumns are what scanMessages reads; the HTML body sits between the text and the rest, so
// conversationSQL can leave it out.
const (
	messageColumnsText = `id, ticket_id, raw_mail_id, direction, visibility, class, author_kind, author, message_id,
	in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, subject, body_text, coalesce(visible_text, body_text), `
	messageColumnsRest = `thread_reason, created_at`
	messageColumns     = messageColumnsText + `body_html, ` + messageColumnsRest
)

// Messages returns a ticket's messages, oldest first, with attachment metadata (not data).
func (s *Store) Messages(ctx context.Context, ticketID int64) ([]*Message, error) {
	rows, err := s.db.Query(ctx, messagesSQL, ticketID)
	if err != nil {
		return nil, fmt.Errorf("list messages of ticket %d: %w", ticketID, err)
	}
	out, byID, ids, err := scanMessages(ticketID, rows)
	if err != nil {
		return nil, err
	}
	return out, s.attach(ctx, ticketID, byID, ids)
}

// Conversation returns a ticket's messages, oldest first, and its participants, read in one round
// trip: what a reply's notification quotes and addresses. The messages come without their HTML
// bodies and attachments (Messages has those), which no notification quotes.
func (s *Store) Conversation(ctx context.Context, ticketID int64) ([]*Message, []Participant, error) {
	batch := &pgx.Batch{}
	batch.Queue(conversationSQL, ticketID)
	batch.Queue(participantsSQL, ticketID)
	br := s.db.SendBatch(ctx, batch)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("list messages of ticket %d: %w", ticketID, err)
	}
	out, _, _, err := scanMessages(ticketID, rows)
	if err != nil {
		return nil, nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("list participants of ticket %d: %w", ticketID, err)
	}
	parts, err := scanParticipants(ticketID, rows)
	if err != nil {
		return nil, nil, err
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("list conversation of ticket %d: %w", ticketID, err)
	}
	return out, parts, nil
}

const messagesSQL = `SELECT ` + messageColumns + `, attachment_count FROM messages WHERE ticket_id = $1 ORDER BY id`

// conversationSQL is messagesSQL without the HTML bodies (not read out of line) and attachments
// (an attachment count of 0).
const conversationSQL = `SELECT ` + messageColumnsText + `'', ` + messageColumnsRest + `, 0 FROM messages WHERE ticket_id = $1 ORDER BY id`

// scanMessages reads (and closes) the rows of messagesSQL: the messages, by id, and the ids of those
// with attachments.
func scanMessages(ticketID int64, rows pgx.Rows) ([]*Message, map[int64]*Message, []int64, error) {
	defer rows.Close()
	var (
		out  []*Message
		byID = map[int64]*Message{}
		ids  []int64 // of the messages with attachments
	)
	for rows.Next() {
		var (
			m Message
			n int
		)
		if err := rows.Scan(&m.ID, &m.TicketID, &m.RawMailID, &m.Direction, &m.Visibility, &m.Class, &m.AuthorKind,
			&m.Author, &m.MessageID, &m.InReplyTo, &m.References, &m.From, &m.FromName, &m.To, &m.Cc, &m.Subject,
			&m.Text, &m.VisibleText, &m.HTML, &m.ThreadReason, &m.CreatedAt, &n); err != nil {
			return nil, nil, nil, fmt.Errorf("list messages of ticket %d: %w", ticketID, err)
		}
		out = append(out, &m)
		byID[m.ID] = &m
		if n > 0 {
			ids = append(ids, m.ID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("list messages of ticket %d: %w", ticketID, err)
	}
	return out, byID, ids, nil
}

// attach reads the attachment metadata of the messages ids (of byID).
func (s *Store) attach(ctx context.Context, ticketID int64, byID map[int64]*Message, ids []int64) error {
	if len(ids) == 0 {
		return nil // no attachments to look up (most tickets)
	}
	// by the ids of the messages that have attachments: joined to messages on ticket_id, the planner
	// hashed the ticket's messages against a sequential scan of every attachment of the desk (0.6 ms
	// at 3,000), a cost growing with the desk's history on every reply's notification
	arows, err := s.db.Query(ctx, `SELECT id, message_id, filename, content_type, content_id, inline, size, sha256
		FROM attachments WHERE message_id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return fmt.Errorf("list attachments of ticket %d: %w", ticketID, err)
	}
	defer arows.Close()
	for arows.Next() {
		var (
			a   Attachment
			mid int64
		)
		if err := arows.Scan(&a.ID, &mid, &a.Filename, &a.ContentType, &a.ContentID, &a.Inline, &a.Size, &a.SHA256); err != nil {
			return fmt.Errorf("list attachments of ticket %d: %w", ticketID, err)
		}
		if m := byID[mid]; m != nil {
			m.Attachments = append(m.Attachments, a)
		}
	}
	return arows.Err()
}

// AttachmentData returns the stored content of an attachment by its SHA-256: the blob's data, or,
// for an attachment of received mail (migration 0011), its part of the raw mail, decoded by the
// function registered with RegisterRawAttachments and checked against the SHA-256.
func (s *Store) AttachmentData(ctx context.Context, sha []byte) ([]byte, error) {
	var (
		data []byte
		raw  []byte
		part *int32
	)
	err := s.db.QueryRow(ctx, `SELECT b.data, r.raw, b.raw_part FROM blobs b LEFT JOIN raw_mails r ON r.id = b.raw_mail_id
		WHERE b.sha256 = $1`, sha).Scan(&data, &raw, &part)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("load blob: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load blob: %w", err)
	}
	if part == nil {
		return data, nil
	}
	decode := rawAttachments.Load()
	if decode == nil {
		return nil, errors.New("load blob: the content is in a raw mail and no decoder is registered (tickets.RegisterRawAttachments)")
	}
	if raw == nil {
		return nil, errors.New("load blob: its raw mail holds no bytes")
	}
	parts, err := (*decode)(raw)
	if err != nil {
		return nil, fmt.Errorf("load blob from raw mail: %w", err)
	}
	if data = pickAttachment(parts, int(*part), sha); data == nil {
		return nil, fmt.Errorf("load blob from raw mail: none of its %d attachments has this content", len(parts))
	}
	return data, nil
}

// pickAttachment returns the part-th (1-based) of a raw mail's attachment contents when it has the
// SHA-256 sha, else the first that has it (a parser version that counts otherwise), else nil.
func pickAttachment(parts [][]byte, part int, sha []byte) []byte {
	has := func(b []byte) bool { sum := sha256.Sum256(b); return bytes.Equal(sum[:], sha) }
	if part >= 1 && part <= len(parts) && has(parts[part-1]) {
		return parts[part-1]
	}
	for i, b := range parts {
		if i != part-1 && has(b) {
			return b
		}
	}
	return nil
}

// RawAttachmentsFunc returns the contents of a raw mail's attachments, in the order parse finds them.
type RawAttachmentsFunc func(raw []byte) ([][]byte, error)

var rawAttachments atomic.Pointer[RawAttachmentsFunc]

// RegisterRawAttachments sets how AttachmentData decodes attachments kept in raw mail. The package
// that parses mail (mailin) registers it when it is linked in, as it is wherever raw mail is ingested.
func RegisterRawAttachments(f RawAttachmentsFunc) { rawAttachments.Store(&f) }

// Events returns a ticket's audit log, oldest first.
func (s *Store) Events(ctx context.Context, ticketID int64) ([]*Event, error) {
	rows, err := s.db.Query(ctx, `SELECT id, ticket_id, at, actor_kind, actor, kind, before, after, why, message_id
		FROM events WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("list events of ticket %d: %w", ticketID, err)
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.TicketID, &e.At, &e.Actor.Kind, &e.Actor.Name, &e.Kind, &e.Before, &e.After,
			&e.Why, &e.MessageID); err != nil {
			return nil, fmt.Errorf("list events of ticket %d: %w", ticketID, err)
		}
		out = append(out, &e)
	}
	return out, rows.Err()
}

// Participant is an address with a role on a ticket.
type Participant struct {
	Email string
	Role  Role
}

// Participants returns a ticket's participants ordered by role then address.
func (s *Store) Participants(ctx context.Context, ticketID int64) ([]Participant, error) {
	rows, err := s.db.Query(ctx, participantsSQL, ticketID)
	if err != nil {
		return nil, fmt.Errorf("list participants of ticket %d: %w", ticketID, err)
	}
	return scanParticipants(ticketID, rows)
}

const participantsSQL = `SELECT email, role FROM participants WHERE ticket_id = $1 ORDER BY role, email`

// scanParticipants reads (and closes) the rows of participantsSQL.
func scanParticipants(ticketID int64, rows pgx.Rows) ([]Participant, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Participant, error) {
		var p Participant
		return p, r.Scan(&p.Email, &p.Role)
	})
	if err != nil {
		return nil, fmt.Errorf("list participants of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// Link is a relation from one ticket to another.
type Link struct {
	From, To int64
	Kind     LinkKind
}

// Links returns the links touching a ticket in either direction.
func (s *Store) Links(ctx context.Context, ticketID int64) ([]Link, error) {
	rows, err := s.db.Query(ctx, `SELECT from_ticket, to_ticket, kind FROM ticket_links
		WHERE from_ticket = $1 OR to_ticket = $1 ORDER BY created_at`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("list links of ticket %d: %w", ticketID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Link, error) {
		var l Link
		return l, r.Scan(&l.From, &l.To, &l.Kind)
	})
	if err != nil {
		return nil, fmt.Errorf("list links of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// TicketByMessageID returns the ticket holding a message with one of the canonical (lower-case)
// Message-IDs, trying them in the order given, and which stored ID matched; ErrNotFound when none
// does. Stored IDs keep their case and are compared lower-cased.
func (s *Store) TicketByMessageID(ctx context.Context, ids []string) (*Ticket, string, error) {
	ticketID, matched, err := s.TicketIDByMessageID(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	t, err := s.Ticket(ctx, ticketID)
	if err != nil {
		return nil, "", err
	}
	return t, matched, nil
}

// TicketIDByMessageID is TicketByMessageID without loading the ticket: its id and the id that matched.
func (s *Store) TicketIDByMessageID(ctx context.Context, ids []string) (int64, string, error) {
	if len(ids) == 0 {
		return 0, "", fmt.Errorf("find ticket by message-id: %w", ErrNotFound)
	}
	var (
		ticketID int64
		matched  string
	)
	err := s.db.QueryRow(ctx, messageIDHit, ids).Scan(&ticketID, &matched)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.ticketIDInOutbox(ctx, ids)
	}
	if err != nil {
		return 0, "", fmt.Errorf("find ticket by message-id: %w", err)
	}
	return ticketID, matched, nil
}

// ticketIDInOutbox finds the ticket of outbound mail by Message-ID in the outbox (mail still queued,
// or sent without a message row), for TicketIDByMessageID.
func (s *Store) ticketIDInOutbox(ctx context.Context, ids []string) (int64, string, error) {
	var (
		ticketID int64
		matched  string
	)
	err := s.db.QueryRow(ctx, `SELECT o.ticket_id, o.message_id
		FROM unnest($1::text[]) WITH ORDINALITY AS want(id, ord)
		JOIN outbox o ON o.message_id = want.id AND o.ticket_id IS NOT NULL
		ORDER BY want.ord LIMIT 1`, ids).Scan(&ticketID, &matched)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", fmt.Errorf("find ticket by message-id: %w", ErrNotFound)
	}
	if err != nil {
		return 0, "", fmt.Errorf("find ticket by message-id: %w", err)
	}
	return ticketID, matched, nil
}
