// Package thread decides which ticket an inbound message belongs to. It is pure: the ticket look-ups
// are passed in as a Lookup (implemented over Postgres by the tickets store), and there is no clock,
// network or global state.
//
// The order of evidence, first that holds wins (DESIGN.md "thread"):
//  1. a token signed by deskd, in a Message-ID of ours that the message replies to, or in a
//     plus-address of ours it was sent to (internal/token);
//  2. In-Reply-To, then References newest first, matched against stored Message-IDs
//     (RFC 5322 §3.6.4, the fields RFC 5256 REFERENCES threading is built on);
//  3. a ticket key in the subject, only from the requester, a participant, an agent or (optionally)
//     the requester's domain, since anyone can type "[SD-1042]";
//  4. otherwise a new ticket.
//
// A match on a closed ticket opens a new ticket linked to it. Every Decision carries a human-readable
// reason, stored on the message, including evidence that was seen and rejected.
package thread

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/deskd/deskd/internal/subject"
	"github.com/deskd/deskd/internal/token"
)

// MaxCandidates bounds how many referenced Message-IDs Decide considers: In-Reply-To first, then the
// newest References. Hostile mail can carry thousands; real threads need the last few.
const MaxCandidates = 64

// maxNotes bounds how many pieces of rejected evidence a reason lists.
const maxNotes = 4

// maxShownID bounds how much of a Message-ID or address a reason quotes, in bytes.
const maxShownID = 160

// ErrNotFound is returned by a Lookup when no ticket matches. Decide treats it as "no match" and goes
// on to the next rule; any other Lookup error aborts Decide.
var ErrNotFound = errors.New("thread: not found")

// TicketRef is what threading needs to know about a ticket.
type TicketRef struct {
	ID        int64
	Key       string // e.g. "SD-1042"
	Closed    bool   // closed tickets are not reopened by mail: a reply opens a linked ticket
	Requester string // lower-case address
	// Participants are the watchers' and agents' lower-case addresses.
	Participants []string
}

// Lookup finds tickets. Implementations must return ErrNotFound (possibly wrapped) when nothing matches.
type Lookup interface {
	// TicketByID returns the ticket with id.
	TicketByID(ctx context.Context, id int64) (TicketRef, error)
	// TicketByMessageID receives non-empty canonical Message-IDs (see CanonicalID) in priority order and
	// returns the ticket of the first of them, in that order, that is stored as the Message-ID of an
	// inbound or outbound message, together with that ID.
	TicketByMessageID(ctx context.Context, ids []string) (TicketRef, string, error)
	// TicketByKey returns the ticket with key, e.g. "SD-1042", as formatted by subject.FormatKey.
	TicketByKey(ctx context.Context, key string) (TicketRef, error)
}

// Input is the threading-relevant part of an inbound message.
type Input struct {
	// From is the author's address, bare or with a display name.
	From string
	// To, Cc and DeliveredTo are recipient addresses, bare or with display names.
	To, Cc, DeliveredTo []string
	Subject             string
	// MessageID is the message's own Message-ID, in any form; it never threads the message to itself.
	MessageID string
	// InReplyTo and References hold msg-ids, oldest first: each element may be one ID (with or without
	// brackets, as mailin/parse gives them) or a whole raw header value, which is split with ParseIDList.
	InReplyTo  []string
	References []string
}

// Options configure Decide.
type Options struct {
	// Signer verifies tokens; nil disables rule 1.
	Signer *token.Signer
	// KeyPrefixes are the ticket key prefixes of the configured queues, e.g. ["SD", "CHG"].
	KeyPrefixes []string
	// IsAgent reports whether a lower-case address belongs to an agent; nil means nobody is.
	IsAgent func(addr string) bool
	// AcceptRequesterDomain lets anyone from the requester's domain thread by subject key. Leave it off
	// when requesters use shared mail domains (gmail.com and the like): anyone there could then add
	// mail to their tickets.
	AcceptRequesterDomain bool
}

// Action says what ingest does with the message.
type Action string

// The actions of a Decision.
const (
	Append    Action = "append"     // add the message to Decision.TicketID
	NewTicket Action = "new_ticket" // open a ticket, linked to Decision.LinkTo when that is non-zero
)

// Via names the rule that decided.
type Via string

// The rules of Decide, in order.
const (
	ViaToken      Via = "token"
	ViaHeader     Via = "header"
	ViaSubjectKey Via = "subject_key"
	ViaNew        Via = "new"
)

