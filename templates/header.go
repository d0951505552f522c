package templates

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxHeaderRunes caps the length of a value returned by SanitizeHeader. RFC 5322 §2.1.1 limits a
// line to 998 octets and recommends 78 characters; a folded Subject may be longer than one line,
// but no subject or display name a person reads needs more than this.
const MaxHeaderRunes = 200

// ellipsis marks a value cut by SanitizeHeader or the truncate helper.
const ellipsis = "…"

// SanitizeHeader makes s safe to use as the value of an unstructured header field such as Subject
// (RFC 5322 §2.2.1, §3.6.5) or as a display name, whatever s contains:
//   - invalid UTF-8 becomes U+FFFD;
//   - CR, LF, TAB and every other Unicode white space (U+0085, U+2028, U+2029, ...) becomes a space,
//     so a value can never end the header field or start a new one (no "\r\nBcc:" injection);
//   - every other control character (C0, DEL, C1) is removed, as are the bidirectional embedding,
//     override and isolate characters (U+202A–U+202E, U+2066–U+2069) and U+FEFF, which can disguise text;
//   - runs of spaces collapse to one and the value is trimmed;
//   - the result is cut to at most MaxHeaderRunes runes, ending in "…" when cut.
//
// The result contains no byte below 0x20 and no 0x7f. Encoding non-ASCII text as RFC 2047 encoded
// words and folding long lines is left to the mail writer.
func SanitizeHeader(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	n := 0         // runes written
	space := false // a space is pending
	cut := false
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case unicode.IsSpace(r):
			space = n > 0
			continue
		case unicode.IsControl(r), hiddenFormat(r):
			continue
		}
		need := 1
		if space {
			need = 2
		}
		if n+need > MaxHeaderRunes {
			cut = true
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r) // RuneError for invalid input writes U+FFFD
		n++
	}
	if !cut {
		return b.String()
	}
	return cutRunes(b.String(), MaxHeaderRunes-1) + ellipsis
}

// hiddenFormat reports whether r is a format character that can reorder or hide text.
func hiddenFormat(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0xFEFF
}

// cutRunes returns the first n runes of s with trailing spaces removed.
func cutRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return strings.TrimRight(s[:pos], " ")
		}
		i++
	}
	return s
}
