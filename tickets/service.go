package tickets

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/mailout"
)

// Mailer is told about every ticket change inside the use case's transaction, so that the mail the
// change causes (acknowledgements, notifications) is written to the outbox in the same commit.
// TicketChanged prepares that mail when the change happens, reading what it needs through tx, which
// sees the change; the Tx gathers it and hands all of a transaction's mail to WriteMail once, just
// before the commit, so a transaction of many changes writes its mail with a few statements. An error
// from either aborts the whole use case.
type Mailer interface {
	TicketChanged(ctx context.Context, tx pgx.Tx, c Change) ([]mailout.Mail, error)
	WriteMail(ctx context.Context, tx pgx.Tx, mail []mailout.Mail) error
}

// Change describes one use case's effect, handed to the Mailer.
type Change struct {
	Ticket  *Ticket  // state after the change
	Before  *Ticket  // state before the change; nil for a created ticket
	Event   Event    // the event the use case wrote
	Message *Message // the message the change added, if any
	// Participants, set by Create only, are all of a new ticket's participants (the requester
	// first), so the Mailer needs not read back what the transaction just wrote.
	Participants []Participant
}

// Options configure a Service. Zero values are valid.
type Options struct {
	Mailer Mailer           // nil: no mail is caused
	Now    func() time.Time // injected clock; time.Now when nil
	// Committed is called after a transaction commits, once per event it wrote (metrics, logs).
	Committed func(Event)
}

// Service runs the ticket use cases. Each use case runs in one transaction, writes exactly one
// event and lets the Mailer enqueue the mail it causes in that transaction.
type Service struct {
	pool *pgxpool.Pool
	opts Options
}

// NewService returns a Service over pool.
func NewService(pool *pgxpool.Pool, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{pool: pool, opts: opts}
}

// DB returns the service's pool for reads (and lock-free writes such as raw mail storage) outside a use case.
func (s *Service) DB() DB { return s.pool }

// Store returns a Store reading through the service's pool.
func (s *Service) Store() *Store { return NewPoolStore(s.pool) }

// Do runs fn in one transaction: every use case called on the Tx commits together or not at all.
func (s *Service) Do(ctx context.Context, fn func(tx *Tx) error) error {
	pgtx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer pgtx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	tx := &Tx{s: s, tx: pgtx, now: s.opts.Now().UTC()}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.FlushMail(ctx); err != nil {
		return err
	}
	if err := pgtx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if s.opts.Committed != nil {
		for _, e := range tx.events {
			s.opts.Committed(e)
		}
	}
	return nil
}