// Decision is the outcome of Decide.
type Decision struct {
	Action    Action
	TicketID  int64  // the ticket to append to; 0 for NewTicket
	TicketKey string // its key; "" for NewTicket
	// LinkTo and LinkKey name the closed ticket that a NewTicket follows up; 0 and "" otherwise.
	LinkTo  int64
	LinkKey string
	// Via is the rule that matched (also for a NewTicket linked to a closed ticket); ViaNew when none did.
	Via Via
	// Reason explains the decision for people, e.g. "threaded via In-Reply-To <a@b>", followed by any
	// evidence that was rejected ("; ignored invalid signed token in References <…>"). It is valid
	// UTF-8 without control characters.
	Reason string
}

// Decide returns the ticket that the message in belongs to, trying the rules in the package
// documentation in order. It returns an error only when lk fails with something other than ErrNotFound;
// hostile or malformed input just leads to a new ticket with a reason.
func Decide(ctx context.Context, in Input, opts Options, lk Lookup) (Decision, error) {
	d := decider{in: in, opts: opts, lk: lk, tried: make(map[int64]bool)}
	d.refs = candidates(in)
	for i, rule := range []func(context.Context) (Decision, bool, error){d.byToken, d.byHeader, d.bySubjectKey} {
		dec, ok, err := rule(ctx)
		if err != nil {
			return Decision{}, err
		}
		if !ok {
			continue
		}
		if i == 0 && dec.Action == NewTicket && dec.LinkTo != 0 {
			// The token names a closed ticket. When the message also answers a stored message of an
			// open ticket (typically the follow-up opened by an earlier reply to the closed one), it
			// belongs there: otherwise every reply in that conversation would open yet another ticket.
			hd, hok, err := d.byHeader(ctx)
			if err != nil {
				return Decision{}, err
			}
			if hok && hd.Action == Append {
				hd.Reason = d.withNotes(hd.Reason + fmt.Sprintf(" (preferred over the signed token of closed ticket %s)", dec.LinkKey))
				return hd, nil
			}
		}
		dec.Reason = d.withNotes(dec.Reason)
		return dec, nil
	}
	return Decision{Action: NewTicket, Via: ViaNew, Reason: d.withNotes("new ticket: no thread match")}, nil
}

// ref is one referenced Message-ID and the header it came from.
type ref struct {
	id, header string
}

// candidates lists the referenced IDs in priority order: In-Reply-To, then References newest first;
// without duplicates, without the message's own ID, at most MaxCandidates.
func candidates(in Input) []ref {
	own := CanonicalID(in.MessageID)
	seen := map[string]bool{"": true, own: true}
	var out []ref
	add := func(ids []string, header string) {
		for _, id := range ids {
			if !seen[id] && len(out) < MaxCandidates {
				seen[id] = true
				out = append(out, ref{id: id, header: header})
			}
		}
	}
	add(splitIDs(in.InReplyTo), "In-Reply-To")
	refs := splitIDs(in.References)
	for i, j := 0, len(refs)-1; i < j; i, j = i+1, j-1 {
		refs[i], refs[j] = refs[j], refs[i]
	}
	add(refs, "References")
	return out
}

// splitIDs canonicalises elements that are single IDs or whole header values, keeping their order.
func splitIDs(elems []string) []string {
	var ids []string
	for _, e := range elems {
		if parsed := ParseIDList(e); len(parsed) > 0 {
			ids = append(ids, parsed...)
		} else if id := CanonicalID(e); id != "" {
			ids = append(ids, id) // a bare ID without "@"
		}
	}
	return ids
}

type decider struct {
	in    Input
	opts  Options
	lk    Lookup
	refs  []ref
	tried map[int64]bool // ticket IDs whose token was already looked up
	notes []string
}

