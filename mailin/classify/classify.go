// Package classify decides what kind of sender produced an inbound message: a person, a mail
// system reporting a delivery failure, an auto-responder, a read receipt, a mailing list, or the
// desk itself. It is pure: no database, no network, no clock, and it never panics on hostile
// input. Ingest uses the Class to honour the "never mail a machine" invariant.
//
// Precedence, first match wins:
//
//	loop > bounce > report > mdn > autoreply > list > normal
//
// loop comes first because nothing the desk sent to itself may be processed again. A delivery
// failure is recognised before auto-reply headers because MTAs mark their bounces with
// Auto-Submitted too (RFC 3464 §2, RFC 3834 §5). Non-failure DSNs and feedback reports (class
// report) and read receipts (mdn) are also auto-submitted, so they precede autoreply. list is
// the weakest signal: a person wrote the message, a list distributed it.
//
// The signals, in short (each rule's doc comment has the details and the RFCs):
//
//   - loop: our loop header valued with our domain, our own Message-ID, From a desk address;
//   - bounce/report: machine-readable report parts (RFC 3464 delivery-status, RFC 5965
//     feedback-report), Amazon SES JSON notifications, and plain-text bounces recognised by
//     X-Failed-Recipients, X-MS-Exchange-Message-Is-Ndr, a mailer-daemon/postmaster sender, or
//     a bounce subject together with a bounce text and machine evidence;
//   - mdn: RFC 8098 disposition-notification parts, "Read:" subjects with a receipt sentence;
//   - autoreply: Auto-Submitted other than "no" (RFC 3834 §5), X-Autoreply and similar fields,
//     Precedence auto_reply/bulk/junk without list headers, auto-reply subjects in many
//     languages, absence subjects with a weak machine signal, a null Return-Path;
//   - list: List-* fields (RFC 2369, RFC 2919), X-BeenThere, Mailing-List, Precedence: list.
//
// Subject rules are anchored at the start of the subject, so "Re:" and "Fw:" subjects (a person
// replying to or forwarding machine mail) never match them.
package classify

import (
	"net/textproto"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// Class names the kind of sender behind a message.
type Class string

// The classes, in precedence order (see the package documentation).
const (
	// ClassLoop is mail the desk sent itself: it carries our loop header, its own Message-ID is on
	// our domain, or it is From one of the desk's addresses.
	ClassLoop Class = "loop"
	// ClassBounce is a delivery failure report: at least one recipient failed for good
	// (RFC 3464 Action: failed) or a non-standard MTA text says the message was not delivered, or a
	// non-standard text delay warning (a soft bounce: no recipient is Hard, none is marked
	// undeliverable).
	ClassBounce Class = "bounce"
	// ClassReport is machine-generated mail about delivery that is not a failure: an RFC 3464 delay or
	// a success notice (RFC 3464 Action: delayed, delivered, relayed, expanded) or an abuse
	// feedback report (RFC 5965). Result.Bounce is set for delivery reports so callers can
	// record the delay, but no address is undeliverable.
	ClassReport Class = "report"
	// ClassMDN is a read receipt (RFC 8098) or an Outlook/Notes style "Read:" receipt.
	ClassMDN Class = "mdn"
	// ClassAutoreply is an auto-responder message (vacation, out of office, ticket confirmation from
	// another system) or other auto-submitted mail (RFC 3834).
	ClassAutoreply Class = "autoreply"
	// ClassList is mail distributed by a mailing list or bulk sender (RFC 2369, RFC 2919).
	ClassList Class = "list"
	// ClassNormal is mail written by a person to the desk.
	ClassNormal Class = "normal"
)

// Automated reports whether a machine wrote the message (loop, bounce, report, mdn, autoreply).
// Automated mail never opens a ticket and never gets an acknowledgement. List and normal mail
// were written by a person; whether list mail is acknowledged is ingest policy.
func (c Class) Automated() bool {
	switch c {
	case ClassLoop, ClassBounce, ClassReport, ClassMDN, ClassAutoreply:
		return true
	}
	return false
}

// DefaultLoopHeader is the loop header deskd writes on every message it sends.
const DefaultLoopHeader = "X-Deskd-Loop"

// Options describe the desk so that its own mail can be recognised.
type Options struct {
	// DeskAddresses are the desk's own addresses; compared case-insensitively.
	DeskAddresses []string
	// DeskDomain is the desk's domain: the value deskd writes in its loop header and the
	// right-hand side of the Message-IDs it generates. A loop header naming another domain is
	// another deskd's mail, not ours. Empty accepts any loop header value and disables the
	// Message-ID domain rule.
	DeskDomain string
	// OwnMessageID, when set, reports whether a Message-ID (without angle brackets) was made by
	// this desk, typically by verifying the signed token in it. It replaces the DeskDomain
	// comparison of the Message-ID rule, which is only safe when no mail client of the
	// organisation writes Message-IDs on that domain (Thunderbird uses the sender's domain).
	OwnMessageID func(id string) bool
	// LoopHeader is the header field deskd writes on outbound mail; DefaultLoopHeader when empty.
	LoopHeader string
}

// Result is the outcome of Classify.
type Result struct {
	Class Class
	// Reason says in words which rule matched, e.g.
	// "RFC 3464 delivery-status: action=failed status=5.1.1" or "Auto-Submitted: auto-replied".
	Reason string
	// Bounce holds the per-recipient details of a delivery report. It is set for class Bounce
	// and for delivery-status reports of class Report (delays, successes); nil otherwise.
	Bounce *Bounce
}

// Bounce describes a delivery status report.
type Bounce struct {
	// Recipients are the reported recipients in report order; empty when a non-standard
	// bounce names none that could be extracted.
	Recipients []BounceRecipient
	// OriginalMessageID is the Message-ID of the message the report is about, without angle
	// brackets, taken from the returned headers (text/rfc822-headers, message/rfc822), the
	// returned copy in the text, or In-Reply-To/References; "" when none is found.
	OriginalMessageID string
}

// Failed reports whether at least one recipient failed for good (Action: failed).
func (b *Bounce) Failed() bool {
	if b == nil {
		return false
	}
	for _, r := range b.Recipients {
		if r.Action == ActionFailed {
			return true
		}
	}
	return false
}

// Actions of RFC 3464 §2.3.3, lower-case.
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionDelivered = "delivered"
	ActionRelayed   = "relayed"
	ActionExpanded  = "expanded"
)

