package mailin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/deskd/deskd/internal/subject"
	"github.com/deskd/deskd/mailin/classify"
	"github.com/deskd/deskd/mailin/parse"
	"github.com/deskd/deskd/mailin/thread"
	"github.com/deskd/deskd/tickets"
)

// apply turns one prepared message into ticket changes inside tx and returns the raw mail's new
// state, the ticket key it went to and the reason to record.
//
// A new ticket is queued on cq when cq is not nil: its key is filled in when cq is written.
func (in *Ingester) apply(ctx context.Context, tx *tickets.Tx, p prepared, cq *createQueue) (state, key, reason string, err error) {
	m, r := p.msg, p.raw
	if p.dupOf != 0 {
		return StateDuplicate, "", fmt.Sprintf("same Message-ID and content as raw mail %d, already ingested", p.dupOf), nil
	}
	lk := &storeLookup{st: tx.Store(), lock: true}
	d, err := thread.Decide(ctx, in.threadInput(m), in.thread, lk)
	if err != nil {
		return "", "", "", fmt.Errorf("thread: %w", err)
	}
	msg := in.message(r, m, p.class, d)
	if p.class.Class.Automated() {
		return in.applyMachine(ctx, tx, p, d, msg)
	}
	from := strings.ToLower(msg.From)
	if from == "" {
		return "", "", "", errors.New("no usable From address: cannot open or update a ticket")
	}
	if d.Action == thread.Append {
		tk := lk.locked[d.TicketID] // read and locked by the threader, which every Append comes from
		actor := tickets.Actor{Kind: tickets.ActorUser, Name: from}
		why := d.Reason
		if agent, ok := in.opts.Agents[from]; ok {
			if d.Via == thread.ViaToken {
				// an agent answering a notification: a public reply to the requester
				actor = tickets.Actor{Kind: tickets.ActorAgent, Name: agent}
				msg.Direction, msg.AuthorKind, msg.Author = tickets.Outbound, tickets.ActorAgent, agent
				msg.Text = msg.VisibleText
			} else {
				why += "; sender is an agent address but the mail carries no signed token: treated as a participant"
			}
		}
		var err error
		if tk != nil {
			_, err = tx.AppendMessageLocked(ctx, tk, msg, actor, why)
		} else {
			_, err = tx.AppendMessage(ctx, d.TicketID, msg, actor, why)
		}
		if err != nil {
			if errors.Is(err, tickets.ErrDuplicateMail) {
				return StateIngested, d.TicketKey, "already ingested", nil
			}
			return "", "", "", err
		}
		if err := in.addWatchers(ctx, tx, d.TicketID, m, from); err != nil {
			return "", "", "", err
		}
		return StateIngested, d.TicketKey, d.Reason, nil
	}
	q := in.route(r.Mailbox, m)
	subj := subject.Clean(m.Subject, in.thread.KeyPrefixes)
	if d.LinkTo != 0 {
		// a follow-up of a closed ticket is about the same thing: keep its subject, not "Re: [KEY] …"
		closed := lk.locked[d.LinkTo] // the threader read it
		if closed == nil {
			var err error
			if closed, err = tx.Store().Ticket(ctx, d.LinkTo); err != nil {
				return "", "", "", err
			}
		}
		subj = closed.Subject
	}
	nt := tickets.NewTicket{
		Prefix: q.Prefix, Queue: q.Name, Kind: q.DefaultKind, Priority: q.DefaultPriority, Requester: from,
		Subject: subj, Message: &msg, FollowUpOf: d.LinkTo, Language: q.Language,
		Actor: tickets.Actor{Kind: tickets.ActorUser, Name: from}, Why: d.Reason,
	}
	if m.From != nil {
		nt.RequesterName = m.From.Name
	}
	nt.Watchers = in.watchers(m, from)
	if cq != nil {
		cq.add(nt)
		return StateIngested, "", d.Reason, nil
	}
	tk, _, err := tx.Create(ctx, nt)
	if err != nil {
		if errors.Is(err, tickets.ErrDuplicateMail) {
			return StateIngested, "", "already ingested", nil
		}
		return "", "", "", err
	}
	return StateIngested, tk.Key, d.Reason, nil
}

