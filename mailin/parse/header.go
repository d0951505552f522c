package parse

import (
	"bytes"
	"encoding/base64"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// field is one raw header field: canonical key and unfolded value (possibly 8-bit, undecoded).
type field struct {
	key   string
	value string
}

// maxHeaderFields bounds the fields kept per header block against hostile input.
const maxHeaderFields = 2000

// splitHeader splits an entity into its header fields and body (RFC 5322 §2.1, §2.2.3). Lines may
// end in CRLF or bare LF. It is lenient: a leading mbox "From " line is skipped, a leading blank on the
// first field is ignored, and a line that is neither a field nor a continuation is folded into the
// previous field (a warning says so). A header without the blank separator line consumes everything.
func splitHeader(b []byte) (fields []field, body []byte, warns []string) {
	pos := 0
	first := true
	// The open field's value is b[valStart:valEnd], folded lines included; it is unfolded once when
	// the field ends, so long folded headers cost linear time.
	open, valStart, valEnd := false, 0, 0
	var key string
	closeField := func() {
		if open && len(fields) < maxHeaderFields {
			fields = append(fields, field{key: key, value: unfold(b[valStart:valEnd])})
		}
		open = false
	}
	for pos < len(b) {
		end := bytes.IndexByte(b[pos:], '\n')
		next := len(b)
		lineEnd := len(b)
		if end >= 0 {
			lineEnd = pos + end
			next = lineEnd + 1
		}
		line := bytes.TrimSuffix(b[pos:lineEnd], []byte{'\r'})
		if len(line) == 0 {
			closeField()
			return fields, b[next:], warns
		}
		switch {
		case first && bytes.HasPrefix(line, []byte("From ")):
			// mbox separator line
		case (line[0] == ' ' || line[0] == '\t') && open:
			valEnd = pos + len(line) // RFC 5322 §2.2.3: unfolding removes only the line break
		default:
			trimmed := bytes.TrimLeft(line, " \t")
			colon := bytes.IndexByte(trimmed, ':')
			name := trimmed
			if colon > 0 {
				name = bytes.TrimRight(trimmed[:colon], " \t")
			}
			switch {
			case colon > 0 && validFieldName(name):
				closeField()
				open, key = true, textproto.CanonicalMIMEHeaderKey(string(name))
				valStart = pos + (len(line) - len(trimmed)) + colon + 1
				valEnd = pos + len(line)
				if len(trimmed) != len(line) && first {
					warns = append(warns, "header starts with whitespace")
				}
			case open:
				if len(warns) < maxWarnings {
					warns = append(warns, "malformed header line folded into "+key)
				}
				valEnd = pos + len(line)
			default:
				// No header at all: the entity is all body.
				warns = append(warns, "no header block")
				return nil, b, warns
			}
		}
		first = false
		pos = next
	}
	closeField()
	return fields, nil, warns
}

// unfold joins a folded field value: line breaks before whitespace are removed (RFC 5322 §2.2.3);
// a break before a non-blank (a malformed continuation) becomes a space.
func unfold(v []byte) string {
	if bytes.IndexByte(v, '\n') < 0 {
		return string(v)
	}
	var sb strings.Builder
	sb.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' && i+1 < len(v) && v[i+1] == '\n' {
			continue
		}
		if c == '\n' {
			if i+1 < len(v) && v[i+1] != ' ' && v[i+1] != '\t' {
				sb.WriteByte(' ')
			}
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func validFieldName(name []byte) bool {
	if len(name) == 0 || len(name) > 100 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// get returns the first value of key (canonical form) or "".
func get(fields []field, key string) string {
	for i := range fields {
		if fields[i].key == key {
			return fields[i].value
		}
	}
	return ""
}

// decodeHeader decodes RFC 2047 encoded words in a header value leniently and returns valid UTF-8.
// Unlike mime.WordDecoder it also decodes words inside quoted strings and words not separated by
// whitespace, joins adjacent words of one charset before converting (a multi-byte character may be
// split across words), accepts unpadded or slightly broken base64, and decodes raw 8-bit text with
// hint (the charset of the body) or detection. It reports whether something had to be repaired.
func decodeHeader(s, hint string) (string, bool) {
	if !strings.Contains(s, "=?") {
		if isASCIIString(s) {
			return strings.TrimSpace(s), false
		}
		return strings.TrimSpace(decodeRaw8bit(s, hint)), false
	}
	var sb strings.Builder
	sb.Grow(len(s))
	repaired := false
	var pend []byte   // decoded bytes of adjacent encoded words awaiting charset conversion
	var pendCS string // their charset
	flush := func() {
		if len(pend) > 0 {
			t, _, w := decodeCharset(pend, pendCS)
			if w != "" {
				repaired = true
			}
			sb.WriteString(t)
			pend, pendCS = pend[:0], ""
		}
	}
	i := 0
	lastWordEnd := -1
	for i < len(s) {
		j := strings.Index(s[i:], "=?")
		if j < 0 {
			flush()
			sb.WriteString(decodeRaw8bit(s[i:], hint))
			break
		}
		j += i
		cs, data, end, ok := parseEncodedWord(s, j)
		if !ok {
			flush()
			sb.WriteString(decodeRaw8bit(s[i:j+2], hint))
			i = j + 2
			continue
		}
		gap := s[i:j]
		if !(lastWordEnd == i && strings.TrimSpace(gap) == "") {
			flush()
			sb.WriteString(decodeRaw8bit(gap, hint))
		}
		cs = normalizeCharset(cs)
		if len(pend) > 0 && cs != pendCS {
			flush()
		}
		decoded, bad := decodeWordData(data)
		if bad {
			repaired = true
		}
		pend = append(pend, decoded...)
		pendCS = cs
		i = end
		lastWordEnd = end
	}
	flush()
	return strings.TrimSpace(sb.String()), repaired
}

// parseEncodedWord parses "=?charset?X?text?=" starting at s[at] (RFC 2047 §2). The returned data
// keeps its encoding letter as the first byte.
func parseEncodedWord(s string, at int) (charset, data string, end int, ok bool) {
	rest := s[at+2:]
	q1 := strings.IndexByte(rest, '?')
	if q1 <= 0 || q1 > 64 || strings.ContainsAny(rest[:q1], " \t\"()<>@,;:") {
		return "", "", 0, false
	}
	if len(rest) < q1+3 || rest[q1+2] != '?' {
		return "", "", 0, false
	}
	enc := rest[q1+1] | 0x20
	if enc != 'b' && enc != 'q' {
		return "", "", 0, false
	}
	text := rest[q1+3:]
	e := strings.Index(text, "?=")
	if e < 0 || e > 1000 {
		return "", "", 0, false
	}
	if enc == 'b' && strings.ContainsAny(text[:e], " \t") {
		return "", "", 0, false
	}
	return rest[:q1], string(enc) + text[:e], at + 2 + q1 + 3 + e + 2, true
}

// decodeWordData decodes the payload of one encoded word; bad reports repaired damage.
func decodeWordData(data string) ([]byte, bool) {
	enc, text := data[0], data[1:]
	if enc == 'b' {
		trimmed := strings.TrimRight(text, "=")
		if out, err := base64.RawStdEncoding.DecodeString(trimmed); err == nil {
			return out, false
		}
		out, _ := decodeBase64Lenient([]byte(text))
		return out, true
	}
	out := make([]byte, 0, len(text))
	bad := false
	for k := 0; k < len(text); k++ {
		c := text[k]
		switch {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && k+2 < len(text) && isHex(text[k+1]) && isHex(text[k+2]):
			out = append(out, unhex(text[k+1])<<4|unhex(text[k+2]))
			k += 2
		default:
			if c == '=' {
				bad = true
			}
			out = append(out, c)
		}
	}
	return out, bad
}

// decodeRaw8bit turns unencoded header text into valid UTF-8: UTF-8 stays, anything else is decoded
// with hint or detected (RFC 6532 allows UTF-8; older mailers send their local charset).
func decodeRaw8bit(s, hint string) string {
	if isASCIIString(s) || utf8.ValidString(s) {
		return s
	}
	t, _, _ := decodeCharset([]byte(s), hint)
	return t
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}