func (d *decider) note(format string, args ...any) {
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

func (d *decider) withNotes(reason string) string {
	if len(d.notes) == 0 {
		return reason
	}
	shown := d.notes
	if len(shown) > maxNotes {
		shown = append(shown[:maxNotes:maxNotes], fmt.Sprintf("%d more", len(d.notes)-maxNotes))
	}
	return reason + "; " + strings.Join(shown, "; ")
}

// found turns a matched ticket into a Decision: Append, or NewTicket linked to it when it is closed.
func found(t TicketRef, via Via, reason string) Decision {
	if t.Closed {
		return Decision{Action: NewTicket, LinkTo: t.ID, LinkKey: t.Key, Via: via,
			Reason: fmt.Sprintf("new ticket: reply to closed ticket %s (%s)", t.Key, reason)}
	}
	return Decision{Action: Append, TicketID: t.ID, TicketKey: t.Key, Via: via, Reason: reason}
}

// byToken is rule 1: a verified token in a referenced Message-ID or a recipient address.
func (d *decider) byToken(ctx context.Context) (Decision, bool, error) {
	s := d.opts.Signer
	if s == nil {
		return Decision{}, false, nil
	}
	for _, r := range d.refs {
		id, err := s.TicketFromMessageID(r.id)
		if errors.Is(err, token.ErrNoToken) {
			continue
		}
		where := fmt.Sprintf("%s <%s>", r.header, shorten(r.id))
		if dec, ok, err := d.tokenTicket(ctx, id, err, where); ok || err != nil {
			return dec, ok, err
		}
	}
	for _, list := range []struct {
		header string
		addrs  []string
	}{{"To", d.in.To}, {"Cc", d.in.Cc}, {"Delivered-To", d.in.DeliveredTo}} {
		for _, a := range list.addrs {
			id, err := s.TicketFromAddress(a)
			if errors.Is(err, token.ErrNoToken) {
				continue
			}
			where := fmt.Sprintf("%s address <%s>", list.header, shorten(address(a)))
			if dec, ok, err := d.tokenTicket(ctx, id, err, where); ok || err != nil {
				return dec, ok, err
			}
		}
	}
	return Decision{}, false, nil
}

// tokenTicket handles the verification result (id, verr) of a token found at where.
func (d *decider) tokenTicket(ctx context.Context, id int64, verr error, where string) (Decision, bool, error) {
	switch {
	case verr != nil:
		d.note("ignored invalid signed token in %s", where)
		return Decision{}, false, nil
	case d.tried[id]:
		return Decision{}, false, nil
	}
	d.tried[id] = true
	t, err := d.lk.TicketByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		d.note("signed token in %s names unknown ticket %d", where, id)
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("look up ticket %d: %w", id, err)
	}
	return found(t, ViaToken, "threaded via signed token in "+where), true, nil
}

// byHeader is rule 2: a referenced Message-ID that is stored.
func (d *decider) byHeader(ctx context.Context) (Decision, bool, error) {
	if len(d.refs) == 0 {
		return Decision{}, false, nil
	}
	ids := make([]string, len(d.refs))
	for i, r := range d.refs {
		ids[i] = r.id
	}
	t, matched, err := d.lk.TicketByMessageID(ctx, ids)
	if errors.Is(err, ErrNotFound) {
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("look up ticket by message-id: %w", err)
	}
	matched = CanonicalID(matched)
	header := "References"
	for _, r := range d.refs {
		if r.id == matched {
			header = r.header
			break
		}
	}
	return found(t, ViaHeader, fmt.Sprintf("threaded via %s <%s>", header, shorten(matched))), true, nil
}

// bySubjectKey is rule 3: a ticket key in the subject, from someone entitled to use it.
func (d *decider) bySubjectKey(ctx context.Context) (Decision, bool, error) {
	key, ok := subject.FindKey(d.in.Subject, d.opts.KeyPrefixes)
	if !ok {
		return Decision{}, false, nil
	}
	t, err := d.lk.TicketByKey(ctx, key)
	if errors.Is(err, ErrNotFound) {
		d.note("subject key %s names no ticket", key)
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("look up ticket %s: %w", key, err)
	}
	who := d.senderRole(t)
	if who == "" {
		d.note("subject key %s ignored: sender not a participant", key)
		return Decision{}, false, nil
	}
	return found(t, ViaSubjectKey, fmt.Sprintf("subject key %s from %s", key, who)), true, nil
}

// senderRole says why the sender may thread by subject key into t, or "" when they may not.
func (d *decider) senderRole(t TicketRef) string {
	from := address(d.in.From)
	if from == "" {
		return ""
	}
	switch {
	case from == strings.ToLower(t.Requester):
		return "requester"
	case containsFold(t.Participants, from):
		return "participant"
	case d.opts.IsAgent != nil && d.opts.IsAgent(from):
		return "agent"
	case d.opts.AcceptRequesterDomain && domain(from) != "" && domain(from) == domain(strings.ToLower(t.Requester)):
		return "requester's domain"
	}
	return ""
}

// address returns the lower-case bare address in s ("Name <a@b>" or "a@b"), "" when there is none.
func address(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return strings.ToLower(a.Address)
	}
	if lt := strings.LastIndexByte(s, '<'); lt >= 0 {
		s = s[lt+1:]
		if gt := strings.IndexByte(s, '>'); gt >= 0 {
			s = s[:gt]
		}
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.ContainsAny(s, " \t\r\n\"") {
		return ""
	}
	return s
}

// domain returns the part of a bare address after its last "@", "" when there is none.
func domain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return ""
	}
	return addr[at+1:]
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// shorten cuts s for quoting in a reason, on a rune boundary, and makes it printable.
func shorten(s string) string {
	s = CanonicalID(s) // no whitespace, controls or brackets; valid UTF-8
	if len(s) <= maxShownID {
		return s
	}
	cut := maxShownID
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
