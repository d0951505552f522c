// Package subject handles ticket keys in mail subjects: formatting and finding keys such as
// "[SD-1042]", stripping reply and forward prefixes in many languages, and building outbound subjects
// that neither grow "Re: Re:" chains nor repeat the key. It is pure: no I/O, no clock.
//
// Every function returns valid UTF-8 without control characters (CR and LF included), so results are
// safe to place in a header field and to store.
package subject

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxPrefixRunes bounds the word of a reply prefix; longer letter runs are never prefixes.
const maxPrefixRunes = 12

// replyWords are the reply and forward abbreviations that mail clients put before a subject, lower-cased
// with strings.ToLower. RFC 5256 §2.1 names only "re", "fw" and "fwd"; the rest are what localised
// clients (Outlook above all) write.
var replyWords = map[string]bool{
	// English, and widely used everywhere
	"re": true, "fw": true, "fwd": true,
	// German
	"aw": true, "wg": true, "antw": true, "antwort": true,
	// Dutch
	"doorst": true,
	// Scandinavian and Finnish
	"sv": true, "vs": true, "vb": true, "vl": true, "fs": true,
	// French, Spanish, Portuguese, Italian
	"tr": true, "rv": true, "ré": true, "réf": true, "ref": true, "enc": true, "res": true, "rif": true, "r": true, "i": true,
	// Polish, Czech, Slovak, Croatian, Hungarian, Baltic
	"odp": true, "pd": true, "odg": true, "vá": true, "továbbítás": true, "atb": true, "pārs": true, "ats": true,
	// Turkish ("İLT" lower-cases to "i̇lt" with a combining dot)
	"ynt": true, "ilt": true, "i̇lt": true,
	// Greek
	"απ": true, "σχετ": true, "πρθ": true,
	// Russian, Ukrainian
	"отв": true, "ответ": true, "пересл": true, "вдп": true,
	// Chinese, Japanese, Korean
	"回复": true, "回覆": true, "答复": true, "答覆": true, "转发": true, "轉寄": true, "轉發": true, "転送": true, "회신": true, "전달": true,
	// Hebrew
	"השב": true, "הועבר": true,
}

// StripReplyPrefixes returns the base subject: s with every leading run of reply and forward prefixes
// removed and whitespace collapsed. It follows the base-subject algorithm of RFC 5256 §2.1 with these
// choices:
//   - a prefix is one of many languages' abbreviations (see replyWords), in any case, optionally with a
//     counter ("Re[2]:", "Re(2):", "Re^2:"), optional spaces, then ":" or the full-width "：";
//     "Re:Re:" and "Re: Fwd: AW:" are removed whole;
//   - tags in square brackets ("[External]", "[list-name]") are removed only when they precede a reply
//     prefix ("[External] RE: x" is "x"), never on their own, and a tag that is a ticket key
//     ("[SD-1042]") is never removed, so the key survives for FindKey;
//   - a trailing "(fwd)" is removed and a "[Fwd: x]" wrapper is unwrapped (RFC 5256 §2.1 steps 2 and 6);
//   - all whitespace and control characters become single spaces, the result is trimmed, and invalid
//     UTF-8 becomes U+FFFD (RFC 5256 §2.1 step 1; decoding RFC 2047 words is the parser's job).
//
// StripReplyPrefixes(StripReplyPrefixes(s)) == StripReplyPrefixes(s).
func StripReplyPrefixes(s string) string {
	s = collapse(s)
	for {
		prev := s
		for len(s) >= 5 && strings.EqualFold(s[len(s)-5:], "(fwd)") {
			s = strings.TrimRight(s[:len(s)-5], " ")
		}
		if rest, ok := cutLeader(s); ok {
			s = rest
		}
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = strings.TrimSpace(s[5 : len(s)-1])
		}
		if s == prev {
			return s
		}
	}
}

// cutLeader removes one RFC 5256 subj-leader: any bracketed tags that are not ticket keys followed by
// one reply prefix. ok is false, and s untouched, when s does not start with one.
func cutLeader(s string) (rest string, ok bool) {
	// cutLeadingBlobs stops at a key tag, and a tag never starts a reply prefix.
	if rest, ok = cutReplyPrefix(cutLeadingBlobs(s)); ok {
		return rest, true
	}
	return s, false
}

// cutReplyPrefix removes one reply prefix (word, optional counter, optional spaces, colon) from the
// start of s.
func cutReplyPrefix(s string) (rest string, ok bool) {
	i, n := 0, 0
	for i < len(s) && n <= maxPrefixRunes {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && !unicode.Is(unicode.Mn, r) {
			break
		}
		i += w
		n++
	}
	if i == 0 || n > maxPrefixRunes || !replyWords[strings.ToLower(s[:i])] {
		return s, false
	}
	i = skipCounter(s, i)
	i = skipSpace(s, i)
	switch {
	case strings.HasPrefix(s[i:], ":"):
		i++
	case strings.HasPrefix(s[i:], "："):
		i += len("：")
	default:
		return s, false
	}
	return strings.TrimLeft(s[i:], " "), true
}