// BounceRecipient is one recipient of a delivery report.
type BounceRecipient struct {
	// Address is the recipient address, lower-cased, without the "rfc822;" address type:
	// Original-Recipient when present (the address we sent to), else Final-Recipient
	// (RFC 3464 §2.3.1, §2.3.2).
	Address string
	// Action is the RFC 3464 §2.3.3 action, lower-case ("failed", "delayed", ...).
	Action string
	// Status is the RFC 3463 enhanced status code ("5.1.1"), "" when unknown.
	Status string
	// Diagnostic is the Diagnostic-Code (RFC 3464 §2.3.6) or the MTA's error text, unfolded.
	Diagnostic string
	// Hard is true when the address itself is permanently undeliverable (unknown user, unknown
	// domain, moved): Action failed, a permanent (5.x.x) status or text, and nothing suggesting
	// a transient or policy cause (full mailbox, disabled account, spam filter, blocked IP).
	// Only hard recipients may be marked undeliverable.
	Hard bool
	// Retryable is true when sending again later may succeed: the delivery was delayed, the
	// status is transient (RFC 3463 class 4), or the failure has a soft cause (full mailbox,
	// disabled account, spam or policy block, expiry). False for hard failures, for permanent
	// failures of unknown cause, and for successful deliveries.
	Retryable bool
}

// rules after the loop check, in precedence order (see the package documentation).
var rules = []func(*parse.Message) (Result, bool){
	classifyReport,     // RFC 3464 / RFC 8098 / RFC 5965 report parts: bounce, report, mdn
	classifySES,        // Amazon SES notifications: bounce, report
	classifyTextBounce, // non-standard bounces and delay warnings: bounce, report
	classifyTextMDN,    // "Read:" receipts: mdn
	classifyAutoreply,  // RFC 3834 and friends: autoreply
	classifyList,       // RFC 2369 / RFC 2919: list
}

// Classify decides the Class of m. It never fails: unknown or broken input is Normal unless a
// rule matches.
func Classify(m *parse.Message, o Options) Result {
	if m == nil {
		return Result{Class: ClassNormal, Reason: "no message"}
	}
	if o.LoopHeader == "" {
		o.LoopHeader = DefaultLoopHeader
	}
	if r, ok := classifyLoop(m, o); ok {
		return r
	}
	for _, rule := range rules {
		if r, ok := rule(m); ok {
			return r
		}
	}
	return Result{Class: ClassNormal, Reason: "no machine or list signal"}
}

// header returns the first value of a top-level header field, trimmed.
func header(m *parse.Message, name string) string {
	if m.Header == nil {
		return ""
	}
	return strings.TrimSpace(m.Header.Get(name))
}

// hasHeader reports whether a top-level header field is present, even if empty.
func hasHeader(m *parse.Message, name string) bool {
	if m.Header == nil {
		return false
	}
	_, ok := m.Header[textproto.CanonicalMIMEHeaderKey(name)]
	return ok
}
