package thread

import (
	"strings"
	"unicode"
)

// MaxIDLength is the longest canonical Message-ID that ParseIDList returns, in bytes: RFC 5322 §2.1.1
// caps a line at 998 characters, and a msg-id (with its angle brackets) must fit on one.
const MaxIDLength = 996

// CanonicalID returns the form in which deskd compares Message-IDs: CleanID, lower-cased. RFC 5322
// treats id-left as case-sensitive, but clients and gateways do change case, and a collision between
// two IDs differing only in case is far less likely than a mangled reply. Stored IDs keep their case
// (CleanID) so that replies quote them exactly; look-ups compare lower(stored) with CanonicalID.
// CanonicalID(CanonicalID(x)) == CanonicalID(x).
func CanonicalID(id string) string {
	if c := strings.ToLower(CleanID(id)); len(c) <= MaxIDLength { // lower-casing may lengthen a few letters
		return c
	}
	return ""
}

// CleanID returns a Message-ID as deskd stores it: whitespace (including folding CRLF, RFC 5322
// §3.2.2) and control characters removed, angle brackets removed, invalid UTF-8 replaced with U+FFFD,
// letter case kept (RFC 5322 §3.6.4: id-left is case-sensitive). An ID longer than MaxIDLength is
// no valid msg-id and is returned as "": stored, it would not fit the Message-ID indexes (PostgreSQL
// refuses btree entries over 2,704 bytes), and one such mail would stop its mailbox.
func CleanID(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	for _, r := range id { // a range over invalid UTF-8 yields U+FFFD
		if r == '<' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) {
			continue
		}
		b.WriteRune(r)
	}
	if b.Len() > MaxIDLength {
		return ""
	}
	return b.String()
}

// ParseIDList returns the canonical (see CanonicalID) Message-IDs in a msg-id list header field:
// References, In-Reply-To or Message-ID (RFC 5322 §3.6.4: 1*msg-id, each "<" id-left "@" id-right ">"
// with optional CFWS around it). It returns them in order of appearance, without duplicates or empty
// IDs, and never fails. Being hostile-input tolerant, it
//   - skips comments "(…)" (nested, with quoted pairs) and quoted strings outside brackets, so the
//     obsolete "In-Reply-To: Your message of "Mon, 2 Apr" <id@host>" (RFC 5322 §4.5.4) yields id@host;
//   - accepts commas and any whitespace, folding included, as separators;
//   - accepts a bracketed ID without "@", and takes the last "<" of "<junk <id@host>";
//   - accepts bare IDs without brackets when they look like id-left@id-right, trimming trailing
//     ".", ";" and ":" (so "a@b, c@d" yields two IDs), and an unterminated "<id@host";
//   - drops IDs longer than MaxIDLength (CleanID).
func ParseIDList(header string) []string {
	var out []string
	seen := make(map[string]bool)
	add := func(raw string) {
		id := CanonicalID(raw)
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		out = append(out, id)
	}
	for i := 0; i < len(header); {
		switch c := header[i]; {
		case c == '(':
			i = skipComment(header, i)
		case c == '"':
			i = skipQuoted(header, i)
		case c == '<':
			end := strings.IndexByte(header[i+1:], '>')
			if end < 0 {
				// Unterminated: read a bare word after the bracket.
				j := bareWordEnd(header, i+1)
				if w := header[i+1 : j]; looksLikeBareID(w) {
					add(trimBare(w))
				}
				i = max(j, i+1)
				continue
			}
			inner := header[i+1 : i+1+end]
			if k := strings.LastIndexByte(inner, '<'); k >= 0 {
				inner = inner[k+1:]
			}
			add(inner)
			i += end + 2
		case c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ')' || c == '>':
			i++
		default:
			j := bareWordEnd(header, i)
			if w := trimBare(header[i:j]); looksLikeBareID(w) {
				add(w)
			}
			i = max(j, i+1)
		}
	}
	return out
}

// bareWordEnd returns the index after the bare word starting at i.
func bareWordEnd(s string, i int) int {
	for i < len(s) && strings.IndexByte(" \t\r\n,<>()\"", s[i]) < 0 {
		i++
	}
	return i
}

// looksLikeBareID reports whether w has the shape id-left@id-right.
func looksLikeBareID(w string) bool {
	at := strings.LastIndexByte(w, '@')
	return at > 0 && at < len(w)-1
}

func trimBare(w string) string { return strings.TrimRight(w, ".;:") }

// skipComment returns the index after the comment that starts at s[i] == '(' (RFC 5322 §3.2.2),
// or len(s) when it is unterminated.
func skipComment(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(s)
}

// skipQuoted returns the index after the quoted string that starts at s[i] == '"' (RFC 5322 §3.2.4),
// or len(s) when it is unterminated.
func skipQuoted(s string, i int) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(s)
}
