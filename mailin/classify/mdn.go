package classify

import (
	"regexp"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// Read receipts that are not RFC 8098 reports: Outlook/Exchange send "Read: <subject>" with a
// sentence like "Your message ... was read on ..."; Lotus Notes sends "Return Receipt". Both the
// subject prefix and a receipt sentence in the text are required, since a person may start a
// subject with "Read:".
var (
	mdnSubjectRe = regexp.MustCompile(`(?i)^\s*(?:read|not read|read receipt|return receipt|gelesen|ungelesen|lu|non lu|leído|no leído|letto|non letto|gelezen|niet gelezen|läst|oläst|læst|lest|luettu|lido|lida|não lida|przeczytane|przeczytana|nieprzeczytane|přečteno|прочитано|не прочитано|прочитане|okundu|已读|已讀|未读|開封済み|開封|olvasva)\s*(?::|：|\(|$)`)
	mdnBody      = phrases{"was read on", "was read at", "has been read", "was deleted without being read",
		"was displayed", "was received by", "gelesen", "a été lu", "été supprimé sans avoir été lu",
		"fue leído", "ha sido leído", "è stato letto", "is gelezen", "werd gelezen", "lästes", "har lästs",
		"blev læst", "ble lest", "luettiin", "foi lida", "został przeczytany", "została przeczytana",
		"byla přečtena", "было прочитано", "прочитано", "okundu", "已读", "已讀", "開封されました"}
)

// classifyTextMDN recognises non-RFC 8098 read receipts.
func classifyTextMDN(m *parse.Message) (Result, bool) {
	subject := strings.TrimSpace(m.Subject)
	if !mdnSubjectRe.MatchString(subject) {
		return Result{}, false
	}
	if mdnBody.in(strings.ToLower(clip(m.Text))) == "" {
		return Result{}, false
	}
	return Result{Class: ClassMDN, Reason: "read receipt subject " + quoteShort(subject)}, true
}
