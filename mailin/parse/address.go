package parse

import (
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
)

// wordDecoder lets net/mail decode RFC 2047 display names with every charset decodeCharset knows.
var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(label string, r io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		t, _, _ := decodeCharset(b, label)
		return strings.NewReader(t), nil
	},
}

var addressParser = &mail.AddressParser{WordDecoder: wordDecoder}

// maxAddresses bounds an address list against hostile input.
const maxAddresses = 1000

// parseAddressList parses an RFC 5322 §3.4 address list. When net/mail rejects it, it retries on the
// RFC 2047-decoded text and finally salvages every element that contains an address; ok is false when
// salvaging was needed. Empty groups ("undisclosed-recipients:;") yield nothing.
func parseAddressList(raw, hint string) ([]*mail.Address, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, true
	}
	if list, err := addressParser.ParseList(raw); err == nil {
		return cleanAddresses(list, hint), true
	}
	dec, _ := decodeHeader(raw, hint)
	if list, err := mail.ParseAddressList(dec); err == nil {
		return cleanAddresses(list, hint), false
	}
	var out []*mail.Address
	for _, elem := range splitAddressElements(dec) {
		out = append(out, salvageAddresses(elem)...)
		if len(out) >= maxAddresses {
			out = out[:maxAddresses]
			break
		}
	}
	return out, false
}

// cleanAddresses caps the list, decodes encoded words that net/mail leaves inside quoted display
// names, and guarantees valid UTF-8.
func cleanAddresses(list []*mail.Address, hint string) []*mail.Address {
	if len(list) > maxAddresses {
		list = list[:maxAddresses]
	}
	for _, a := range list {
		if strings.Contains(a.Name, "=?") {
			a.Name, _ = decodeHeader(a.Name, hint)
		}
		a.Name = strings.ToValidUTF8(a.Name, "\uFFFD")
		a.Address = strings.ToValidUTF8(a.Address, "\uFFFD")
	}
	return list
}

// splitAddressElements splits on commas and semicolons outside quotes, angle brackets and comments, and
// drops group display names ("Team: a@x, b@y;").
func splitAddressElements(s string) []string {
	var out []string
	var quoted bool
	angle, paren, start := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case angle == 0 && paren == 0 && (c == ',' || c == ';'):
			out = append(out, s[start:i])
			start = i + 1
		case angle == 0 && paren == 0 && c == ':' && !strings.Contains(s[start:i], "@"):
			start = i + 1 // group display name
		}
	}
	return append(out, s[start:])
}

// salvageAddresses extracts the addresses of one broken list element: every "<addr>" with the text
// before it as display name, or else the first token that contains "@".
func salvageAddresses(elem string) []*mail.Address {
	elem = strings.TrimSpace(elem)
	if elem == "" {
		return nil
	}
	if a, err := mail.ParseAddress(elem); err == nil {
		return []*mail.Address{a}
	}
	var out []*mail.Address
	rest := elem
	for len(out) < maxAddresses {
		before, inner, after, ok := nextAngle(rest)
		if !ok {
			break
		}
		if addr := strings.TrimSpace(inner); strings.Contains(addr, "@") {
			name := strings.Trim(strings.TrimSpace(before), "\"' ")
			out = append(out, &mail.Address{Name: strings.ToValidUTF8(name, "\uFFFD"), Address: strings.ToValidUTF8(addr, "\uFFFD")})
		}
		rest = after
	}
	if len(out) > 0 {
		return out
	}
	for _, tok := range strings.FieldsFunc(elem, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '<' || r == '>' || r == '"' || r == '(' || r == ')'
	}) {
		if at := strings.IndexByte(tok, '@'); at > 0 && at < len(tok)-1 {
			return []*mail.Address{{Address: strings.ToValidUTF8(tok, "\uFFFD")}}
		}
	}
	return nil
}

// parseMsgIDs extracts msg-ids (RFC 5322 §3.6.4) without angle brackets, in order. Lenient: ids
// without brackets are accepted when they contain "@"; duplicates are kept once.
func parseMsgIDs(raw string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		id = strings.TrimSpace(id)
		if id != "" && !seen[id] && len(out) < maxAddresses {
			seen[id] = true
			out = append(out, strings.ToValidUTF8(id, "\uFFFD"))
		}
	}
	rest := raw
	found := false
	for {
		_, inner, after, ok := nextAngle(rest)
		if !ok {
			break
		}
		found = true
		add(strings.Join(strings.Fields(inner), ""))
		rest = after
	}
	if !found {
		for _, tok := range strings.FieldsFunc(raw, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
			if strings.Contains(tok, "@") {
				add(strings.Trim(tok, "<>"))
			}
		}
	}
	return out
}

// dateLayouts are tried after net/mail's RFC 5322 §3.3 parser rejects a date.
var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700", "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05 -0700", "Mon, 2 January 2006 15:04:05 -0700", "Mon, Jan 2 2006 15:04:05 -0700",
	"Mon Jan 2 15:04:05 2006", "Mon Jan 2 15:04:05 MST 2006", "2006-01-02 15:04:05 -0700",
	"2006-01-02T15:04:05Z07:00", "Mon, 2 Jan 06 15:04:05 -0700", "Mon, 02-Jan-2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05", "2 Jan 2006 15:04:05", "Mon, 2 Jan 2006",
}

// parseDate parses an RFC 5322 date, then common broken forms; ok is false when nothing fits.
func parseDate(raw string) (time.Time, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return time.Time{}, false
	}
	if t, err := mail.ParseDate(raw); err == nil {
		return t, true
	}
	s := raw
	if i := strings.IndexByte(s, '('); i > 0 { // trailing comment "(PST)"
		s = s[:i]
	}
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, ",", ", ")), " ")
	s = strings.ReplaceAll(s, " ,", ",")
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// trimBrackets strips one pair of angle brackets and blanks from a single msg-id.
func trimBrackets(s string) string {
	ids := parseMsgIDs(s)
	if len(ids) > 0 {
		return ids[0]
	}
	return strings.ToValidUTF8(strings.Trim(strings.TrimSpace(s), "<>"), "\uFFFD")
}

// nextAngle finds the first "<…>" in s: the text before it, inside it and after it.
func nextAngle(s string) (before, inner, after string, ok bool) {
	lt := strings.IndexByte(s, '<')
	if lt < 0 {
		return "", "", "", false
	}
	gt := strings.IndexByte(s[lt:], '>')
	if gt < 0 {
		return "", "", "", false
	}
	return s[:lt], s[lt+1 : lt+gt], s[lt+gt+1:], true
}