// skipCounter skips a reply counter "[2]", "(2)" or "^2" at s[i:].
func skipCounter(s string, i int) int {
	if i >= len(s) {
		return i
	}
	var closing byte
	switch s[i] {
	case '[':
		closing = ']'
	case '(':
		closing = ')'
	case '^':
	default:
		return i
	}
	j := i + 1
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j == i+1 {
		return i
	}
	if closing == 0 {
		return j
	}
	if j < len(s) && s[j] == closing {
		return j + 1
	}
	return i
}

// cutLeadingBlobs removes bracketed tags at the start of s that are not ticket keys.
func cutLeadingBlobs(s string) string {
	for strings.HasPrefix(s, "[") {
		inner, after, closed := strings.Cut(s[1:], "]")
		if !closed || strings.Contains(inner, "[") {
			return s
		}
		if _, _, isKey := ParseKey(inner); isKey {
			return s
		}
		s = strings.TrimLeft(after, " ")
	}
	return s
}

// Outbound returns the subject for mail about the ticket with key: "[SD-1042] base subject". Reply
// prefixes, any "[SD-1042]" tag (anywhere, any case) and a bare "SD-1042" at the start are removed
// first, so replies to replies keep one key and no "Re: Re:" chain. An empty remainder gives "[SD-1042]".
// Outbound(key, Outbound(key, s)) == Outbound(key, s), and FindKey finds key in the result.
func Outbound(key, subject string) string {
	key = collapse(key)
	s := collapse(subject)
	for range 1 + len(s) { // every round that changes s shortens it
		prev := s
		s = removeTag(s, key)
		s = StripReplyPrefixes(s)
		s = cutBareKey(s, key)
		if s == prev {
			break
		}
	}
	if s == "" {
		return "[" + key + "]"
	}
	return "[" + key + "] " + s
}

// removeTag replaces every "[key]" tag in s (any case, spaces allowed inside the brackets) with a space
// and collapses the result.
func removeTag(s, key string) string {
	if key == "" {
		return s
	}
	var b strings.Builder
	found := false
	for i := 0; i < len(s); {
		if s[i] == '[' {
			j := skipSpace(s, i+1)
			if len(s)-j >= len(key) && strings.EqualFold(s[j:j+len(key)], key) {
				if k := skipSpace(s, j+len(key)); k < len(s) && s[k] == ']' {
					b.WriteByte(' ')
					i = k + 1
					found = true
					continue
				}
			}
		}
		b.WriteByte(s[i])
		i++
	}
	if !found {
		return s
	}
	return collapse(b.String())
}

// cutBareKey removes key from the start of s when it stands as a word, with a following ":" or "-"
// separator: "SD-1042: VPN down" becomes "VPN down".
func cutBareKey(s, key string) string {
	if key == "" || len(s) < len(key) || !strings.EqualFold(s[:len(key)], key) || !atWordEnd(s, len(key)) {
		return s
	}
	rest := strings.TrimLeft(s[len(key):], " ")
	for _, sep := range []string{":", "-", "–"} {
		if r, ok := strings.CutPrefix(rest, sep); ok {
			rest = strings.TrimLeft(r, " ")
			break
		}
	}
	return rest
}

// collapse turns every run of whitespace and control characters into one space, trims the ends and
// replaces invalid UTF-8 with U+FFFD.
func collapse(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := true // drops leading spaces
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return strings.TrimSuffix(b.String(), " ")
}

// Clean is the subject a new ticket takes from a mail: reply and forward prefixes removed and any
// bracketed ticket key of the given prefixes removed, so that a follow-up of SD-1000 opened by
// "Re: [SD-1000] Received: VPN is down" does not carry the old key into its own "[SD-1001] …" mail.
// It returns "" when nothing is left.
func Clean(s string, prefixes []string) string {
	s = StripReplyPrefixes(s)
	for limit := len(s); limit > 0; limit-- { // every pass removes a key: it ends
		key, ok := FindKey(s, prefixes)
		if !ok {
			break
		}
		i := strings.Index(strings.ToUpper(s), "["+strings.ToUpper(key)+"]")
		if i < 0 {
			break // a bare key is part of the words: keep it
		}
		s = StripReplyPrefixes(s[:i] + " " + s[i+len(key)+2:])
	}
	return strings.Join(strings.Fields(s), " ")
}
