package classify

import (
	"fmt"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// Media types of machine-readable report parts.
var (
	// RFC 3464 §2.1, RFC 6533 §6.1.
	deliveryStatusTypes = []string{"message/delivery-status", "message/global-delivery-status"}
	// RFC 8098 §3.1, RFC 6533 §6.3.
	dispositionTypes = []string{"message/disposition-notification", "message/global-disposition-notification"}
	// RFC 5965 §3.1.
	feedbackTypes = []string{"message/feedback-report"}
	// Returned content: RFC 6522 §4 text/rfc822-headers, RFC 2046 §5.2.1 message/rfc822,
	// RFC 6532 §3.7 message/global and message/global-headers, plus the non-standard
	// message/rfc822-headers some MTAs write.
	returnedTypes = []string{"text/rfc822-headers", "message/rfc822", "message/global",
		"message/global-headers", "message/rfc822-headers"}
)

// attachment returns the first attachment with one of the media types, nil when none.
func attachment(m *parse.Message, types ...string) *parse.Attachment {
	if as := attachments(m, types...); len(as) > 0 {
		return as[0]
	}
	return nil
}

// attachments returns the attachments with one of the media types, in order.
func attachments(m *parse.Message, types ...string) []*parse.Attachment {
	var out []*parse.Attachment
	for i := range m.Attachments {
		if containsFold(types, m.Attachments[i].ContentType) {
			out = append(out, &m.Attachments[i])
		}
	}
	return out
}

// reportType returns the report-type parameter of a multipart/report message (RFC 6522 §3),
// lower-case; "" for other messages.
func reportType(m *parse.Message) string {
	if !strings.EqualFold(m.ContentType, "multipart/report") {
		return ""
	}
	for k, v := range m.ContentTypeParams {
		if strings.EqualFold(k, "report-type") {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}

// classifyReport handles multipart/report messages and any message carrying a
// machine-readable report part: RFC 3464 delivery status, RFC 8098 disposition notification,
// RFC 5965 feedback report.
func classifyReport(m *parse.Message) (Result, bool) {
	rt := reportType(m)
	ds := attachments(m, deliveryStatusTypes...)
	if len(ds) > 0 || rt == "delivery-status" {
		var recips []dsnRecipient
		for _, a := range ds {
			// Some MTAs label their human-readable text message/delivery-status too.
			recips = append(recips, parseDSN(string(a.Data))...)
		}
		if len(recips) > 0 {
			return dsnResult(m, recips), true
		}
		// A report without readable recipients: the human-readable part may still say what
		// happened; otherwise it is a report of unknown outcome, never a ticket.
		if r, ok := classifyTextBounce(m); ok {
			return r, true
		}
		return Result{Class: ClassReport, Reason: "RFC 3464 delivery-status report without recipients",
			Bounce: &Bounce{OriginalMessageID: originalMessageID(m, returnedText(m))}}, true
	}
	if dn := attachment(m, dispositionTypes...); dn != nil || rt == "disposition-notification" {
		reason := "RFC 8098 disposition-notification"
		if dn != nil {
			if d := firstField(string(dn.Data), "disposition"); d != "" {
				reason += ": " + d
			}
		}
		return Result{Class: ClassMDN, Reason: reason}, true
	}
	if fb := attachment(m, feedbackTypes...); fb != nil || rt == "feedback-report" {
		reason := "RFC 5965 feedback-report"
		if fb != nil {
			if t := firstField(string(fb.Data), "feedback-type"); t != "" {
				reason += ": feedback-type=" + strings.ToLower(t)
			}
		}
		return Result{Class: ClassReport, Reason: reason}, true
	}
	return Result{}, false
}

// firstField returns the first value of the named field anywhere in a report body.
func firstField(text, name string) string {
	for _, g := range parseFieldGroups(text, -1) {
		for _, f := range g {
			if f.name == name {
				return f.value
			}
		}
	}
	return ""
}

// dsnRecipient is one per-recipient block of an RFC 3464 delivery-status body (§2.3).
type dsnRecipient struct {
	final, original, action, status, diag string
}

// parseDSN reads the per-recipient fields of a message/delivery-status body (RFC 3464 §2.1).
// Blocks are normally separated by blank lines; when an MTA omits the blank line, a repeated
// per-recipient field starts the next recipient.
func parseDSN(text string) []dsnRecipient {
	var out []dsnRecipient
	for _, g := range parseFieldGroups(text, -1) {
		var cur dsnRecipient
		seen := map[string]bool{}
		flush := func() {
			if (cur.final != "" || cur.original != "") && len(out) < maxRecipients {
				out = append(out, cur)
			}
			cur = dsnRecipient{}
			seen = map[string]bool{}
		}
		for _, f := range g {
			switch f.name {
			case "final-recipient", "original-recipient", "action", "status", "diagnostic-code":
			default:
				continue
			}
			if seen[f.name] {
				flush()
			}
			seen[f.name] = true
			switch f.name {
			case "final-recipient":
				cur.final = f.value
			case "original-recipient":
				cur.original = f.value
			case "action":
				cur.action = f.value
			case "status":
				cur.status = f.value
			case "diagnostic-code":
				cur.diag = f.value
			}
		}
		flush()
	}
	return out
}

// dsnResult turns parsed RFC 3464 recipients into a Result: Bounce when any recipient failed,
// Report otherwise (RFC 3464 §2.3.3: delayed, delivered, relayed and expanded are not failures).
func dsnResult(m *parse.Message, recips []dsnRecipient) Result {
	human, returned := splitReturned(normalizeNewlines(clip(m.Text)))
	b := &Bounce{OriginalMessageID: originalMessageID(m, returned)}
	for _, d := range recips {
		r := BounceRecipient{Diagnostic: d.diag}
		r.Address = cleanAddress(d.final)
		if o := cleanAddress(d.original); strings.Contains(o, "@") {
			r.Address = o
		}
		if r.Diagnostic == "" {
			// Exim and others leave Diagnostic-Code out and explain in the text.
			r.Diagnostic = textBlock(human, r.Address)
		}
		r.Action = strings.ToLower(firstWord(d.action))
		switch r.Action {
		case "undeliverable": // Postfix address verification reports (sendmail -bv)
			r.Action = ActionFailed
		case "deliverable":
			r.Action = ActionDelivered
		}
		r.Status = refineStatus(leadingStatus(d.status), findStatuses(d.diag, 8))
		if r.Action == "" {
			// RFC 3464 §2.3.3 makes Action mandatory; without it the status class decides.
			if strings.HasPrefix(r.Status, "5.") {
				r.Action = ActionFailed
			} else {
				r.Action = ActionDelayed
			}
		}
		context := ""
		if len(recips) == 1 {
			context = human
		}
		v := judge(r.Action, r.Status, findReplyCode(r.Diagnostic), r.Diagnostic, context)
		r.Hard, r.Retryable = v.hard, v.retryable
		b.Recipients = append(b.Recipients, r)
	}
	class, first := ClassReport, b.Recipients[0]
	for _, r := range b.Recipients {
		if r.Action == ActionFailed {
			class, first = ClassBounce, r
			break
		}
	}
	reason := fmt.Sprintf("RFC 3464 delivery-status: action=%s", first.Action)
	if first.Status != "" {
		reason += " status=" + first.Status
	}
	if n := len(b.Recipients); n > 1 {
		reason += fmt.Sprintf(" (%d recipients)", n)
	}
	return Result{Class: class, Reason: reason, Bounce: b}
}

// refineStatus picks the recipient's status code: the Status field, unless it is missing or
// only says "X.0.0" (RFC 3463 §3.1 "other undefined status") while the Diagnostic-Code carries
// a specific code of the same class. Relays that wrap a remote reply ("5.1.0 - Unknown address
// error 550-'5.2.2 ... Mailbox Full'") put the remote, more specific code last.
func refineStatus(field string, diag []string) string {
	if len(diag) == 0 {
		return field
	}
	last := diag[len(diag)-1]
	switch {
	case field == "":
		return diag[0]
	case strings.HasSuffix(field, ".0.0") && last[0] == field[0]:
		return last
	}
	return field
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return strings.Trim(f[0], ";,()")
	}
	return ""
}

// returnedText returns the copy of the original message inside m's text, "" when none.
func returnedText(m *parse.Message) string {
	_, returned := splitReturned(normalizeNewlines(clip(m.Text)))
	return returned
}

// originalMessageID finds the Message-ID of the message a report is about: the returned
// headers first (RFC 3462/6522 text/rfc822-headers, message/rfc822), then returned, the copy of
// the headers inside the text, then the report's own In-Reply-To and References.
func originalMessageID(m *parse.Message, returned string) string {
	for i := range m.Attachments {
		a := &m.Attachments[i]
		if !containsFold(returnedTypes, a.ContentType) {
			continue
		}
		if id := msgID(headerField(string(a.Data), "message-id")); id != "" {
			return id
		}
	}
	if id := msgID(headerField(returned, "message-id")); id != "" {
		return id
	}
	if len(m.InReplyTo) > 0 {
		return strings.Trim(m.InReplyTo[0], "<> ")
	}
	if n := len(m.References); n > 0 {
		return strings.Trim(m.References[n-1], "<> ")
	}
	return ""
}

func containsFold(list []string, s string) bool {
	s = strings.TrimSpace(s)
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