// applyMachine records bounces, reports, read receipts, auto-replies and loops on the ticket they
// concern; they never open a ticket and never cause mail (DESIGN.md invariant 5).
func (in *Ingester) applyMachine(ctx context.Context, tx *tickets.Tx, p prepared, d thread.Decision, msg tickets.Message) (string, string, string, error) {
	c := p.class
	ticketID := d.TicketID
	if d.Action == thread.NewTicket {
		ticketID = d.LinkTo // machine mail about a closed ticket still belongs to it
	}
	if ticketID == 0 && c.Bounce != nil && c.Bounce.OriginalMessageID != "" {
		tk, _, err := tx.Store().TicketByMessageID(ctx, []string{thread.CanonicalID(c.Bounce.OriginalMessageID)})
		switch {
		case err == nil:
			ticketID = tk.ID
		case !errors.Is(err, tickets.ErrNotFound):
			return "", "", "", err
		}
		if ticketID == 0 && in.opts.Signer != nil {
			if id, err := in.opts.Signer.TicketFromMessageID(c.Bounce.OriginalMessageID); err == nil {
				ticketID = id
			}
		}
	}
	why := fmt.Sprintf("%s: %s", c.Class, c.Reason)
	key := ""
	if ticketID != 0 {
		tk, err := tx.Store().Ticket(ctx, ticketID)
		if err != nil && !errors.Is(err, tickets.ErrNotFound) {
			return "", "", "", err
		}
		if err == nil {
			key = tk.Key
			if _, err := tx.AppendMachineMessage(ctx, tk.ID, msg, why); err != nil {
				if errors.Is(err, tickets.ErrDuplicateMail) {
					return StateIngested, key, "already ingested", nil
				}
				return "", "", "", err
			}
		} else {
			ticketID = 0
		}
	}
	if c.Class == classify.ClassBounce && c.Bounce != nil {
		for _, rcpt := range c.Bounce.Recipients {
			if !rcpt.Hard || rcpt.Address == "" || in.isDeskAddress(rcpt.Address) {
				continue
			}
			reason := strings.TrimSpace(fmt.Sprintf("bounced %s %s", rcpt.Status, rcpt.Diagnostic))
			if err := tx.MarkUndeliverable(ctx, ticketID, rcpt.Address, reason,
				tickets.Actor{Kind: tickets.ActorSystem, Name: "mailin"}); err != nil {
				return "", "", "", err
			}
		}
	}
	if key == "" {
		return StateIgnored, "", why + "; no ticket found for it, so none is opened", nil
	}
	return StateIngested, key, why + "; recorded on " + key, nil
}

func init() { tickets.RegisterRawAttachments(rawAttachments) }

// rawAttachments returns the contents of a raw mail's attachments, in parse order: what an
// attachment kept in its raw mail is read back from (tickets.Attachment.RawPart).
func rawAttachments(raw []byte) ([][]byte, error) {
	m, err := parse.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse raw mail: %w", err)
	}
	out := make([][]byte, len(m.Attachments))
	for i, a := range m.Attachments {
		out[i] = a.Data
	}
	return out, nil
}

