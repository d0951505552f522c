// Package notify turns ticket changes into mail: it implements tickets.Mailer, picking the right
// template for each change and enqueueing it in the use case's transaction through a mailout.Outbox
// as a draft (the template and the typed view as of the change), mailout.Composer, rendering those
// drafts when the Sender delivers them, and mailout.Noticer, composing the dead-letter and loop
// notices to a queue's agents. An agent's reply that forwards attachments is rendered at once.
//
// What is sent, by change:
//
//   - ticket created from a person's mail: ack to the requester (Auto-Submitted: auto-replied) and
//     agent_new to each agent of the queue; a ticket created from a bounce, auto-reply, list or loop
//     message gets its ack written as suppressed (mailout.Mail.Machine), never sent;
//   - the requester's public reply: agent_reply to the assignee, or to the queue's agents when nobody
//     is assigned;
//   - an agent's public reply: reply to the requester and watchers, human-authored (no Auto-Submitted),
//     the agent's text with the public history quoted, attachments forwarded;
//   - a status change by anyone but the requester: status_pending, status_resolved, status_closed or
//     status_reopened to the requester and watchers (auto-generated).
//
// Mail to the requester continues the requester's own thread (In-Reply-To their last message);
// mail to agents threads under a per-ticket root id so each ticket is one thread in their client.
// Idempotency keys are derived from the event or message that causes the mail, so a replayed use case
// enqueues nothing twice.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/templates"
	"github.com/deskd/deskd/tickets"
)

// Options configures a Notifier.
type Options struct {
	// Outbox configures the Outbox the Notifier writes to; its Noticer is set to the Notifier, and
	// its OwnAddresses default to every queue address. Outbox.Signer is required.
	Outbox mailout.OutboxOptions
	// Templates renders the mail. Required.
	Templates *templates.Set
	// Desk, Queues and Agents come from the configuration: the desk's display name, each queue's
	// addresses, language and agents, and each agent's address, name and language.
	Desk   config.Desk
	Queues []config.Queue
	Agents []config.Agent
	// Location is the zone times are shown in; nil means UTC.
	Location *time.Location
	// Logger receives a warning when a ticket's queue is not configured; nil discards.
	Logger *slog.Logger
}

// Notifier implements tickets.Mailer and mailout.Noticer. It is safe for concurrent use.
type Notifier struct {
	outbox *mailout.Outbox
	ids    interface{ MessageID(int64, string) string }
	tmpl   *templates.Set
	desk   config.Desk
	queues map[string]config.Queue
	first  string // the first configured queue, for tickets of an unknown queue
	agents map[string]config.Agent
	loc    *time.Location
	now    func() time.Time
	log    *slog.Logger
}

