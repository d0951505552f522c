package classify

import (
	"regexp"
	"strings"
)

// statusRe matches an RFC 3463 §2 enhanced status code candidate: class "." subject "." detail.
var statusRe = regexp.MustCompile(`[245]\.[0-9]{1,3}\.[0-9]{1,3}`)

// findStatus returns the first RFC 3463 enhanced status code in s, "" when there is none.
func findStatus(s string) string {
	if all := findStatuses(s, 1); len(all) > 0 {
		return all[0]
	}
	return ""
}

// findStatuses returns up to n RFC 3463 enhanced status codes in s, in order. Candidates that
// are part of a longer dotted number (an IPv4 address, a version) are skipped.
func findStatuses(s string, n int) []string {
	var out []string
	for _, loc := range statusRe.FindAllStringIndex(s, -1) {
		i, j := loc[0], loc[1]
		if i > 0 && (isDigit(s[i-1]) || s[i-1] == '.') {
			continue
		}
		if j < len(s) && isDigit(s[j]) {
			continue
		}
		if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
			continue
		}
		if out = append(out, s[i:j]); len(out) == n {
			break
		}
	}
	return out
}

// leadingStatus parses an RFC 3464 §2.3.4 Status field value such as "5.1.1" or
// "4.2.2 (Persistent transient failure - mailbox: mailbox full)".
func leadingStatus(v string) string {
	v = strings.TrimSpace(v)
	if loc := statusRe.FindStringIndex(v); loc != nil && loc[0] == 0 {
		return findStatus(v)
	}
	return ""
}

// replyCodeRe matches an RFC 5321 §4.2 reply code followed by a space or hyphen.
var replyCodeRe = regexp.MustCompile(`(?:^|[\s:(<\[])([245][0-5][0-9])[ -][^0-9]`)

