package templates

import "time"

// View is everything a template may show. The caller maps its domain objects into it; templates
// see only these typed fields (plus .Subject, .Footer and .Lang, see the package comment). Strings
// are plain text, never HTML: the HTML bodies escape them. Zero values mean "unknown" or "none".
type View struct {
	// Now is the time of rendering, from the caller's injected clock; relative times ("in 2 h")
	// are computed against it.
	Now time.Time
	// Location is the zone in which times are shown; nil means UTC.
	Location *time.Location `json:"-"`

	Desk   DeskView
	Ticket TicketView
	// Recipient is the person this mail is addressed to (the greeting).
	Recipient Person

	// Body is the new text this mail is about: the agent's reply (reply), the requester's message
	// (ack, where it is quoted back; agent_new; agent_reply), the question (status_pending), an
	// optional note (status_resolved, status_closed, status_reopened, escalation). Plain text with
	// \n line breaks; unused by digest, dead_letter, loop_detected and command_error.
	Body string
	// Messages is the earlier conversation, newest first, not including Body. Mail to the requester
	// never shows messages marked Internal.
	Messages []MessageView

	// OldStatus and NewStatus describe a status change (status_* mail); ticket status values.
	OldStatus, NewStatus string

	Escalation EscalationView `json:",omitzero"` // escalation
	Digest     DigestView     `json:",omitzero"` // digest
	Delivery   DeliveryView   `json:",omitzero"` // dead_letter
	Loop       LoopView       `json:",omitzero"` // loop_detected
	Commands   []CommandIssue `json:",omitzero"` // command_error

	// Extra carries operator-defined values for override templates ({{index .Extra "phone"}}).
	Extra map[string]string `json:",omitzero"`
}

// DeskView describes the desk sending the mail.
type DeskView struct {
	Name    string // "IT Service Desk"
	Address string // the desk's address, e.g. "support@example.com"
	// ReplyHint is an optional desk-specific sentence shown where the mail explains how to reply
	// (e.g. "For outages call +49 30 1234-0."); "" shows nothing extra.
	ReplyHint string
	URL       string // optional portal or status page
}

// Person is a named mailbox.
type Person struct {
	Name  string
	Email string
}

// TicketView describes a ticket. Kind, Status and Priority hold the values of the tickets schema
// (incident/request/problem/change; new/open/pending/resolved/closed; P1..P4); templates show them
// with the label helper, which translates known values.
type TicketView struct {
	Key      string // "SD-1042"; subjects always carry it as "[SD-1042]"
	Subject  string // as the requester wrote it; untrusted
	Kind     string
	Status   string
	Priority string
	Queue    string
	// URL is an optional link to the ticket, shown to whoever gets the mail: give requester
	// mail a link the requester may open, or none.
	URL       string
	Requester Person
	Assignee  Person // zero when unassigned

	CreatedAt   time.Time
	ResponseDue *time.Time // nil when no first-response target is running
	ResolveDue  *time.Time // nil when no resolution target is running
}

// MessageView is one earlier message of the conversation.
type MessageView struct {
	From     string // address
	FromName string // display name, may be empty
	At       time.Time
	Text     string // visible text, quoted history already stripped
	Internal bool   // an agents-only note
}

// EscalationView describes one step of the SLA escalation ladder.
type EscalationView struct {
	Level    int       // step on the ladder, 1 for the first
	Clock    string    // which target: "response" or "resolution"
	Due      time.Time // when the target is or was due
	Breached bool      // the target has passed (else this is a warning)
	Reason   string    // why this escalation fired, plain text
}

// DigestView is a periodic report. It is a first cut for the digest work; fields may grow.
type DigestView struct {
	Title    string // e.g. "Weekly backlog"
	From, To time.Time
	Open     int // open tickets at the end of the period
	New      int // tickets created in the period
	Resolved int // tickets resolved in the period
	Breached int // SLA targets breached in the period
	Rows     []DigestRow
}

// DigestRow is one ticket listed in a digest.
type DigestRow struct {
	Key      string
	Subject  string
	Status   string
	Priority string
	Queue    string
	Assignee string
	Due      *time.Time // next SLA target, nil when none
	Breached bool
	URL      string
}

// DeliveryView describes mail that could not be delivered (dead_letter).
type DeliveryView struct {
	To        string    // the address that failed
	Subject   string    // subject of the failed mail
	Reason    string    // the server's answer or our reason, plain text
	Attempts  int       // delivery attempts made
	LastTried time.Time // time of the last attempt
}

// LoopView describes a suspected mail loop (loop_detected).
type LoopView struct {
	Address string // the address mail kept coming from
	Count   int    // messages seen within Window
	Window  time.Duration
	Until   *time.Time // automatic mail to Address is held until then; nil when open-ended
}

// CommandIssue is one rejected email command (command_error).
type CommandIssue struct {
	Line   string // the command line as written, e.g. "#status pendng"
	Reason string // why it was rejected, plain text
}

// inLocation returns v with every time moved to v.Location (UTC when nil). Slices holding times
// are copied, never modified in place.
func inLocation(v View) View {
	loc := v.Location
	if loc == nil {
		loc = time.UTC
	}
	at := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.In(loc)
	}
	atp := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := at(*t)
		return &u
	}
	v.Now = at(v.Now)
	v.Ticket.CreatedAt = at(v.Ticket.CreatedAt)
	v.Ticket.ResponseDue = atp(v.Ticket.ResponseDue)
	v.Ticket.ResolveDue = atp(v.Ticket.ResolveDue)
	if v.Messages != nil {
		ms := make([]MessageView, len(v.Messages))
		for i, m := range v.Messages {
			m.At = at(m.At)
			ms[i] = m
		}
		v.Messages = ms
	}
	v.Escalation.Due = at(v.Escalation.Due)
	v.Digest.From = at(v.Digest.From)
	v.Digest.To = at(v.Digest.To)
	if v.Digest.Rows != nil {
		rows := make([]DigestRow, len(v.Digest.Rows))
		for i, r := range v.Digest.Rows {
			r.Due = atp(r.Due)
			rows[i] = r
		}
		v.Digest.Rows = rows
	}
	v.Delivery.LastTried = at(v.Delivery.LastTried)
	v.Loop.Until = atp(v.Loop.Until)
	return v
}

// publicOnly returns the messages not marked Internal, in order, as a new slice.
func publicOnly(ms []MessageView) []MessageView {
	out := make([]MessageView, 0, len(ms))
	for _, m := range ms {
		if !m.Internal {
			out = append(out, m)
		}
	}
	return out
}
