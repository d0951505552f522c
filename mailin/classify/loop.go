package classify

import (
	"net/textproto"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// classifyLoop recognises mail the desk sent itself (DESIGN invariant 5). Three signals, any
// one suffices:
//
//   - our own loop header at the top level, valued with our domain (deskd writes it on
//     everything it sends; mail clients do not copy unknown header fields into replies,
//     RFC 5322 §3.6.4 only carries msg-ids forward);
//   - the message's own Message-ID is one of ours (Options.OwnMessageID, else its domain is
//     Options.DeskDomain). A person's reply carries our Message-ID in In-Reply-To/References,
//     which is threading, not a loop, so only Message-ID itself counts;
//   - From is one of the desk's addresses.
func classifyLoop(m *parse.Message, o Options) (Result, bool) {
	domain := strings.ToLower(strings.TrimSpace(o.DeskDomain))
	key := textproto.CanonicalMIMEHeaderKey(o.LoopHeader)
	for _, v := range m.Header[key] {
		if domain == "" || strings.TrimSpace(v) == "" || hasToken(v, domain) {
			return Result{Class: ClassLoop, Reason: "own loop header " + key + " present"}, true
		}
	}
	if id := strings.Trim(strings.TrimSpace(m.MessageID), "<>"); id != "" {
		own := false
		switch {
		case o.OwnMessageID != nil:
			own = o.OwnMessageID(id)
		case domain != "":
			own = strings.EqualFold(domainPart(id), domain)
		}
		if own {
			return Result{Class: ClassLoop, Reason: "own Message-ID " + quoteShort(id)}, true
		}
	}
	if from := fromAddress(m); from != "" {
		for _, a := range o.DeskAddresses {
			if strings.EqualFold(strings.TrimSpace(a), from) {
				return Result{Class: ClassLoop, Reason: "From is the desk address " + from}, true
			}
		}
	}
	return Result{}, false
}

// hasToken reports whether v, split at spaces, commas and semicolons, contains tok
// (case-insensitively).
func hasToken(v, tok string) bool {
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '\t' }) {
		if strings.EqualFold(f, tok) {
			return true
		}
	}
	return false
}