// findReplyCode returns the first SMTP reply code in s, "" when there is none.
func findReplyCode(s string) string {
	if m := replyCodeRe.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Reasons are coarse bounce causes, used to decide whether a failure is hard.
const (
	reasonUserUnknown = "userunknown"
	reasonHostUnknown = "hostunknown"
	reasonHasMoved    = "hasmoved"
	reasonMailboxFull = "mailboxfull"
	reasonSuspended   = "suspend"
	reasonMailerError = "mailererror"
	reasonRejected    = "rejected" // blocked, spam, policy, authentication, size, relaying
	reasonExpired     = "expired"
	reasonOther       = "other"
)

// Text patterns of the causes, matched against the lower-cased diagnostic of one recipient.
// Soft causes are checked first: a full mailbox or a spam filter says nothing about whether the
// address exists, even when the MTA reports 5.1.1 with it.
type cause struct {
	reason string
	ps     phrases
}

var (
	softCauses = []cause{
		{reasonMailboxFull, phrases{"mailbox full", "mailbox is full", "full mailbox", "quota",
			"insufficient storage", "insufficient system storage", "not enough disk space",
			"not enough storage space", "disk space", "mailbox size limit", "mailbox has exceeded",
			"out of storage", "storage limit", "exceeded storage", "exceeds storage"}},
		{reasonMailerError, phrases{`\bprocmail\b`, "couldn't create", "command died", "command failed",
			"mailer error", `\bx-unix;`}},
		{reasonSuspended, phrases{`\bdisabled\b`, `\bsuspended\b`, `\binactive\b`, `\bdeactivated\b`,
			`\blocked\b`, `\bfrozen\b`, "account expired", "account has expired", "temporarily unavailable",
			"temporarily deferred", "temporarily rejected", "temporarily blocked"}},
		{reasonExpired, phrases{"retry timeout exceeded", "retry time exceeded", "retry time reached",
			"retry timeout reached", "timed out", "time out", "timeout", "too long in queue",
			"too long in the queue", "in the queue too long", "could not be delivered for ",
			"cannot send message for ", "delivery time expired", "message expired", "connection reset",
			"connection refused"}},
		{reasonRejected, phrases{`\bspam`, `\bblock\b`, `\bblocked\b`, `\bblocklist`, "blacklist",
			"black list", "denylist", "deny list", `\brbl\b`, "reputation", `\bpolicy`, "not allowed",
			"not permitted", "not authorized", "not authorised", "prohibited", `\brefused\b`,
			"content rejected", `\bvirus`, "malware", `\bdmarc\b`, `\bspf\b`, `\bdkim\b`,
			"authentication", "relay denied", "relay access denied", "relaying denied",
			"relaying access denied", "unable to relay", "greylist", "try again later", "too many",
			"rate limit", "message size", "mail size", "message too big", "message too large",
			"mail too big", "mail too large", "size limit", "exceeds the maximum",
			"use the smtp server of your isp", "filtered", "security"}},
	}
	hardCauses = []cause{
		{reasonUserUnknown, join(
			phrases{"user unknown", "userunknown", "nosuchuser", "not exist", "n't exist", "doesnt exist",
				"not listed in domino directory", "not listed in public name", "recipient name is not recognized",
				"addressee unknown", "unknown or illegal alias", "address not found",
				"address rejected: access denied", "no mailbox here", "bad destination mailbox"},
			cross([]string{"unknown "}, []string{"user", "recipient", "local part", "localpart",
				"e-mail address", "email address", "address", "mailbox"}),
			cross([]string{"no such "}, []string{"user", "mailbox", "recipient", "account", "address"}),
			cross([]string{"mailbox ", "user ", "recipient ", "address ", "account "},
				[]string{"not found", "not known", "is not found", "is not known", "was not found"}),
			cross([]string{"invalid "}, []string{"recipient", "mailbox", "address"}),
			phrases{"recipient unknown", "recipient not found"},
		)},
		{reasonHostUnknown, phrases{"host unknown", "host not found", "host or domain name not found",
			"host or domain name unknown", "unrouteable address", "unroutable address",
			"unrouteable domain", "unroutable domain", "domain not found", "domain does not exist",
			"domain is not valid", "no such domain", "name service error", "nxdomain",
			"does not accept mail", "null mx", "nullmx", `\bno mx\b`, "mx not found", "mx record not found"}},
		{reasonHasMoved, phrases{"has moved", "have moved", "address has changed", "address changed", "moved to"}},
	}
)

// noAccountRe matches Yahoo's "This user doesn't have a yahoo.com account".
var noAccountRe = regexp.MustCompile(`doesn't have an? \S{1,60} account`)

// hardStatuses are RFC 3463 §3.2 address-status details that mean the address itself is bad:
// X.1.0 other address status, X.1.1 bad destination mailbox, X.1.2 bad destination system,
// X.1.3 bad mailbox syntax, X.1.6 mailbox moved, X.1.10 null MX (RFC 7505 §4.2), and
// X.4.4 unable to route (no DNS route to the domain).
var hardStatuses = map[string]string{
	"1.0": reasonUserUnknown, "1.1": reasonUserUnknown, "1.2": reasonHostUnknown,
	"1.3": reasonUserUnknown, "1.6": reasonHasMoved, "1.10": reasonHostUnknown,
	"4.4": reasonHostUnknown,
}

// verdict is the judgement on one recipient.
type verdict struct {
	reason    string
	hard      bool
	retryable bool
}

// judge decides how final a recipient's failure is. action is the RFC 3464 action, status the
// RFC 3463 code ("" when unknown), diag the recipient's diagnostic text and context further text
// about this recipient only (the human-readable part of a single-recipient report).
//
// A failure is hard only if the action is failed, the status is not transient (class 4), no
// soft cause appears in diag or context, and the status or the text names a bad address. Every
// doubt makes it soft: a wrong hard verdict stops mail to a working address.
func judge(action, status, replyCode, diag, context string) verdict {
	switch action {
	case ActionDelayed:
		return verdict{reason: reasonOther, retryable: true}
	case ActionFailed:
	default:
		return verdict{reason: action}
	}
	// Addresses are not evidence: "filtered@example.org" is not a spam filter. A report's
	// human-readable text that matters fits in a few KiB; the rest is boilerplate or garbage.
	diag = emailRe.ReplaceAllString(truncateRunes(diag, maxFieldLen), "<>")
	context = emailRe.ReplaceAllString(truncateRunes(context, maxContext), "<>")
	transient := strings.HasPrefix(status, "4.") || (status == "" && strings.HasPrefix(replyCode, "4"))
	diag, context = strings.ToLower(diag), strings.ToLower(context)
	for _, c := range softCauses {
		// The rest of a report's text is boilerplate ("scanned for viruses", "blocked senders
		// help"); only a full mailbox is trusted from it.
		if c.ps.in(diag) != "" || c.reason == reasonMailboxFull && c.ps.in(context) != "" {
			return verdict{reason: c.reason, retryable: true}
		}
	}
	if transient {
		return verdict{reason: reasonOther, retryable: true}
	}
	if _, rest, ok := strings.Cut(status, "."); ok {
		if r, ok := hardStatuses[rest]; ok {
			return verdict{reason: r, hard: true}
		}
	}
	for _, c := range hardCauses {
		if c.ps.in(diag) != "" || c.ps.in(context) != "" {
			return verdict{reason: c.reason, hard: true}
		}
	}
	if noAccountRe.MatchString(diag) {
		return verdict{reason: reasonUserUnknown, hard: true}
	}
	// A permanent failure for an unknown cause: sending the same mail again will fail again,
	// but nothing says the address is gone.
	return verdict{reason: reasonOther, retryable: status == "" && replyCode == ""}
}