// message builds the stored form of a parsed message.
func (in *Ingester) message(r *RawMail, m *parse.Message, c classify.Result, d thread.Decision) tickets.Message {
	msg := tickets.Message{
		RawMailID: &r.ID, Direction: tickets.Inbound, Visibility: tickets.Public, Class: string(c.Class),
		AuthorKind: tickets.ActorUser, MessageID: thread.CleanID(m.MessageID), Subject: m.Subject,
		Text: m.Text, VisibleText: m.VisibleText, HTML: m.HTML, ThreadReason: d.Reason,
		To: addrs(m.To), Cc: addrs(m.Cc),
	}
	if msg.MessageID == "" {
		msg.MessageID = fmt.Sprintf("deskd-raw-%d@%s", r.ID, in.opts.DeskDomain)
	}
	if len(m.InReplyTo) > 0 {
		msg.InReplyTo = thread.CleanID(m.InReplyTo[0])
	}
	for _, ref := range m.References {
		if id := thread.CleanID(ref); id != "" {
			msg.References = append(msg.References, id)
		}
	}
	if m.From != nil {
		msg.From, msg.FromName = strings.ToLower(m.From.Address), m.From.Name
		msg.Author = msg.From
	}
	for i, a := range m.Attachments {
		// RawPart: the content stays in the raw mail, not copied (rawAttachments reads it back)
		msg.Attachments = append(msg.Attachments, tickets.Attachment{Filename: a.Filename, ContentType: a.ContentType,
			ContentID: a.ContentID, Inline: a.Inline, Data: a.Data, RawPart: i + 1})
	}
	return msg
}

// route picks the queue of a new ticket: a queue address among the recipients first, then the
// mailbox's queue, then the first queue.
func (in *Ingester) route(mailbox string, m *parse.Message) Queue {
	rcpts := append(addrs(m.To), addrs(m.Cc)...)
	for _, k := range []string{"Delivered-To", "X-Original-To"} {
		for _, v := range m.Header[k] {
			rcpts = append(rcpts, strings.ToLower(strings.TrimSpace(strings.Trim(v, "<> "))))
		}
	}
	for _, rc := range rcpts {
		base := stripPlus(rc)
		for _, q := range in.opts.Queues {
			for _, a := range q.Addresses {
				if a == base {
					return q
				}
			}
		}
	}
	if name, ok := in.opts.MailboxQueue[mailbox]; ok {
		for _, q := range in.opts.Queues {
			if q.Name == name {
				return q
			}
		}
	}
	return in.opts.Queues[0]
}

// watchers are the To/Cc people of a message other than the desk, the sender and agents.
func (in *Ingester) watchers(m *parse.Message, from string) []string {
	var out []string
	for _, a := range append(addrs(m.To), addrs(m.Cc)...) {
		if a == from || in.isDeskAddress(a) {
			continue
		}
		if _, agent := in.opts.Agents[a]; agent {
			continue
		}
		out = append(out, a)
	}
	return out
}

func (in *Ingester) addWatchers(ctx context.Context, tx *tickets.Tx, ticketID int64, m *parse.Message, from string) error {
	w := in.watchers(m, from)
	if len(w) == 0 {
		return nil
	}
	_, err := tx.AddParticipants(ctx, ticketID, w, tickets.RoleWatcher)
	return err
}

func (in *Ingester) isDeskAddress(a string) bool {
	base := stripPlus(strings.ToLower(a))
	for _, d := range in.opts.DeskAddresses {
		if d == base {
			return true
		}
	}
	return false
}

