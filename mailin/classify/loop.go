package classify

import (
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// classifyLoop recognises mail the desk sent itself (DESIGN invariant 5). Three signals, any
// one suffices:
//
//   - our own loop header at the top level (deskd writes it on everything it sends; mail
//     clients do not copy unknown header fields into replies, RFC 5322 §3.6.4 only carries
//     msg-ids forward);
//   - the message's own Message-ID is on the desk's Message-ID domain. A person's reply
//     carries our Message-ID in In-Reply-To/References, which is threading, not a loop, so
//     only Message-ID itself counts;
//   - From is one of the desk's addresses.
func classifyLoop(m *parse.Message, o Options) (Result, bool) {
	if hasHeader(m, o.LoopHeader) {
		return Result{Class: ClassLoop, Reason: "own loop header " + o.LoopHeader + " present"}, true
	}
	if d := strings.ToLower(strings.TrimSpace(o.DeskDomain)); d != "" {
		id := strings.Trim(strings.TrimSpace(m.MessageID), "<>")
		if strings.EqualFold(domainPart(id), d) {
			return Result{Class: ClassLoop, Reason: "own Message-ID domain " + d}, true
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
