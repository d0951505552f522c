package classify

import (
	"regexp"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// emailRe finds addr-spec shaped strings (RFC 5322 §3.4.1 dot-atom@domain) in free text,
// including Latin, Greek and Cyrillic UTF-8 letters (RFC 6532 §3.2). It is deliberately narrower
// than the RFCs: quoted local parts and domain literals do not occur in the bounce texts it is
// used on, and CJK letters are left out because Japanese and Chinese bounce texts write words
// right against an address ("<user@example.jp>宛").
var emailRe = func() *regexp.Regexp {
	const letter = `\p{Latin}\p{Greek}\p{Cyrillic}0-9`
	const label = `[` + letter + `](?:[` + letter + `-]*[` + letter + `])?`
	return regexp.MustCompile(`[` + letter + `.!#$%&'*+/=?^_{|}~-]+@` + label + `(?:\.` + label + `)+`)
}()

// findAddresses returns the addresses in s, lower-cased, in order of first appearance.
func findAddresses(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range emailRe.FindAllString(s, -1) {
		a = strings.ToLower(strings.Trim(a, "."))
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// fromAddress returns the From address, lower-cased; it falls back to scanning the raw header
// when the parser could not parse it. "" when there is none.
func fromAddress(m *parse.Message) string {
	if m.From != nil && m.From.Address != "" {
		return strings.ToLower(strings.TrimSpace(m.From.Address))
	}
	if as := findAddresses(header(m, "From")); len(as) > 0 {
		return as[0]
	}
	return ""
}

// localPart returns the part of addr before the last "@".
func localPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// domainPart returns the part of addr after the last "@", "" when there is none.
func domainPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// cleanAddress strips an RFC 3464 §2.3.2 address type ("rfc822;"), angle brackets and
// comments from a report field value and lower-cases the result.
func cleanAddress(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if as := findAddresses(v); len(as) > 0 {
		return as[0]
	}
	return strings.ToLower(strings.Trim(v, "<> \t"))
}