// findDuplicates maps each message of b to an earlier copy of it in the same mailbox that was
// already processed, in one query: after a UIDVALIDITY change the mailbox is re-scanned and every
// message comes again under new UIDs. One poller per mailbox (advisory lock) makes this race-free.
func findDuplicates(ctx context.Context, tx *tickets.Tx, b []prepared) (map[int64]int64, error) {
	var mids []string
	for _, p := range b {
		if p.raw.MessageID != "" {
			mids = append(mids, p.raw.MessageID)
		}
	}
	if len(mids) == 0 {
		return nil, nil
	}
	rows, err := tx.PG().Query(ctx, `SELECT id, mailbox, message_id, sha256 FROM raw_mails
		WHERE message_id = ANY($1) AND message_id <> '' AND state IN ('ingested', 'ignored', 'duplicate')`, mids)
	if err != nil {
		return nil, fmt.Errorf("check duplicates: %w", err)
	}
	defer rows.Close()
	earlier := map[string]int64{}
	for rows.Next() {
		var r RawMail
		if err := rows.Scan(&r.ID, &r.Mailbox, &r.MessageID, &r.SHA256); err != nil {
			return nil, fmt.Errorf("check duplicates: %w", err)
		}
		if k := dupKey(&r); earlier[k] == 0 || r.ID < earlier[k] {
			earlier[k] = r.ID
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check duplicates: %w", err)
	}
	out := map[int64]int64{}
	for _, p := range b {
		if id := earlier[dupKey(p.raw)]; id != 0 && id != p.raw.ID {
			out[p.raw.ID] = id
		}
	}
	return out, nil
}

// dupKey identifies a message's copies: mailbox, Message-ID and content hash ("" without Message-ID).
func dupKey(r *RawMail) string {
	if r.MessageID == "" {
		return ""
	}
	return r.Mailbox + "\x00" + r.MessageID + "\x00" + string(r.SHA256)
}

func addrs(list []*mail.Address) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		if a != nil && a.Address != "" {
			out = append(out, strings.ToLower(a.Address))
		}
	}
	return out
}

// storeLookup answers the threader's look-ups from the ticket store. Inside the ingest transaction
// (lock) it locks each ticket it reads FOR UPDATE and keeps it in locked: the ticket a reply is
// appended to is then read once, with its participants, and not again by the append
// (tickets.Tx.AppendMessageLocked). A ticket read but not used stays locked until the commit, as
// any other the transaction touched.
type storeLookup struct {
	st     *tickets.Store
	lock   bool
	locked map[int64]*tickets.Ticket
}

func notFound(err error) error {
	if errors.Is(err, tickets.ErrNotFound) {
		return fmt.Errorf("%w: %v", thread.ErrNotFound, err)
	}
	return err
}

// TicketByID reads the ticket with its participants in one round trip.
func (l *storeLookup) TicketByID(ctx context.Context, id int64) (thread.TicketRef, error) {
	tk, others, err := l.st.TicketAndOthers(ctx, id, l.lock)
	if err != nil {
		return thread.TicketRef{}, notFound(err)
	}
	return l.ref(tk, others), nil
}

// TicketByMessageID finds and reads the ticket in one round trip.
func (l *storeLookup) TicketByMessageID(ctx context.Context, ids []string) (thread.TicketRef, string, error) {
	tk, others, matched, err := l.st.TicketAndOthersByMessageID(ctx, ids, l.lock)
	if err != nil {
		return thread.TicketRef{}, "", notFound(err)
	}
	return l.ref(tk, others), matched, nil
}

func (l *storeLookup) TicketByKey(ctx context.Context, key string) (thread.TicketRef, error) {
	tk, err := l.st.TicketByKey(ctx, key)
	if err != nil {
		return thread.TicketRef{}, notFound(err)
	}
	return l.TicketByID(ctx, tk.ID)
}

// ref is what the threader needs of tk; a locked read is kept for the append.
func (l *storeLookup) ref(tk *tickets.Ticket, others []string) thread.TicketRef {
	if l.lock {
		if l.locked == nil {
			l.locked = map[int64]*tickets.Ticket{}
		}
		l.locked[tk.ID] = tk
	}
	return thread.TicketRef{ID: tk.ID, Key: tk.Key, Closed: tk.Status == tickets.StatusClosed, Requester: tk.Requester,
		Participants: others}
}

// stripPlus removes a sub-address: "support+t-x@example.com" becomes "support@example.com".
func stripPlus(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	if plus := strings.IndexByte(addr[:at], '+'); plus >= 0 {
		return addr[:plus] + addr[at:]
	}
	return addr
}

// NewStoreLookup returns the threader's look-ups over a ticket store (used by `deskd inspect --db`).
func NewStoreLookup(st *tickets.Store) thread.Lookup { return &storeLookup{st: st} }
