// Package tickets holds the service-desk domain: tickets, messages, participants, links and the
// append-only event log, the status state machine, a Store over PostgreSQL and a Service whose use
// cases each run in one transaction, write exactly one event, and tell the Mailer about the change
// inside that transaction so the mail it causes commits with it (DESIGN.md invariants 1 and 2).
package tickets

import (
	"errors"
	"fmt"
	"time"
)

// Errors callers check with errors.Is.
var (
	// ErrNotFound: no ticket (or message) matches.
	ErrNotFound = errors.New("not found")
	// ErrTransition: the requested status change is not allowed from the current status.
	ErrTransition = errors.New("status transition not allowed")
	// ErrNoChange: the requested value equals the current one; no event is written.
	ErrNoChange = errors.New("no change")
	// ErrInvalid: an argument is not a valid value (unknown status, priority, kind, link kind, empty field).
	ErrInvalid = errors.New("invalid value")
)

// Kind is the ITIL record type of a ticket.
type Kind string

// Ticket kinds.
const (
	KindIncident Kind = "incident"
	KindRequest  Kind = "request"
	KindProblem  Kind = "problem"
	KindChange   Kind = "change"
)

// Status is where a ticket stands in its life cycle.
type Status string

// Statuses, in life-cycle order.
const (
	StatusNew      Status = "new"
	StatusOpen     Status = "open"
	StatusPending  Status = "pending"
	StatusResolved Status = "resolved"
	StatusClosed   Status = "closed"
)

// Priority is P1 (critical) to P4 (low).
type Priority string

// Priorities.
const (
	P1 Priority = "P1"
	P2 Priority = "P2"
	P3 Priority = "P3"
	P4 Priority = "P4"
)

// ActorKind says who caused an event.
type ActorKind string

// Actor kinds.
const (
	ActorUser   ActorKind = "user"
	ActorAgent  ActorKind = "agent"
	ActorRule   ActorKind = "rule"
	ActorSLA    ActorKind = "sla"
	ActorSystem ActorKind = "system"
)

// Actor is who caused a change: a requester's address, an agent's name, a rule name, "sla", "deskd".
type Actor struct {
	Kind ActorKind
	Name string
}

// Role of a participant on a ticket.
type Role string

// Participant roles.
const (
	RoleRequester Role = "requester"
	RoleWatcher   Role = "watcher"
	RoleAgent     Role = "agent"
)

// LinkKind is the relation between two tickets.
type LinkKind string

// Link kinds. A problem_incident link goes from the problem to the incident it explains; follow_up from
// a new ticket to the closed ticket its requester replied to.
const (
	LinkProblemIncident LinkKind = "problem_incident"
	LinkRelated         LinkKind = "related"
	LinkDuplicate       LinkKind = "duplicate"
	LinkFollowUp        LinkKind = "follow_up"
)

// Direction of a message.
type Direction string

// Directions.
const (
	Inbound  Direction = "in"
	Outbound Direction = "out"
)

// Visibility of a message: public messages are the conversation with the requester, internal ones
// (notes) are for agents only.
type Visibility string

// Visibilities.
const (
	Public   Visibility = "public"
	Internal Visibility = "internal"
)

// Ticket is one incident, request, problem or change.
type Ticket struct {
	ID              int64
	Key             string // e.g. SD-1042, unique
	Prefix          string
	Number          int64
	Kind            Kind
	Status          Status
	Priority        Priority
	Queue           string
	Requester       string // lower-case address
	Assignee        string // agent name, "" when unassigned
	Subject         string
	Language        string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	FirstResponseAt *time.Time
	ResolvedAt      *time.Time
	ClosedAt        *time.Time
}

// Message is one mail or note on a ticket.
type Message struct {
	ID           int64
	TicketID     int64
	RawMailID    *int64 // the stored inbound mail, nil for outbound mail and notes
	Direction    Direction
	Visibility   Visibility
	Class        string // normal, bounce, autoreply, mdn, list, loop, note
	AuthorKind   ActorKind
	Author       string
	MessageID    string // Message-ID as written, without angle brackets (compared lower-cased)
	InReplyTo    string
	References   []string
	From         string
	FromName     string
	To           []string
	Cc           []string
	Subject      string
	Text         string
	VisibleText  string
	HTML         string
	ThreadReason string
	CreatedAt    time.Time
	Attachments  []Attachment
}

