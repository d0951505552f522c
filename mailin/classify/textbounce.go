package classify

import (
	"net/mail"
	"regexp"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// Non-standard bounces: many MTAs (qmail, Exim without DSN, Exchange 2003, Domino, Gmail,
// webmail providers) return plain text instead of an RFC 3464 report. They are recognised by
// a combination of signals, because each one alone also occurs in mail written by people (a
// user forwarding an NDR to the help desk writes "FW: Undeliverable: ..." and quotes the text):
//
//   - strong, enough alone: X-Failed-Recipients (Exim, Gmail), X-MS-Exchange-Message-Is-Ndr;
//   - the sender is a mail system (mailer-daemon, postmaster) and the subject or the text reads
//     like a bounce;
//   - both the subject (anchored at its start, so "Re:"/"Fw:" subjects never match) and the
//     text read like a bounce.

// daemonLocalParts are local parts of mail system senders (RFC 5321 §4.5.1 postmaster, and
// the conventional MAILER-DAEMON).
var daemonLocalParts = map[string]bool{
	"mailer-daemon": true, "mailer_daemon": true, "mailerdaemon": true, "mail-daemon": true,
	"postmaster": true, "mdaemon": true,
}

var (
	failureSubjectRe = regexp.MustCompile(`(?i)^\s*(?:undeliverable|undelivered mail|undeliverable mail|returned mail|mail delivery failed|delivery failure|delivery status notification \(failure\)|delivery notification: delivery has failed|delivery has failed|failure notice|mail system error|message not delivered|non-?delivery|nondeliverable|mail could not be delivered|delivery status notification: error|mail failure|unzustellbar|nicht zustellbar|non remis|non distribuable|no se puede entregar|no entregado|non recapitabile|impossibile recapitare|onbestelbaar|kan inte levereras|ej levererbart|niedostarczalne|недоставленное|недоставляемое|не доставлено|не удается доставить|配信不能|配信エラー|メールエラー|无法投递|退信|無法傳遞)`)
	delaySubjectRe   = regexp.MustCompile(`(?i)^\s*(?:delivery status notification \(delay\)|warning: could not send message|delayed mail|delivery delayed|delayed delivery|message delayed|warning: message delayed|mail delivery delayed|zustellung verzögert|remise différée)`)

	// Bounce texts, matched lower-cased.
	failureBody = phrases{"could not be delivered", "couldn't be delivered", "couldnt be delivered",
		"was not delivered", "wasn't delivered", "not be delivered", "did not reach the following",
		"did not reach some or all", "delivery to the following recipient failed",
		"delivery to the following recipients failed", "delivery has failed", "following address(es) failed",
		"following addresses failed", "following address failed", "wasn't able to deliver", "unable to deliver",
		"could not deliver", "failed to deliver", "cannot be delivered", "undeliverable", "delivery failed",
		"has encountered delivery problems", "had delivery problems", "permanent error", "permanent failure",
		"failed permanently", "an error has occurred while attempting to deliver",
		"this is the qmail-send program", "this is the mail system at host",
		"created automatically by mail delivery software", "unsent message follows",
		"transcript of session follows", "failure reasons", "was automatically rejected", "returned mail",
		"message could not be sent", "konnte nicht zugestellt werden", "n'a pas pu être remis",
		"n'a pas pu être distribué", "no se pudo entregar", "no se ha podido entregar",
		"non è stato possibile recapitare", "kon niet worden bezorgd", "não pôde ser entregue",
		"не может быть доставлено", "не было доставлено", "не доставлено", "送信できませんでした",
		"配信できませんでした", "届きませんでした", "无法投递", "無法傳遞"}
	delayBody = phrases{"has been delayed", "is delayed", "warning message only", "this is a warning only",
		"will be retried", "still being retried", "will continue to try", "will continue trying",
		"will keep trying", "not yet been delivered", "delayed mail", "delivery delayed",
		"delivery has been delayed", "delivery was delayed", "delivery is delayed",
		"could not be delivered for more than", "temporary failure"}
	permanentBody = phrases{"permanent error", "permanent failure", "failed permanently", "given up",
		"giving up", "not going to try again", "will not be retried", "no further attempts",
		"could not be delivered to one or more", "delivery has failed", "undeliverable"}

	// recipientIntro marks where bounce texts start listing failed recipients (ASCII only, so
	// that offsets in the ASCII-lowered text are offsets in the original).
	recipientIntro = phrases{"did not reach the following", "was not delivered to", "not be delivered to",
		"following address", "following recipient", "list of recipients", "delivery problems",
		"failure reasons", "unable to deliver your message to", "wasn't able to deliver your message to",
		"could not deliver", "transcript of session follows", "because:", "could not be delivered",
		"undeliverable"}

	// sendmailLineRe matches a sendmail transcript result line: "550 <user@host>... reason".
	sendmailLineRe = regexp.MustCompile(`^\s*[245][0-9][0-9][ -]<[^>]*>\.\.\. `)

	// msgIDLineRe matches header lines whose addr-spec lookalikes are msg-ids, not addresses.
	msgIDLineRe = regexp.MustCompile(`(?i)^\s*(?:message-id|references|in-reply-to|content-id|x-message-id)\s*:`)
)

// splitReturned splits a bounce text into the human-readable report and the returned copy of
// the original message ("" when none is found). The copy starts at a marker line such as
// "----- Original message -----" (dropped) or at its first header line (kept).
func splitReturned(text string) (human, returned string) {
	off := 0
	for off < len(text) {
		line, _, _ := strings.Cut(text[off:], "\n")
		next := off + len(line) + 1
		switch returnedStart(line) {
		case startMarker:
			return text[:off], text[min(next, len(text)):]
		case startHeader:
			return text[:off], text[off:]
		}
		off = next
	}
	return text, ""
}

const (
	startNone = iota
	startMarker
	startHeader
)

// returnedStart tells whether line starts the returned copy of the original message.
func returnedStart(line string) int {
	l := strings.TrimLeft(line, " \t")
	if l == "" {
		return startNone
	}
	if l[0] == '-' || l[0] == '=' || l[0] == '*' {
		lower := strings.ToLower(l)
		for _, mk := range returnedMarkers {
			if strings.Contains(lower, mk) {
				return startMarker
			}
		}
		return startNone
	}
	name, _, ok := strings.Cut(l, ":")
	if !ok || len(name) > 40 {
		if lower := strings.ToLower(l); strings.HasPrefix(lower, "below is a copy of the original message") {
			return startMarker
		}
		return startNone
	}
	name = strings.ToLower(name)
	if name == "original message headers" {
		return startMarker
	}
	if line == l && returnedHeaderNames[name] {
		return startHeader
	}
	return startNone
}

// returnedMarkers are the separator lines MTAs write before the returned message.
var returnedMarkers = []string{
	"original message", "unsent message follows", "returned message", "returned mail follows",
	"below this line is a copy of the message", "this is a copy of the message",
	"the header of the original message", "message header follows", "received message follows",
	"undelivered message", "copy of the original message", "original message headers",
}

// returnedHeaderNames are header fields that start a returned copy when one appears at the
// start of a line: trace and signature fields come first in a message (RFC 5321 §4.4).
var returnedHeaderNames = map[string]bool{
	"return-path": true, "received": true, "dkim-signature": true, "x-received": true,
	"arc-seal": true, "delivered-to": true, "message-id": true,
}

// isDaemonSender reports whether the message comes from a mail system rather than a person.
func isDaemonSender(m *parse.Message) bool {
	if daemonLocalParts[localPart(fromAddress(m))] {
		return true
	}
	if m.From != nil {
		n := strings.ToLower(m.From.Name)
		if strings.Contains(n, "mail delivery") || strings.Contains(n, "mailer-daemon") {
			return true
		}
	}
	return false
}

// classifyTextBounce recognises non-standard bounces and delay warnings in plain text.
func classifyTextBounce(m *parse.Message) (Result, bool) {
	subject := strings.TrimSpace(m.Subject)
	xfr := findAddresses(header(m, "X-Failed-Recipients"))
	ndr := hasHeader(m, "X-MS-Exchange-Message-Is-Ndr")
	daemon := isDaemonSender(m)
	subjFail, subjDelay := failureSubjectRe.MatchString(subject), delaySubjectRe.MatchString(subject)
	subj := subjFail || subjDelay
	if len(xfr) == 0 && !ndr && !daemon && !subj {
		return Result{}, false // the text alone never makes a bounce; spare the scan
	}
	human, returned := splitReturned(normalizeNewlines(clip(m.Text)))
	lower := strings.ToLower(human)
	bodyFail, bodyDelay := failureBody.in(lower) != "", delayBody.in(lower) != ""
	body := bodyFail || bodyDelay

	var signals []string
	switch {
	case len(xfr) > 0:
		signals = append(signals, "X-Failed-Recipients")
	case ndr:
		signals = append(signals, "X-MS-Exchange-Message-Is-Ndr")
	case daemon && (subj || body):
		signals = append(signals, "mail system sender "+fromAddress(m))
	case subj && body && machineEvidence(m, human, returned):
	default:
		return Result{}, false
	}
	if subj {
		signals = append(signals, "subject "+quoteShort(subject))
	}

	action := ActionFailed
	if (subjDelay || bodyDelay) && !subjFail && len(xfr) == 0 && permanentBody.in(lower) == "" {
		action = ActionDelayed
	}
	b := &Bounce{OriginalMessageID: originalMessageID(m, returned)}
	b.Recipients = textRecipients(m, human, returned, xfr, action)

	// A non-standard delay warning is a soft bounce: bounce class (it reports trouble delivering our
	// mail, which the ticket should show) but no recipient is hard, so no address is marked
	// undeliverable. RFC 3464 delay reports, which say exactly what happened, are ClassReport.
	class, what := ClassBounce, "non-standard bounce"
	if action == ActionDelayed {
		what = "non-standard delay warning (soft bounce)"
	}
	reason := what + " (" + strings.Join(signals, ", ") + ")"
	if len(b.Recipients) > 0 && b.Recipients[0].Status != "" {
		reason += ": status=" + b.Recipients[0].Status
	}
	return Result{Class: class, Reason: reason, Bounce: b}, true
}

// machineEvidence reports whether a message whose subject and text read like a bounce also
// looks machine-made: it returns the original (a copy or a message/rfc822 part), quotes an SMTP
// reply or status code, has a null envelope sender or is marked Auto-Submitted. A person asking
// "Returned mail: why?" has none of these.
func machineEvidence(m *parse.Message, human, returned string) bool {
	return returned != "" || attachment(m, returnedTypes...) != nil || codeLines(human) != "" ||
		nullReturnPath(m) || autoSubmittedValue(m) != ""
}

func quoteShort(s string) string { return `"` + truncateRunes(s, 60) + `"` }

// textRecipients extracts the failed recipients of a text bounce with their diagnostics. The
// listed X-Failed-Recipients win; otherwise every address after the first "following
// recipients" style phrase is a recipient, except the bounce's own sender and addressees and the
// original sender. Each recipient's diagnostic is the run of lines from its first mention to a
// blank line or the next recipient.
func textRecipients(m *parse.Message, human, returned string, xfr []string, action string) []BounceRecipient {
	exclude := map[string]bool{fromAddress(m): true}
	for _, a := range append(append([]*mail.Address(nil), m.To...), m.Cc...) {
		if a != nil {
			exclude[strings.ToLower(a.Address)] = true
		}
	}
	for _, a := range findAddresses(headerField(returned, "from")) {
		exclude[a] = true
	}
	for _, a := range findAddresses(header(m, "Return-Path")) {
		exclude[a] = true
	}
	wanted := func(a string) bool {
		if len(xfr) > 0 {
			return containsFold(xfr, a)
		}
		return !exclude[a] && !daemonLocalParts[localPart(a)]
	}

	var bs blockSet
	if i := recipientIntro.index(lowerASCII(human)); i >= 0 {
		bs.collect(human[i:], wanted)
	}
	if len(bs.order) == 0 {
		// Some texts name the recipient before any phrase we know ("<user@example.org>:").
		bs.collect(human, wanted)
	}
	for _, a := range xfr {
		if _, ok := bs.lines[a]; !ok && len(bs.order) < maxRecipients {
			bs.add(a, "")
		}
	}
	order, blocks := bs.order, bs.lines

	out := make([]BounceRecipient, 0, len(order))
	for _, a := range order {
		diag := collapseSpace(strings.Join(blocks[a], " "))
		context := ""
		if len(order) == 1 {
			// The whole report is about this recipient: borrow its codes, or failing that its
			// words, when the recipient's own lines say nothing.
			context = human
			if findStatus(diag) == "" && findReplyCode(diag) == "" {
				if codes := codeLines(human); codes != "" {
					diag = strings.TrimSpace(diag + " " + codes)
				} else if strings.TrimSpace(strings.Trim(diag, "<>:")) == a {
					diag = truncateRunes(collapseSpace(human), 300)
				}
			}
		}
		r := BounceRecipient{Address: a, Action: action, Diagnostic: diag, Status: findStatus(diag)}
		v := judge(action, r.Status, findReplyCode(diag), diag, context)
		r.Hard, r.Retryable = v.hard, v.retryable
		out = append(out, r)
	}
	return out
}

// blockSet collects recipients of a bounce text and the lines that describe each.
type blockSet struct {
	order []string            // recipients in order of first mention
	lines map[string][]string // recipient -> its run of lines
}

func (bs *blockSet) add(addr, line string) {
	if bs.lines == nil {
		bs.lines = map[string][]string{}
	}
	bs.order = append(bs.order, addr)
	bs.lines[addr] = nil
	if line != "" {
		bs.lines[addr] = []string{line}
	}
}

// collect scans text line by line. A line naming a new wanted address opens that address's
// block; following lines join it until a blank line, a line naming another new address, or the
// end of a sendmail result line. SMTP transcript lines seen while no block is open ("<<< 550
// ...") belong to the next recipient, within one "While talking to" session. Lines of msg-ids
// are skipped: a msg-id looks like an address.
func (bs *blockSet) collect(text string, wanted func(string) bool) {
	open := ""
	var pending []string // SMTP transcript lines (">>> ", "<<< ") waiting for their recipient
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(strings.ToLower(trimmed), "while talking to") {
			open, pending = "", nil
			continue
		}
		if msgIDLineRe.MatchString(line) {
			continue
		}
		fresh := false
		for _, a := range findAddresses(line) {
			if _, seen := bs.lines[a]; seen || !wanted(a) {
				continue
			}
			if len(bs.order) >= maxRecipients {
				return
			}
			bs.add(a, "")
			bs.lines[a] = append(append([]string(nil), pending...), line)
			open, fresh = a, true
		}
		switch {
		case fresh:
			pending = nil
		case open != "":
			bs.lines[open] = append(bs.lines[open], line)
		case strings.HasPrefix(trimmed, "<<< ") || strings.HasPrefix(trimmed, ">>> "):
			pending = append(pending, line)
		}
		if sendmailLineRe.MatchString(line) {
			open = "" // "550 <user@example.org>... User unknown" is complete in itself
		}
	}
}

// textBlock returns the lines of text that describe addr, joined by spaces; "" when text does
// not mention it.
func textBlock(text, addr string) string {
	var bs blockSet
	bs.collect(text, func(a string) bool { return a == addr })
	return collapseSpace(strings.Join(bs.lines[addr], " "))
}

// codeLines returns the lines of text that carry an SMTP reply code or enhanced status code,
// joined by spaces.
func codeLines(text string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if findStatus(line) != "" || findReplyCode(line) != "" {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return collapseSpace(strings.Join(out, " "))
}

// truncateRunes shortens s to at most n runes, marking a cut with "…".
func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }
