package notify

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/subject"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/templates"
	"github.com/deskd/deskd/tickets"
)

// ticketMail is what every mail about one ticket change shares: the queue, the template view and
// the requester's thread.
type ticketMail struct {
	n        *Notifier
	ticket   *tickets.Ticket
	queue    config.Queue
	from     mailout.Address
	view     templates.View
	watchers []mailout.Address
	// The requester's last public message, which mail to the requester answers.
	lastID   string
	lastRefs []string
	// fresh: the ticket was created in this transaction (mailout.Mail.NewTicket).
	fresh bool
}

// load gathers the queue, participants and conversation of c's ticket through tx (which sees the
// change's uncommitted rows). It returns nil when no queue is configured at all.
func (n *Notifier) load(ctx context.Context, tx pgx.Tx, c tickets.Change) (*ticketMail, error) {
	tk := c.Ticket
	q, ok := n.queues[tk.Queue]
	if !ok {
		if n.first == "" {
			n.log.WarnContext(ctx, "no queue configured: mail not sent", "ticket", tk.Key)
			return nil, nil
		}
		n.log.WarnContext(ctx, "ticket in unknown queue: mailing as the first queue", "ticket", tk.Key,
			"queue", tk.Queue, "using", n.first)
		q = n.queues[n.first]
	}
	var (
		msgs  []*tickets.Message
		parts = c.Participants
	)
	if c.Event.Kind == tickets.EventCreated && parts != nil {
		// a ticket created in this transaction: its one message and its participants are in c
		if c.Message != nil {
			msgs = []*tickets.Message{c.Message}
		}
	} else {
		var err error
		if msgs, parts, err = tickets.NewStore(tx).Conversation(ctx, tk.ID); err != nil {
			return nil, err
		}
	}
	tm := &ticketMail{
		n:      n,
		ticket: tk,
		queue:  q,
		from:   mailout.Address{Name: n.desk.Name, Email: q.Addresses[0]},
	}
	for _, p := range parts {
		if p.Role == tickets.RoleWatcher {
			tm.watchers = append(tm.watchers, mailout.Address{Email: p.Email})
		}
	}
	requester := templates.Person{Email: tk.Requester}
	current := int64(0)
	if c.Message != nil {
		current = c.Message.ID
	}
	var history []templates.MessageView
	for i := len(msgs) - 1; i >= 0; i-- { // newest first
		m := msgs[i]
		isRequester := m.Direction == tickets.Inbound && strings.EqualFold(m.From, tk.Requester)
		if isRequester && requester.Name == "" {
			requester.Name = m.FromName
		}
		if isRequester && m.Visibility == tickets.Public && tm.lastID == "" {
			tm.lastID, tm.lastRefs = m.MessageID, m.References
		}
		if m.ID == current {
			continue
		}
		history = append(history, templates.MessageView{
			From: m.From, FromName: m.FromName, At: m.CreatedAt, Text: visible(m),
			Internal: m.Visibility == tickets.Internal,
		})
	}
	var assignee templates.Person
	if a, ok := n.agents[tk.Assignee]; ok && tk.Assignee != "" {
		assignee = templates.Person{Name: a.DisplayName, Email: a.Email}
	}
	tm.view = templates.View{
		Now:      n.now(),
		Location: n.loc,
		Desk:     templates.DeskView{Name: n.desk.Name, Address: q.Addresses[0]},
		Ticket: templates.TicketView{
			Key:       tk.Key,
			Subject:   baseSubject(tk.Key, tk.Subject),
			Kind:      string(tk.Kind),
			Status:    string(tk.Status),
			Priority:  string(tk.Priority),
			Queue:     tk.Queue,
			Requester: requester,
			Assignee:  assignee,
			CreatedAt: tk.CreatedAt,
		},
		Messages: history,
	}
	return tm, nil
}

// baseSubject is the ticket's subject without reply prefixes or its own key, which the templates
// put back once as "[KEY] ..." (subject.Outbound), so subjects never grow "Re: Re:".
func baseSubject(key, s string) string {
	return strings.TrimSpace(strings.TrimPrefix(subject.Outbound(key, s), "["+key+"]"))
}

// visible is a message's new text, quoted history stripped when the parser found it.
func visible(m *tickets.Message) string {
	if strings.TrimSpace(m.VisibleText) != "" {
		return m.VisibleText
	}
	return m.Text
}

// toRequester writes the named mail for the requester (and watchers) in the requester's language,
// answering the requester's last message.
func (tm *ticketMail) toRequester(name, key, body, autoSubmitted string) (mailout.Mail, error) {
	v := tm.view
	v.Body = body
	v.Recipient = v.Ticket.Requester
	lang := templates.PickLanguage(tm.ticket.Language, tm.queue.Language, tm.n.tmpl.Languages())
	payload, err := tm.n.draft(name, tm.ticket.Queue, lang, tm.ticket.Key, v)
	if err != nil {
		return mailout.Mail{}, err
	}
	to := append([]mailout.Address{{Name: v.Ticket.Requester.Name, Email: tm.ticket.Requester}}, tm.watchers...)
	return mailout.Mail{
		IdempotencyKey: key,
		TicketID:       tm.ticket.ID,
		Kind:           name,
		From:           tm.from,
		To:             to,
		Compose:        payload,
		InReplyTo:      tm.lastID,
		References:     tm.lastRefs,
		AutoSubmitted:  autoSubmitted,
		NewTicket:      tm.fresh,
	}, nil
}

// agentMails writes the named mail once per language among the agents in who (agent names) and
// addresses it to all agents of that language, keyed key + ":" + language: a queue of ten agents costs
// one rendering and one outbox row, not ten. Unknown agent names are skipped. A mail to a single agent
// greets them by name.
func (tm *ticketMail) agentMails(name, key, body string, who []string) ([]mailout.Mail, error) {
	root := tm.n.ids.MessageID(tm.ticket.ID, "") // one thread per ticket in the agents' clients
	var (
		langs  []string
		byLang = map[string][]mailout.Address{}
		seen   = map[string]bool{}
	)
	for _, agentName := range who {
		a, ok := tm.n.agents[agentName]
		if !ok || a.Email == "" || seen[strings.ToLower(a.Email)] {
			continue
		}
		seen[strings.ToLower(a.Email)] = true
		lang := templates.PickLanguage(a.Language, tm.queue.Language, tm.n.tmpl.Languages())
		if _, ok := byLang[lang]; !ok {
			langs = append(langs, lang)
		}
		byLang[lang] = append(byLang[lang], mailout.Address{Name: a.DisplayName, Email: a.Email})
	}
	var out []mailout.Mail
	for _, lang := range langs {
		to := byLang[lang]
		v := tm.view
		v.Body = body
		v.Recipient = templates.Person{}
		if len(to) == 1 {
			v.Recipient = templates.Person{Name: to[0].Name, Email: to[0].Email}
		}
		payload, err := tm.n.draft(name, tm.ticket.Queue, lang, tm.ticket.Key, v)
		if err != nil {
			return nil, err
		}
		out = append(out, mailout.Mail{
			IdempotencyKey: key + ":" + lang,
			TicketID:       tm.ticket.ID,
			Kind:           name,
			From:           tm.from,
			To:             to,
			Compose:        payload,
			InReplyTo:      root,
			AutoSubmitted:  mailout.AutoGenerated,
			Internal:       true,
			NewTicket:      tm.fresh,
		})
	}
	return out, nil
}