// Attachment is a file on a message; Data is stored once per SHA-256 (blobs table).
type Attachment struct {
	ID          int64
	Filename    string
	ContentType string
	ContentID   string
	Inline      bool
	Size        int64
	SHA256      []byte
	Data        []byte // set when creating; loaded only on request
	// RawPart, when creating an attachment of a message with a raw mail, is the attachment's
	// 1-based position among the raw mail's attachments (parse order): new content is then not
	// copied into blobs but read back from the raw mail (Store.AttachmentData). 0 stores Data.
	RawPart int
}

// Event is one entry of the append-only audit log.
type Event struct {
	ID        int64
	TicketID  int64
	At        time.Time
	Actor     Actor
	Kind      EventKind
	Before    string
	After     string
	Why       string
	MessageID *int64
}

// EventKind names what happened.
type EventKind string

// Event kinds written by the Service; other packages (mailout, sla) write their own kinds.
const (
	EventCreated          EventKind = "created"
	EventMessage          EventKind = "message_added"
	EventNote             EventKind = "note_added"
	EventStatus           EventKind = "status_changed"
	EventPriority         EventKind = "priority_changed"
	EventAssignee         EventKind = "assignee_changed"
	EventQueue            EventKind = "queue_changed"
	EventKindChanged      EventKind = "kind_changed"
	EventLinked           EventKind = "linked"
	EventWatcherAdded     EventKind = "watcher_added"
	EventWatcherRemoved   EventKind = "watcher_removed"
	EventMachineMessage   EventKind = "machine_message"
	EventAddressUndeliver EventKind = "address_undeliverable"
)

// transitions lists every allowed status change. Closed is final: a reply to a closed ticket opens a
// new ticket linked to it (mail-in's job), it never reopens.
var transitions = map[Status][]Status{
	StatusNew:      {StatusOpen, StatusPending, StatusResolved, StatusClosed},
	StatusOpen:     {StatusPending, StatusResolved, StatusClosed},
	StatusPending:  {StatusOpen, StatusResolved, StatusClosed},
	StatusResolved: {StatusOpen, StatusClosed},
	StatusClosed:   nil,
}

// CanTransition reports whether a ticket in status from may move to status to.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// AfterRequesterReply returns the status a ticket takes when its requester replies: a pending or
// resolved ticket reopens; other statuses stay. ok is false for a closed ticket, which never reopens.
func AfterRequesterReply(s Status) (next Status, ok bool) {
	switch s {
	case StatusPending, StatusResolved:
		return StatusOpen, true
	case StatusClosed:
		return s, false
	default:
		return s, true
	}
}

// ParseStatus validates s.
func ParseStatus(s string) (Status, error) {
	if _, ok := transitions[Status(s)]; ok {
		return Status(s), nil
	}
	return "", fmt.Errorf("%w: status %q (want new, open, pending, resolved or closed)", ErrInvalid, s)
}

// ParsePriority validates s (P1-P4, case-insensitive).
func ParsePriority(s string) (Priority, error) {
	switch p := Priority(upper(s)); p {
	case P1, P2, P3, P4:
		return p, nil
	}
	return "", fmt.Errorf("%w: priority %q (want P1, P2, P3 or P4)", ErrInvalid, s)
}

// ParseKind validates s.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindIncident, KindRequest, KindProblem, KindChange:
		return k, nil
	}
	return "", fmt.Errorf("%w: kind %q (want incident, request, problem or change)", ErrInvalid, s)
}

// ParseLinkKind validates s.
func ParseLinkKind(s string) (LinkKind, error) {
	switch k := LinkKind(s); k {
	case LinkProblemIncident, LinkRelated, LinkDuplicate, LinkFollowUp:
		return k, nil
	}
	return "", fmt.Errorf("%w: link kind %q (want problem_incident, related, duplicate or follow_up)", ErrInvalid, s)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