// Run is Do for a use case with a result.
func Run[T any](ctx context.Context, s *Service, fn func(tx *Tx) (T, error)) (T, error) {
	var out T
	err := s.Do(ctx, func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

// Tx is one open transaction of the Service; its methods are the use cases.
type Tx struct {
	s      *Service
	tx     pgx.Tx
	now    time.Time
	events []Event
	mail   []mailout.Mail // prepared by the Mailer, written by FlushMail
}

// FlushMail writes the mail the transaction's changes caused so far (Mailer.WriteMail). The Service
// calls it before every commit; a caller that wants a failure to write mail told apart from the
// failure of the commit calls it earlier.
func (t *Tx) FlushMail(ctx context.Context) error {
	if len(t.mail) == 0 {
		return nil
	}
	if err := t.s.opts.Mailer.WriteMail(ctx, t.tx, t.mail); err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	t.mail = t.mail[:0]
	return nil
}

// PG returns the underlying transaction, so other stores (raw mail, outbox) join the same commit.
func (t *Tx) PG() pgx.Tx { return t.tx }

// Store returns a Store that reads through this transaction (it sees uncommitted writes).
func (t *Tx) Store() *Store { return NewStore(t.tx) }

// Now is the transaction's timestamp (the service clock at Begin, UTC).
func (t *Tx) Now() time.Time { return t.now }

// NewTicket is the input of Create.
type NewTicket struct {
	Prefix        string // key prefix of the queue, e.g. "SD"
	Queue         string
	Kind          Kind
	Priority      Priority
	Requester     string // address; stored lower-case
	RequesterName string
	Language      string
	Subject       string
	Message       *Message // the first message; nil for a ticket opened without mail
	Watchers      []string // addresses added as watchers
	FollowUpOf    int64    // a closed ticket this one follows up (linked follow_up), 0 for none
	Actor         Actor
	Why           string
}

// Create opens a ticket from a message: ticket, requester contact and participant, watchers, the
// message and its attachments, a follow-up link, and one "created" event.
func (t *Tx) Create(ctx context.Context, in NewTicket) (*Ticket, *Message, error) {
	out, err := t.CreateMany(ctx, []NewTicket{in})
	if err != nil {
		return nil, nil, err
	}
	return out[0].Ticket, out[0].Message, out[0].Err
}

// Created is one ticket opened by CreateMany: the ticket and its first message, or Err.
type Created struct {
	Ticket  *Ticket
	Message *Message // nil for a ticket opened without mail
	// Err is ErrDuplicateMail when the first message's raw mail is already a message (the ticket is
	// created without it, as Create always did); otherwise nil.
	Err error
}

// newTicketRows are CreateMany's inputs as one array per column, for unnest.
type newTicketRows struct {
	prefix, kind, priority, queue, requester, subject, language, actorKind, actor, why []string
	// contacts, each address once (the last name and language given win)
	cEmail, cName, cLang []string
	// participants: the ticket's position (1-based), address, role
	pOrd          []int64
	pEmail, pRole []string
	// first messages: one row per ticket, has false for a ticket without mail; lists joined by "\n"
	mHas                                                         []bool
	mRaw                                                         []*int64
	mDir, mVis, mClass, mAuthorKind, mAuthor, mMsgID, mInReplyTo []string
	mRefs, mFrom, mFromName, mTo, mCc, mSubject, mText           []string
	mVisible                                                     []*string
	mHTML, mReason                                               []string
	mAt                                                          []time.Time
	mAttachments                                                 []int32
}

// joinList joins a list of addresses or Message-IDs for string_to_array(x, E'\n'); none may
// contain a line break (parsed addresses and cleaned IDs never do).
func joinList(l []string) (string, error) {
	for _, v := range l {
		if strings.Contains(v, "\n") {
			return "", fmt.Errorf("create ticket: %w: line break in %q", ErrInvalid, v)
		}
	}
	return strings.Join(l, "\n"), nil
}

// CreateMany opens several tickets as Create does, with one statement for all of them: contacts,
// tickets, participants, first messages and "created" events (data-modifying CTEs over unnest;
// foreign keys are checked at its end), then one pipelined batch for all their attachments. The
// ingest creates a transaction's new tickets this way: a statement per ticket cost PostgreSQL the
// start-up of six table writes each time, and both processes a round trip. Ticket numbers follow
// the order of ins; the result has one entry per input, in that order.
func (t *Tx) CreateMany(ctx context.Context, ins []NewTicket) ([]Created, error) {
	n := len(ins)
	if n == 0 {
		return nil, nil
	}
	var r newTicketRows
	contact := map[string]int{}
	addContact := func(email, name, lang string) {
		i, ok := contact[email]
		if !ok {
			contact[email] = len(r.cEmail)
			r.cEmail, r.cName, r.cLang = append(r.cEmail, email), append(r.cName, name), append(r.cLang, lang)
			return
		}
		if name != "" {
			r.cName[i] = name
		}
		if lang != "" {
			r.cLang[i] = lang
		}
	}
	out := make([]Created, n)
	msgs := make([]Message, n)
	parts := make([][]Participant, n)
	var err error
	for i, in := range ins {
		if in.Prefix == "" || in.Queue == "" || in.Requester == "" {
			return nil, fmt.Errorf("create ticket: %w: prefix, queue and requester are required", ErrInvalid)
		}
		if _, err := ParseKind(string(in.Kind)); err != nil {
			return nil, fmt.Errorf("create ticket: %w", err)
		}
		if _, err := ParsePriority(string(in.Priority)); err != nil {
			return nil, fmt.Errorf("create ticket: %w", err)
		}
		requester := strings.ToLower(strings.TrimSpace(in.Requester))
		subject := strings.TrimSpace(noNUL(in.Subject))
		in.RequesterName = noNUL(in.RequesterName)
		if subject == "" {
			subject = "(no subject)"
		}
		r.prefix, r.kind, r.priority = append(r.prefix, in.Prefix), append(r.kind, string(in.Kind)), append(r.priority, string(in.Priority))
		r.queue, r.requester, r.subject = append(r.queue, in.Queue), append(r.requester, requester), append(r.subject, subject)
		r.language, r.actorKind = append(r.language, in.Language), append(r.actorKind, string(in.Actor.Kind))
		r.actor, r.why = append(r.actor, in.Actor.Name), append(r.why, in.Why)
		addContact(requester, in.RequesterName, in.Language)
		ord := int64(i + 1)
		r.pOrd, r.pEmail, r.pRole = append(r.pOrd, ord), append(r.pEmail, requester), append(r.pRole, string(RoleRequester))
		parts[i] = []Participant{{Email: requester, Role: RoleRequester}}
		seen := map[string]bool{requester: true}
		for _, w := range in.Watchers {
			w = strings.ToLower(strings.TrimSpace(w))
			if w == "" || seen[w] {
				continue
			}
			seen[w] = true
			addContact(w, "", "")
			r.pOrd, r.pEmail, r.pRole = append(r.pOrd, ord), append(r.pEmail, w), append(r.pRole, string(RoleWatcher))
			parts[i] = append(parts[i], Participant{Email: w, Role: RoleWatcher})
		}
		m := &msgs[i]
		if in.Message != nil {
			*m = *in.Message
			setMessageDefaults(m, t.now)
		}
		var lists [3]string // references, To, Cc
		for j, l := range [][]string{m.References, m.To, m.Cc} {
			if lists[j], err = joinList(l); err != nil {
				return nil, err
			}
		}
		refs, to, cc := lists[0], lists[1], lists[2]
		r.mHas, r.mRaw = append(r.mHas, in.Message != nil), append(r.mRaw, m.RawMailID)
		r.mDir, r.mVis, r.mClass = append(r.mDir, string(m.Direction)), append(r.mVis, string(m.Visibility)), append(r.mClass, m.Class)
		r.mAuthorKind, r.mAuthor = append(r.mAuthorKind, string(m.AuthorKind)), append(r.mAuthor, m.Author)
		r.mMsgID, r.mInReplyTo, r.mRefs = append(r.mMsgID, m.MessageID), append(r.mInReplyTo, m.InReplyTo), append(r.mRefs, refs)
		r.mFrom, r.mFromName, r.mTo, r.mCc = append(r.mFrom, m.From), append(r.mFromName, m.FromName), append(r.mTo, to), append(r.mCc, cc)
		r.mSubject, r.mText, r.mVisible = append(r.mSubject, m.Subject), append(r.mText, m.Text), append(r.mVisible, storedVisible(m))
		r.mHTML, r.mReason, r.mAt = append(r.mHTML, m.HTML), append(r.mReason, m.ThreadReason), append(r.mAt, m.CreatedAt)
		r.mAttachments = append(r.mAttachments, int32(len(m.Attachments)))
	}
	rows, err := t.tx.Query(ctx, createTicketsSQL,
		r.prefix, r.kind, r.priority, r.queue, r.requester, r.subject, r.language, r.actorKind, r.actor, r.why,
		r.cEmail, r.cName, r.cLang, t.now, r.pOrd, r.pEmail, r.pRole,
		r.mHas, r.mRaw, r.mDir, r.mVis, r.mClass, r.mAuthorKind, r.mAuthor, r.mMsgID, r.mInReplyTo, r.mRefs,
		r.mFrom, r.mFromName, r.mTo, r.mCc, r.mSubject, r.mText, r.mVisible, r.mHTML, r.mReason, r.mAt, r.mAttachments)
	if err != nil {
		return nil, fmt.Errorf("insert tickets: %w", err)
	}
	evIDs := make([]int64, n)
	got := 0
	for rows.Next() {
		var (
			ord         int64
			msgID, evID *int64
		)
		tk, err := scanTicket(rows, &ord, &msgID, &evID)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("insert tickets: %w", err)
		}
		i := int(ord - 1)
		if i < 0 || i >= n || out[i].Ticket != nil || evID == nil {
			rows.Close()
			return nil, fmt.Errorf("insert tickets: unexpected row for ticket %d of %d", ord, n)
		}
		out[i].Ticket, evIDs[i] = tk, *evID
		if ins[i].Message != nil {
			if msgID == nil {
				out[i].Err = ErrDuplicateMail
			} else {
				msgs[i].ID, msgs[i].TicketID = *msgID, tk.ID
				out[i].Message = &msgs[i]
			}
		}
		got++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert tickets: %w", err)
	}
	if got != n {
		return nil, fmt.Errorf("insert tickets: %d of %d tickets returned", got, n)
	}
	var withFiles []*Message
	for i := range out {
		if m := out[i].Message; m != nil && len(m.Attachments) > 0 {
			withFiles = append(withFiles, m)
		}
	}
	if err := insertAttachments(ctx, t.tx, withFiles...); err != nil {
		return nil, err
	}
	for i, in := range ins {
		tk, msg := out[i].Ticket, out[i].Message
		if in.FollowUpOf != 0 {
			if err := insertLink(ctx, t.tx, tk.ID, in.FollowUpOf, LinkFollowUp, t.now); err != nil {
				return nil, err
			}
		}
		ev := Event{ID: evIDs[i], TicketID: tk.ID, At: t.now, Actor: in.Actor, Kind: EventCreated, After: string(tk.Status), Why: in.Why}
		if msg != nil {
			ev.MessageID = &msg.ID
		}
		t.events = append(t.events, ev)
		if out[i].Err != nil {
			continue // as Create always did: the ticket stands, its mail is another message already
		}
		if err := t.notify(ctx, Change{Ticket: tk, Event: ev, Message: msg, Participants: parts[i]}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// createTicketsSQL is CreateMany's statement; its arguments are newTicketRows' columns ($1-$10 the
// tickets, $11-$13 the contacts, $14 the time, $15-$17 the participants, $18-$38 the messages). It
// returns each ticket (ticketColumns) with its position in the input, its message's id (NULL without one or when the
// raw mail is already a message) and its event's id.
const createTicketsSQL = `
	WITH n AS (
		-- ticket numbers in input order (a volatile CTE is evaluated once)
		SELECT u.*, nextval('ticket_number_seq') AS number
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		            $9::text[], $10::text[])
		     WITH ORDINALITY AS u(prefix, kind, priority, queue, requester, subject, language, actor_kind, actor, why, ord)
		ORDER BY u.ord
	), c AS (
		-- DO NOTHING takes no lock on an existing contact (DO UPDATE would, until commit, and make
		-- concurrent ingest transactions that share a requester or watcher wait for each other)
		INSERT INTO contacts (email, name, language)
		SELECT * FROM unnest($11::text[], $12::text[], $13::text[])
		ON CONFLICT (email) DO NOTHING
	), cu AS (
		-- an existing contact learns a name or language only when it changes (a rare, locking write)
		UPDATE contacts SET
			name = CASE WHEN u.name <> '' THEN u.name ELSE contacts.name END,
			language = CASE WHEN u.language <> '' THEN u.language ELSE contacts.language END
		FROM unnest($11::text[], $12::text[], $13::text[]) AS u(email, name, language)
		WHERE contacts.email = u.email AND contacts.email = ANY($11::text[]) -- by index, never a scan
		  AND ((u.name <> '' AND u.name <> contacts.name) OR (u.language <> '' AND u.language <> contacts.language))
	), t AS (
		INSERT INTO tickets (prefix, number, key, kind, status, priority, queue, requester, subject, language, created_at, updated_at)
		SELECT prefix, number, prefix || '-' || number, kind, 'new', priority, queue, requester, subject, language, $14, $14
		FROM n ORDER BY ord
		RETURNING *
	), tn AS (
		SELECT t.*, n.ord, n.actor_kind, n.actor, n.why FROM t JOIN n USING (number)
	), p AS (
		INSERT INTO participants (ticket_id, email, role, added_at)
		SELECT tn.id, u.email, u.role, $14
		FROM unnest($15::bigint[], $16::text[], $17::text[]) AS u(ord, email, role) JOIN tn ON tn.ord = u.ord
		ON CONFLICT DO NOTHING
	), m AS (
		INSERT INTO messages (ticket_id, raw_mail_id, direction, visibility, class, author_kind, author,
			message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, subject, body_text, visible_text,
			body_html, thread_reason, created_at, attachment_count)
		SELECT tn.id, u.raw, u.dir, u.vis, u.class, u.author_kind, u.author, u.message_id, u.in_reply_to,
			string_to_array(u.refs, E'\n'), u.from_addr, u.from_name, string_to_array(u.to_addrs, E'\n'),
			string_to_array(u.cc_addrs, E'\n'), u.subject, u.body_text, u.visible_text, u.body_html, u.reason, u.at, u.files
		FROM unnest($18::bool[], $19::bigint[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
		            $25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::text[],
		            $33::text[], $34::text[], $35::text[], $36::text[], $37::timestamptz[], $38::int[])
		     WITH ORDINALITY AS u(has, raw, dir, vis, class, author_kind, author, message_id, in_reply_to, refs, from_addr,
		          from_name, to_addrs, cc_addrs, subject, body_text, visible_text, body_html, reason, at, files, ord)
		JOIN tn ON tn.ord = u.ord
		WHERE u.has
		ORDER BY u.ord
		ON CONFLICT (raw_mail_id) DO NOTHING RETURNING id, ticket_id
	), e AS (
		INSERT INTO events (ticket_id, at, actor_kind, actor, kind, before, after, why, message_id)
		SELECT tn.id, $14, tn.actor_kind, tn.actor, 'created', '', 'new', tn.why, m.id
		FROM tn LEFT JOIN m ON m.ticket_id = tn.id
		ORDER BY tn.ord
		RETURNING id, ticket_id
	)
	SELECT ` + ticketColumns + `, ord, message, event
	FROM (SELECT tn.*, m.id AS message, e.id AS event
	      FROM tn LEFT JOIN m ON m.ticket_id = tn.id LEFT JOIN e ON e.ticket_id = tn.id) AS created
	ORDER BY ord`

// AppendMessage adds a mail to a ticket. An inbound public message from the requester reopens a
// pending or resolved ticket (recorded as before/after on the one event); a closed ticket refuses it
// with ErrTransition (mail-in opens a follow-up ticket instead). An outbound public message by an agent
// sets the first response time and moves a new ticket to open.
func (t *Tx) AppendMessage(ctx context.Context, ticketID int64, m Message, actor Actor, why string) (*Message, error) {
	before, err := lockTicket(ctx, t.tx, ticketID)
	if err != nil {
		return nil, err
	}
	return t.AppendMessageLocked(ctx, before, m, actor, why)
}

// AppendMessageLocked is AppendMessage for a ticket this transaction has already read with its row
// locked (Store.TicketAndOthers or Store.TicketAndOthersByMessageID with lock): the ingest's
// threader found the ticket that way, and the reply saves a second read.
func (t *Tx) AppendMessageLocked(ctx context.Context, before *Ticket, m Message, actor Actor, why string) (*Message, error) {
	ticketID := before.ID
	after := *before
	switch {
	case m.Direction == Inbound && m.Visibility == Public && actor.Kind == ActorUser &&
		strings.EqualFold(actor.Name, before.Requester):
		next, ok := AfterRequesterReply(before.Status)
		if !ok {
			return nil, fmt.Errorf("append message to %s: %w: ticket is closed", before.Key, ErrTransition)
		}
		after.Status = next
	case m.Direction == Outbound && m.Visibility == Public && actor.Kind == ActorAgent:
		if after.FirstResponseAt == nil {
			now := t.now
			after.FirstResponseAt = &now
		}
		if after.Status == StatusNew {
			after.Status = StatusOpen
		}
	case before.Status == StatusClosed && m.Visibility == Public && m.Direction == Inbound && m.Class == "normal":
		return nil, fmt.Errorf("append message to %s: %w: ticket is closed", before.Key, ErrTransition)
	}
	m.TicketID = ticketID
	ev := Event{TicketID: ticketID, At: t.now, Actor: actor, Kind: EventMessage, Why: why, MessageID: &m.ID}
	if after.Status != before.Status {
		ev.Before, ev.After = string(before.Status), string(after.Status)
	}
	// The message, the ticket's new state and the event in one statement (a reply is a fifth of the
	// mail, and each round trip costs both processes a wake-up); a message whose raw mail is already
	// one (ON CONFLICT) changes nothing.
	setMessageDefaults(&m, t.now)
	err := t.tx.QueryRow(ctx, `
		WITH m AS (`+insertMessageSQL+`),
		u AS (
			UPDATE tickets SET status = $22::text, first_response_at = $23, updated_at = $24,
				resolved_at = CASE WHEN $22::text = 'open' THEN NULL ELSE resolved_at END
			WHERE id = $1 AND EXISTS (SELECT 1 FROM m)
		), e AS (
			INSERT INTO events (ticket_id, at, actor_kind, actor, kind, before, after, why, message_id)
			SELECT $1, $24, $25, $26, $27, $28, $29, $30, m.id FROM m
			RETURNING id
		)
		SELECT m.id, e.id FROM m, e`,
		append(messageArgs(&m), after.Status, after.FirstResponseAt, t.now,
			ev.Actor.Kind, ev.Actor.Name, ev.Kind, ev.Before, ev.After, ev.Why)...).Scan(&m.ID, &ev.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrDuplicateMail
	}
	if err != nil {
		return nil, fmt.Errorf("append message to %s: %w", before.Key, err)
	}
	if err := insertAttachments(ctx, t.tx, &m); err != nil {
		return nil, err
	}
	after.UpdatedAt = t.now
	if after.Status == StatusOpen {
		after.ResolvedAt = nil
	}
	t.events = append(t.events, ev)
	if err := t.notify(ctx, Change{Ticket: &after, Before: before, Event: ev, Message: &m}); err != nil {
		return nil, err
	}
	return &m, nil
}

// AddNote adds an internal note (visible to agents only) to a ticket.
func (t *Tx) AddNote(ctx context.Context, ticketID int64, actor Actor, text string, attachments []Attachment) (*Message, error) {
	if strings.TrimSpace(text) == "" && len(attachments) == 0 {
		return nil, fmt.Errorf("add note: %w: empty note", ErrInvalid)
	}
	before, err := lockTicket(ctx, t.tx, ticketID)
	if err != nil {
		return nil, err
	}
	m := Message{TicketID: ticketID, Direction: Inbound, Visibility: Internal, Class: "note", AuthorKind: actor.Kind,
		Author: actor.Name, MessageID: fmt.Sprintf("note.%d.%d@deskd.invalid", ticketID, t.now.UnixNano()),
		Text: text, VisibleText: text, Attachments: attachments}
	if err := insertMessage(ctx, t.tx, &m, t.now); err != nil {
		return nil, err
	}
	if err := touch(ctx, t.tx, ticketID, t.now); err != nil {
		return nil, err
	}
	ev := Event{TicketID: ticketID, Actor: actor, Kind: EventNote, MessageID: &m.ID}
	if err := t.record(ctx, Change{Ticket: before, Before: before, Event: ev, Message: &m}); err != nil {
		return nil, err
	}
	return &m, nil
}

// ChangeStatus moves a ticket to status to if the state machine allows it (ErrTransition otherwise,
// ErrNoChange when it is already there).
func (t *Tx) ChangeStatus(ctx context.Context, ticketID int64, to Status, actor Actor, why string) (*Ticket, error) {
	if _, err := ParseStatus(string(to)); err != nil {
		return nil, err
	}
	return t.update(ctx, ticketID, actor, why, EventStatus, func(tk *Ticket) (string, string, error) {
		if tk.Status == to {
			return "", "", fmt.Errorf("%s is already %s: %w", tk.Key, to, ErrNoChange)
		}
		if !CanTransition(tk.Status, to) {
			return "", "", fmt.Errorf("%s from %s to %s: %w", tk.Key, tk.Status, to, ErrTransition)
		}
		from := tk.Status
		tk.Status = to
		now := t.now
		switch to {
		case StatusResolved:
			tk.ResolvedAt = &now
		case StatusClosed:
			tk.ClosedAt = &now
			if tk.ResolvedAt == nil {
				tk.ResolvedAt = &now
			}
		case StatusOpen:
			tk.ResolvedAt = nil
		}
		return string(from), string(to), nil
	})
}

// SetPriority changes a ticket's priority.
func (t *Tx) SetPriority(ctx context.Context, ticketID int64, p Priority, actor Actor, why string) (*Ticket, error) {
	if _, err := ParsePriority(string(p)); err != nil {
		return nil, err
	}
	return t.update(ctx, ticketID, actor, why, EventPriority, func(tk *Ticket) (string, string, error) {
		if tk.Priority == p {
			return "", "", fmt.Errorf("%s already has priority %s: %w", tk.Key, p, ErrNoChange)
		}
		from := tk.Priority
		tk.Priority = p
		return string(from), string(p), nil
	})
}

// Assign sets a ticket's assignee (an agent name; "" unassigns) and adds the agent's address as an
// agent participant when agentEmail is given.
func (t *Tx) Assign(ctx context.Context, ticketID int64, agent, agentEmail string, actor Actor, why string) (*Ticket, error) {
	tk, err := t.update(ctx, ticketID, actor, why, EventAssignee, func(tk *Ticket) (string, string, error) {
		if tk.Assignee == agent {
			return "", "", fmt.Errorf("%s is already assigned to %q: %w", tk.Key, agent, ErrNoChange)
		}
		from := tk.Assignee
		tk.Assignee = agent
		return from, agent, nil
	})
	if err != nil {
		return nil, err
	}
	if agentEmail != "" {
		email := strings.ToLower(agentEmail)
		if err := upsertContact(ctx, t.tx, email, "", ""); err != nil {
			return nil, err
		}
		if err := addParticipant(ctx, t.tx, ticketID, email, RoleAgent, t.now); err != nil {
			return nil, err
		}
	}
	return tk, nil
}

// MoveQueue moves a ticket to another queue (its key keeps its prefix).
func (t *Tx) MoveQueue(ctx context.Context, ticketID int64, queue string, actor Actor, why string) (*Ticket, error) {
	if queue == "" {
		return nil, fmt.Errorf("move queue: %w: empty queue", ErrInvalid)
	}
	return t.update(ctx, ticketID, actor, why, EventQueue, func(tk *Ticket) (string, string, error) {
		if tk.Queue == queue {
			return "", "", fmt.Errorf("%s is already in queue %s: %w", tk.Key, queue, ErrNoChange)
		}
		from := tk.Queue
		tk.Queue = queue
		return from, queue, nil
	})
}

// SetKind changes a ticket's kind (incident, request, problem, change).
func (t *Tx) SetKind(ctx context.Context, ticketID int64, k Kind, actor Actor, why string) (*Ticket, error) {
	if _, err := ParseKind(string(k)); err != nil {
		return nil, err
	}
	return t.update(ctx, ticketID, actor, why, EventKindChanged, func(tk *Ticket) (string, string, error) {
		if tk.Kind == k {
			return "", "", fmt.Errorf("%s is already a %s: %w", tk.Key, k, ErrNoChange)
		}
		from := tk.Kind
		tk.Kind = k
		return string(from), string(k), nil
	})
}

// Link relates ticket from to ticket to; the event is written on from. Linking twice is ErrNoChange.
func (t *Tx) Link(ctx context.Context, from, to int64, kind LinkKind, actor Actor, why string) error {
	if _, err := ParseLinkKind(string(kind)); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("link ticket to itself: %w", ErrInvalid)
	}
	src, err := lockTicket(ctx, t.tx, from)
	if err != nil {
		return err
	}
	dst, err := NewStore(t.tx).Ticket(ctx, to)
	if err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO ticket_links (from_ticket, to_ticket, kind, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, from, to, kind, t.now)
	if err != nil {
		return fmt.Errorf("link %s to %s: %w", src.Key, dst.Key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s is already linked to %s as %s: %w", src.Key, dst.Key, kind, ErrNoChange)
	}
	ev := Event{TicketID: from, Actor: actor, Kind: EventLinked, After: string(kind) + " " + dst.Key, Why: why}
	return t.record(ctx, Change{Ticket: src, Before: src, Event: ev})
}

// AddWatcher adds an address as a watcher (ErrNoChange when it already is one).
func (t *Tx) AddWatcher(ctx context.Context, ticketID int64, email string, actor Actor, why string) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return fmt.Errorf("add watcher: %w: empty address", ErrInvalid)
	}
	tk, err := lockTicket(ctx, t.tx, ticketID)
	if err != nil {
		return err
	}
	if err := upsertContact(ctx, t.tx, email, "", ""); err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO participants (ticket_id, email, role, added_at) VALUES ($1, $2, 'watcher', $3)
		ON CONFLICT DO NOTHING`, ticketID, email, t.now)
	if err != nil {
		return fmt.Errorf("add watcher to %s: %w", tk.Key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s already watches %s: %w", email, tk.Key, ErrNoChange)
	}
	return t.record(ctx, Change{Ticket: tk, Before: tk, Event: Event{TicketID: ticketID, Actor: actor, Kind: EventWatcherAdded, After: email, Why: why}})
}

// RemoveWatcher removes a watcher (ErrNotFound when the address does not watch the ticket).
func (t *Tx) RemoveWatcher(ctx context.Context, ticketID int64, email string, actor Actor, why string) error {
	email = strings.ToLower(strings.TrimSpace(email))
	tk, err := lockTicket(ctx, t.tx, ticketID)
	if err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, `DELETE FROM participants WHERE ticket_id = $1 AND email = $2 AND role = 'watcher'`, ticketID, email)
	if err != nil {
		return fmt.Errorf("remove watcher from %s: %w", tk.Key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s does not watch %s: %w", email, tk.Key, ErrNotFound)
	}
	return t.record(ctx, Change{Ticket: tk, Before: tk, Event: Event{TicketID: ticketID, Actor: actor, Kind: EventWatcherRemoved, Before: email, Why: why}})
}

// update runs one field change: lock, mutate, persist, event, mail.
func (t *Tx) update(ctx context.Context, ticketID int64, actor Actor, why string, kind EventKind,
	mutate func(*Ticket) (before, after string, err error)) (*Ticket, error) {
	before, err := lockTicket(ctx, t.tx, ticketID)
	if err != nil {
		return nil, err
	}
	after := *before
	from, to, err := mutate(&after)
	if err != nil {
		return nil, err
	}
	after.UpdatedAt = t.now
	var assignee *string
	if after.Assignee != "" {
		assignee = &after.Assignee
	}
	if _, err := t.tx.Exec(ctx, `UPDATE tickets SET status = $2, priority = $3, assignee = $4, queue = $5, kind = $6,
		resolved_at = $7, closed_at = $8, updated_at = $9 WHERE id = $1`,
		ticketID, after.Status, after.Priority, assignee, after.Queue, after.Kind, after.ResolvedAt, after.ClosedAt, t.now); err != nil {
		return nil, fmt.Errorf("update ticket %s: %w", before.Key, err)
	}
	ev := Event{TicketID: ticketID, Actor: actor, Kind: kind, Before: from, After: to, Why: why}
	if err := t.record(ctx, Change{Ticket: &after, Before: before, Event: ev}); err != nil {
		return nil, err
	}
	return &after, nil
}

// record writes the change's event and hands the change to the Mailer.
func (t *Tx) record(ctx context.Context, c Change) error {
	if err := t.insertEvent(ctx, &c.Event); err != nil {
		return err
	}
	return t.notify(ctx, c)
}

// notify hands a change whose event is written to the Mailer.
func (t *Tx) notify(ctx context.Context, c Change) error {
	if t.s.opts.Mailer != nil {
		mail, err := t.s.opts.Mailer.TicketChanged(ctx, t.tx, c)
		if err != nil {
			return fmt.Errorf("prepare mail for %s: %w", c.Ticket.Key, err)
		}
		t.mail = append(t.mail, mail...)
	}
	return nil
}

func (t *Tx) insertEvent(ctx context.Context, e *Event) error {
	if e.At.IsZero() {
		e.At = t.now
	}
	if err := t.tx.QueryRow(ctx, `INSERT INTO events (ticket_id, at, actor_kind, actor, kind, before, after, why, message_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		e.TicketID, e.At, e.Actor.Kind, e.Actor.Name, e.Kind, e.Before, e.After, e.Why, e.MessageID).Scan(&e.ID); err != nil {
		return fmt.Errorf("insert %s event: %w", e.Kind, err)
	}
	t.events = append(t.events, *e)
	return nil
}

func touch(ctx context.Context, tx pgx.Tx, ticketID int64, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE tickets SET updated_at = $2 WHERE id = $1`, ticketID, now); err != nil {
		return fmt.Errorf("touch ticket %d: %w", ticketID, err)
	}
	return nil
}

func upsertContact(ctx context.Context, tx pgx.Tx, email, name, lang string) error {
	if _, err := tx.Exec(ctx, `
		WITH c AS (INSERT INTO contacts (email, name, language) VALUES ($1::text, $2, $3) ON CONFLICT (email) DO NOTHING)
		UPDATE contacts SET
			name = CASE WHEN $2 <> '' THEN $2 ELSE name END,
			language = CASE WHEN $3 <> '' THEN $3 ELSE language END
		WHERE email = $1::text AND (($2 <> '' AND $2 <> name) OR ($3 <> '' AND $3 <> language))`, email, name, lang); err != nil {
		return fmt.Errorf("upsert contact %s: %w", email, err)
	}
	return nil
}

func addParticipant(ctx context.Context, tx pgx.Tx, ticketID int64, email string, role Role, now time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO participants (ticket_id, email, role, added_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, ticketID, email, role, now); err != nil {
		return fmt.Errorf("add %s %s: %w", role, email, err)
	}
	return nil
}

func insertLink(ctx context.Context, tx pgx.Tx, from, to int64, kind LinkKind, now time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO ticket_links (from_ticket, to_ticket, kind, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, from, to, kind, now); err != nil {
		return fmt.Errorf("link ticket %d to %d: %w", from, to, err)
	}
	return nil
}

// storedVisible is the visible_text column's value: NULL when it is the whole text (migration 0009;
// read back as coalesce(visible_text, body_text)), so a message that quotes nothing stores its body once.
func storedVisible(m *Message) *string {
	if m.VisibleText == m.Text {
		return nil
	}
	return &m.VisibleText
}

// ErrDuplicateMail: the raw mail is already a message (unique raw_mail_id); ingest treats it as done.
var ErrDuplicateMail = errors.New("raw mail already ingested")

// insertMessageSQL inserts a message from messageArgs ($1-$21), nothing when its raw mail is
// already a message.
const insertMessageSQL = `INSERT INTO messages (ticket_id, raw_mail_id, direction, visibility, class, author_kind, author,
		message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, subject, body_text, visible_text, body_html,
		thread_reason, created_at, attachment_count)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13, '{}'::text[]), coalesce($14, '{}'::text[]), $15, $16, $17, $18, $19, $20, $21)
		ON CONFLICT (raw_mail_id) DO NOTHING RETURNING id`

// noNUL removes NUL characters, which PostgreSQL's text type cannot hold; mail carries them now and
// then (broken clients, binary data declared as text), and the rest of such a message is worth keeping.
func noNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// setMessageDefaults fills in what a message row needs and the caller may leave empty, and removes
// NUL characters from its text (noNUL).
func setMessageDefaults(m *Message, now time.Time) {
	m.Subject, m.Text, m.VisibleText, m.HTML = noNUL(m.Subject), noNUL(m.Text), noNUL(m.VisibleText), noNUL(m.HTML)
	m.FromName, m.Author, m.ThreadReason = noNUL(m.FromName), noNUL(m.Author), noNUL(m.ThreadReason)
	for i := range m.Attachments {
		a := &m.Attachments[i]
		a.Filename, a.ContentType, a.ContentID = noNUL(a.Filename), noNUL(a.ContentType), noNUL(a.ContentID)
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	if m.Class == "" {
		m.Class = "normal"
	}
	if m.References == nil {
		m.References = []string{}
	}
}

// messageArgs are insertMessageSQL's arguments.
func messageArgs(m *Message) []any {
	return []any{m.TicketID, m.RawMailID, m.Direction, m.Visibility, m.Class, m.AuthorKind, m.Author, m.MessageID, m.InReplyTo,
		m.References, m.From, m.FromName, m.To, m.Cc, m.Subject, m.Text, storedVisible(m), m.HTML, m.ThreadReason,
		m.CreatedAt, len(m.Attachments)}
}

func insertMessage(ctx context.Context, tx pgx.Tx, m *Message, now time.Time) error {
	setMessageDefaults(m, now)
	err := tx.QueryRow(ctx, insertMessageSQL, messageArgs(m)...).Scan(&m.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrDuplicateMail
	}
	if err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	return insertAttachments(ctx, tx, m)
}

// attachmentStatementBytes bounds the attachment content sent with one statement (a larger
// attachment goes alone), so the attachments of many messages are not all held encoded at once.
const attachmentStatementBytes = 8 << 20

// insertAttachments stores the attachments of messages, their content once per SHA-256: one
// statement for up to attachmentStatementBytes of them (blobs and attachment rows together).
func insertAttachments(ctx context.Context, tx pgx.Tx, msgs ...*Message) error {
	var (
		group  []*Attachment
		owners []*Message
		sent   int // content bytes the group's statement carries
	)
	for _, m := range msgs {
		for i := range m.Attachments {
			a := &m.Attachments[i]
			sum := sha256.Sum256(a.Data)
			a.SHA256 = sum[:]
			a.Size = int64(len(a.Data))
			if a.ContentType == "" {
				a.ContentType = "application/octet-stream"
			}
			size := len(a.Data)
			if keptInRaw(m, a) {
				size = 0
			}
			if sent > 0 && sent+size > attachmentStatementBytes {
				if err := insertAttachmentGroup(ctx, tx, group, owners); err != nil {
					return err
				}
				group, owners, sent = group[:0], owners[:0], 0
			}
			group, owners, sent = append(group, a), append(owners, m), sent+size
		}
	}
	if len(group) == 0 {
		return nil
	}
	return insertAttachmentGroup(ctx, tx, group, owners)
}

// keptInRaw reports whether a's content stays in m's raw mail instead of being copied (Attachment.RawPart).
func keptInRaw(m *Message, a *Attachment) bool { return a.RawPart > 0 && m.RawMailID != nil }

// insertAttachmentGroup writes atts (of the messages owners) with one statement and sets their ids.
// Content that came with a raw mail is stored as a reference to it (migration 0011).
func insertAttachmentGroup(ctx context.Context, tx pgx.Tx, atts []*Attachment, owners []*Message) error {
	var (
		sums, data         [][]byte
		sizes              []int64
		rawIDs             []*int64
		rawParts           []int32
		msgIDs             = make([]int64, len(atts))
		aSums              = make([][]byte, len(atts))
		names, types, cids = make([]string, len(atts)), make([]string, len(atts)), make([]string, len(atts))
		inline             = make([]bool, len(atts))
		aSizes             = make([]int64, len(atts))
		seen               = map[string]bool{}
	)
	for i, a := range atts {
		if !seen[string(a.SHA256)] { // each content once in the statement
			seen[string(a.SHA256)] = true
			sums, sizes = append(sums, a.SHA256), append(sizes, a.Size)
			if keptInRaw(owners[i], a) {
				data, rawIDs, rawParts = append(data, nil), append(rawIDs, owners[i].RawMailID), append(rawParts, int32(a.RawPart))
			} else {
				data, rawIDs, rawParts = append(data, a.Data), append(rawIDs, nil), append(rawParts, 0)
			}
		}
		msgIDs[i], aSums[i], names[i], types[i], cids[i], inline[i], aSizes[i] =
			owners[i].ID, a.SHA256, a.Filename, a.ContentType, a.ContentID, a.Inline, a.Size
	}
	rows, err := tx.Query(ctx, `
		WITH b AS (
			INSERT INTO blobs (sha256, size, data, raw_mail_id, raw_part)
			SELECT u.sha256, u.size, u.data, u.raw_mail_id, nullif(u.raw_part, 0)
			FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $11::bigint[], $12::int[])
			     AS u(sha256, size, data, raw_mail_id, raw_part)
			ON CONFLICT DO NOTHING
		)
		INSERT INTO attachments (message_id, sha256, filename, content_type, content_id, inline, size)
		SELECT u.message_id, u.sha256, u.filename, u.content_type, u.content_id, u.inline, u.size
		FROM unnest($4::bigint[], $5::bytea[], $6::text[], $7::text[], $8::text[], $9::bool[], $10::bigint[])
		     WITH ORDINALITY AS u(message_id, sha256, filename, content_type, content_id, inline, size, ord)
		ORDER BY u.ord
		RETURNING id`, sums, sizes, data, msgIDs, aSums, names, types, cids, inline, aSizes, rawIDs, rawParts)
	if err != nil {
		return fmt.Errorf("store %d attachments (%q first): %w", len(atts), atts[0].Filename, err)
	}
	written, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("store %d attachments (%q first): %w", len(atts), atts[0].Filename, err)
	}
	if len(written) != len(atts) {
		return fmt.Errorf("store %d attachments: %d rows written", len(atts), len(written))
	}
	slices.Sort(written) // ids are drawn in insertion order, which is the input order
	for i, a := range atts {
		a.ID = written[i]
	}
	return nil
}