// New returns a Notifier and the Outbox it enqueues to (Notifier.Outbox).
func New(o Options) (*Notifier, error) {
	if o.Templates == nil || o.Outbox.Signer == nil {
		return nil, errors.New("create notifier: templates and signer are required")
	}
	n := &Notifier{
		ids:    o.Outbox.Signer,
		tmpl:   o.Templates,
		desk:   o.Desk,
		queues: make(map[string]config.Queue, len(o.Queues)),
		agents: make(map[string]config.Agent, len(o.Agents)),
		loc:    o.Location,
		now:    o.Outbox.Now,
		log:    o.Logger,
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for _, q := range o.Queues {
		if len(q.Addresses) == 0 {
			return nil, fmt.Errorf("create notifier: queue %q has no address", q.Name)
		}
		if n.first == "" {
			n.first = q.Name
		}
		n.queues[q.Name] = q
	}
	for _, a := range o.Agents {
		n.agents[a.Name] = a
	}
	own := o.Outbox.OwnAddresses
	if len(own) == 0 {
		for _, q := range o.Queues {
			own = append(own, q.Addresses...)
		}
	}
	ob := o.Outbox
	ob.OwnAddresses = own
	ob.Noticer = n
	ob.Composer = n
	var err error
	if n.outbox, err = mailout.NewOutbox(ob); err != nil {
		return nil, fmt.Errorf("create notifier: %w", err)
	}
	return n, nil
}

// Outbox returns the Outbox the Notifier enqueues to, for the Sender and for callers that enqueue
// mail of their own in the same transactions.
func (n *Notifier) Outbox() *mailout.Outbox { return n.outbox }

// TicketChanged composes the mail that c causes as drafts, reading through tx (tickets.Mailer); WriteMail
// enqueues it. Changes that cause no mail return none. An error aborts the use case.
func (n *Notifier) TicketChanged(ctx context.Context, tx pgx.Tx, c tickets.Change) ([]mailout.Mail, error) {
	var (
		mail []mailout.Mail
		err  error
	)
	switch c.Event.Kind {
	case tickets.EventCreated:
		mail, err = n.created(ctx, tx, c)
	case tickets.EventMessage:
		switch m := c.Message; {
		case m == nil || m.Visibility != tickets.Public:
		case m.Direction == tickets.Inbound && c.Event.Actor.Kind == tickets.ActorUser && m.Class == "normal":
			mail, err = n.requesterReplied(ctx, tx, c)
		case m.Direction == tickets.Outbound && c.Event.Actor.Kind == tickets.ActorAgent:
			mail, err = n.agentReplied(ctx, tx, c)
		}
	case tickets.EventStatus:
		mail, err = n.statusChanged(ctx, tx, c)
	}
	if err != nil {
		return nil, fmt.Errorf("notify %s of %s: %w", c.Event.Kind, c.Ticket.Key, err)
	}
	return mail, nil
}

// WriteMail enqueues the mail of a transaction's changes in that transaction, with a few statements
// for all of it (mailout.Outbox.EnqueueMany; tickets.Mailer).
func (n *Notifier) WriteMail(ctx context.Context, tx pgx.Tx, mail []mailout.Mail) error {
	_, err := n.outbox.EnqueueMany(ctx, tx, mail)
	return err
}

// created sends the ack to the requester and agent_new to the queue's agents.
func (n *Notifier) created(ctx context.Context, tx pgx.Tx, c tickets.Change) ([]mailout.Mail, error) {
	tc, err := n.load(ctx, tx, c)
	if err != nil || tc == nil {
		return nil, err
	}
	tc.fresh = true
	var out []mailout.Mail
	if c.Event.Actor.Kind == tickets.ActorUser && c.Message != nil && c.Message.Direction == tickets.Inbound {
		m, err := tc.toRequester(templates.Ack, fmt.Sprintf("ack:ticket:%d", c.Ticket.ID), "", mailout.AutoReplied)
		if err != nil {
			return nil, err
		}
		if c.Message.Class != "normal" {
			m.Machine = c.Message.Class
		}
		out = append(out, m)
	}
	body := ""
	if c.Message != nil {
		body = visible(c.Message)
	}
	agents, err := tc.agentMails(templates.AgentNew, fmt.Sprintf("agent_new:ticket:%d", c.Ticket.ID), body, tc.queue.Agents)
	return append(out, agents...), err
}

// requesterReplied tells the assignee, or the queue's agents, about the requester's reply.
func (n *Notifier) requesterReplied(ctx context.Context, tx pgx.Tx, c tickets.Change) ([]mailout.Mail, error) {
	tc, err := n.load(ctx, tx, c)
	if err != nil || tc == nil {
		return nil, err
	}
	who := tc.queue.Agents
	if c.Ticket.Assignee != "" {
		who = []string{c.Ticket.Assignee}
	}
	return tc.agentMails(templates.AgentReply, fmt.Sprintf("agent_reply:message:%d", c.Message.ID), visible(c.Message), who)
}

// agentReplied sends an agent's public reply to the requester and watchers, attachments included.
func (n *Notifier) agentReplied(ctx context.Context, tx pgx.Tx, c tickets.Change) ([]mailout.Mail, error) {
	tc, err := n.load(ctx, tx, c)
	if err != nil || tc == nil {
		return nil, err
	}
	m, err := tc.toRequester(templates.Reply, fmt.Sprintf("reply:message:%d", c.Message.ID), visible(c.Message), "")
	if err != nil {
		return nil, err
	}
	if len(c.Message.Attachments) > 0 {
		// attachments are forwarded with the mail's bytes: rendered now, not at send time
		if err := n.composeNow(&m); err != nil {
			return nil, err
		}
	}
	store := tickets.NewStore(tx)
	for _, a := range c.Message.Attachments {
		data := a.Data
		if data == nil && a.SHA256 != nil {
			if data, err = store.AttachmentData(ctx, a.SHA256); err != nil {
				return nil, fmt.Errorf("forward attachment %q: %w", a.Filename, err)
			}
		}
		m.Attachments = append(m.Attachments, mailout.Attachment{Filename: a.Filename, ContentType: a.ContentType, Data: data})
	}
	return []mailout.Mail{m}, nil
}

// statusTemplates maps a new status to the mail telling the requester about it.
var statusTemplates = map[tickets.Status]string{
	tickets.StatusPending:  templates.StatusPending,
	tickets.StatusResolved: templates.StatusResolved,
	tickets.StatusClosed:   templates.StatusClosed,
	tickets.StatusOpen:     templates.StatusReopened,
}

// statusChanged tells the requester about a status change they did not make themselves.
func (n *Notifier) statusChanged(ctx context.Context, tx pgx.Tx, c tickets.Change) ([]mailout.Mail, error) {
	if c.Before == nil || c.Event.Actor.Kind == tickets.ActorUser {
		return nil, nil
	}
	name, ok := statusTemplates[c.Ticket.Status]
	if !ok || (c.Ticket.Status == tickets.StatusOpen && c.Before.Status == tickets.StatusNew) {
		return nil, nil
	}
	tc, err := n.load(ctx, tx, c)
	if err != nil || tc == nil {
		return nil, err
	}
	tc.view.OldStatus, tc.view.NewStatus = string(c.Before.Status), string(c.Ticket.Status)
	m, err := tc.toRequester(name, fmt.Sprintf("status:event:%d", c.Event.ID), c.Event.Why, mailout.AutoGenerated)
	if err != nil {
		return nil, err
	}
	return []mailout.Mail{m}, nil
}

// NoticeMails composes the dead-letter or loop notice for the agents of the ticket's queue
// (mailout.Noticer).
func (n *Notifier) NoticeMails(ctx context.Context, tx pgx.Tx, nt mailout.Notice) ([]mailout.Mail, error) {
	tk, err := tickets.NewStore(tx).Ticket(ctx, nt.TicketID)
	if err != nil {
		return nil, fmt.Errorf("compose %s notice: %w", nt.Kind, err)
	}
	tc, err := n.load(ctx, tx, tickets.Change{Ticket: tk})
	if err != nil || tc == nil {
		return nil, err
	}
	switch nt.Kind {
	case mailout.KindDeadLetter:
		tc.view.Delivery = templates.DeliveryView{
			To: strings.Join(nt.Recipients, ", "), Subject: nt.Subject, Reason: nt.Why,
			Attempts: nt.Attempts, LastTried: nt.At,
		}
	case mailout.KindLoopDetected:
		until := nt.Until
		tc.view.Loop = templates.LoopView{Address: strings.Join(nt.Addresses, ", "), Count: nt.Count, Window: time.Hour, Until: &until}
	default:
		return nil, fmt.Errorf("compose notice: unknown kind %q", nt.Kind)
	}
	return tc.agentMails(nt.Kind, nt.Key, "", tc.queue.Agents)
}
