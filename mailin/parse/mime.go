package parse

import (
	"bytes"
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
)

// parseMediaType parses a Content-Type or Content-Disposition value leniently (RFC 2045 §5.1,
// RFC 2183): unquoted tspecials, duplicate parameters (the first wins), a missing closing quote and
// empty values are accepted. RFC 2231 continuations and charset/language-tagged values are joined and
// decoded, and RFC 2047 encoded words in values (common in file names, though not allowed) are decoded.
// hint decodes raw 8-bit values. The type is lower-case; params keys are lower-case.
func parseMediaType(v, hint string) (string, map[string]string) {
	semi := strings.IndexByte(v, ';')
	typ := v
	rest := ""
	if semi >= 0 {
		typ, rest = v[:semi], v[semi+1:]
	}
	if i := strings.IndexByte(typ, '('); i >= 0 { // RFC 2045 comment
		typ = typ[:i]
	}
	if f := strings.Fields(typ); len(f) > 1 && strings.Contains(f[0], "/") {
		// "application/pdf name=x.pdf": a missing semicolon
		typ = f[0]
		rest = strings.Join(f[1:], " ") + ";" + rest
	}
	typ = sanitizeToken(strings.ToLower(typ))
	if rest == "" {
		return typ, nil
	}
	type piece struct {
		idx int
		ext bool
		val string
	}
	pieces := map[string][]piece{}
	var order []string
	for len(rest) > 0 {
		rest = strings.TrimLeft(rest, " \t\r\n;")
		if rest == "" {
			break
		}
		eq := strings.IndexAny(rest, "=;")
		if eq < 0 || rest[eq] == ';' {
			if eq < 0 {
				break
			}
			rest = rest[eq+1:]
			continue
		}
		name := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t\r\n")
		var val string
		if strings.HasPrefix(rest, "\"") {
			var sb strings.Builder
			k := 1
			for ; k < len(rest); k++ {
				if rest[k] == '\\' && k+1 < len(rest) {
					k++
					sb.WriteByte(rest[k])
					continue
				}
				if rest[k] == '"' {
					break
				}
				sb.WriteByte(rest[k])
			}
			val = sb.String()
			if k < len(rest) {
				rest = rest[k+1:]
			} else {
				rest = ""
			}
		} else {
			end := strings.IndexByte(rest, ';')
			if end < 0 {
				end = len(rest)
			}
			val = strings.TrimSpace(rest[:end])
			rest = rest[end:]
		}
		base, idx, ext := name, -1, false
		if strings.HasSuffix(base, "*") {
			ext = true
			base = base[:len(base)-1]
		}
		if star := strings.IndexByte(base, '*'); star >= 0 {
			if n, err := strconv.Atoi(base[star+1:]); err == nil && n >= 0 && n < 1000 {
				idx = n
				base = base[:star]
			}
		}
		if base == "" {
			continue
		}
		if _, seen := pieces[base]; !seen {
			order = append(order, base)
		} else if idx < 0 {
			continue // duplicate parameter: keep the first
		}
		if len(pieces[base]) < 1000 {
			pieces[base] = append(pieces[base], piece{idx, ext, val})
		}
	}
	params := make(map[string]string, len(order))
	for _, name := range order {
		ps := pieces[name]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].idx < ps[j].idx })
		// RFC 2231 §4: the first extended piece carries charset'language'.
		charset := ""
		var raw []byte
		for k, p := range ps {
			if k > 0 && p.idx < 0 {
				break
			}
			val := p.val
			if p.ext {
				if k == 0 {
					if q := strings.IndexByte(val, '\''); q >= 0 {
						if q2 := strings.IndexByte(val[q+1:], '\''); q2 >= 0 {
							charset = val[:q]
							val = val[q+1+q2+1:]
						}
					}
				}
				raw = append(raw, percentDecode(val)...)
			} else {
				raw = append(raw, val...)
			}
		}
		var s string
		if charset != "" {
			s, _, _ = decodeCharset(raw, charset)
		} else {
			s, _ = decodeHeader(string(raw), hint)
		}
		params[name] = s
	}
	return typ, params
}

// sanitizeToken keeps only RFC 2045 token characters and "/" of a media type.
func sanitizeToken(t string) string {
	clean := true
	for i := 0; i < len(t); i++ {
		if !isTokenChar(t[i]) {
			clean = false
			break
		}
	}
	if clean {
		return t
	}
	var sb strings.Builder
	for i := 0; i < len(t); i++ {
		if isTokenChar(t[i]) {
			sb.WriteByte(t[i])
		}
	}
	return sb.String()
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || strings.IndexByte("/!#$&.+^_-", c) >= 0
}

func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// decodeTransfer undoes a Content-Transfer-Encoding (RFC 2045 §6). Damage is repaired, not fatal: the
// returned warning is "" when the body was clean. Identity encodings return body without copying.
func decodeTransfer(cte string, body []byte) ([]byte, string) {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return body, ""
	case "base64":
		return decodeBase64Lenient(body)
	case "quoted-printable":
		return decodeQP(body)
	case "x-uuencode", "x-uue", "uuencode", "uue":
		if out, ok := decodeUU(body); ok {
			return out, ""
		}
		return body, "malformed uuencode body kept as is"
	}
	if strings.Contains(cte, "quoted") {
		return decodeQP(body)
	}
	if strings.Contains(cte, "base64") {
		return decodeBase64Lenient(body)
	}
	return body, "unknown Content-Transfer-Encoding " + quote(cte) + ", body kept as is"
}

// decodeBase64Lenient decodes base64 (RFC 2045 §6.8) ignoring characters outside the alphabet and
// accepting missing padding, padding in the middle (concatenated encodings) and a truncated tail.
func decodeBase64Lenient(b []byte) ([]byte, string) {
	dst := make([]byte, len(b)/4*3+3) // room for an unpadded tail too
	if n, err := base64.StdEncoding.Decode(dst, b); err == nil {
		return dst[:n], ""
	}
	if !looksBase64(b) {
		return b, "body labelled base64 is not base64, kept as is"
	}
	warn := ""
	out := dst[:0]
	seg := make([]byte, 0, 1024)
	flush := func() {
		if len(seg)%4 == 1 {
			seg = seg[:len(seg)-1]
			warn = "truncated base64"
		}
		n, _ := base64.RawStdEncoding.Decode(out[len(out):cap(out)], seg)
		out = out[:len(out)+n]
		seg = seg[:0]
	}
	for _, c := range b {
		switch {
		case b64val(c) >= 0:
			seg = append(seg, c)
			if len(seg) == cap(seg) {
				// keep segments a multiple of 4 so a flush does not split a quantum
				flush()
			}
		case c == '=':
			if len(seg) > 0 {
				if len(seg)%4 == 1 {
					warn = "malformed base64"
				}
				flush()
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			warn = "malformed base64: invalid characters skipped"
		}
	}
	if len(seg)%4 != 0 && warn == "" {
		warn = "malformed base64: missing padding"
	}
	flush()
	if warn == "" {
		warn = "malformed base64"
	}
	return out, warn
}

// looksBase64 rejects bodies that are plainly text: base64 lines never contain inner blanks or
// punctuation outside the alphabet.
func looksBase64(b []byte) bool {
	bad := 0
	for i := 0; i+1 < len(b); i++ {
		c := b[i]
		if (c == ' ' || c == '\t') && i > 0 && b[i-1] > ' ' && b[i+1] > ' ' {
			bad++
		} else if c > ' ' && c != '=' && b64val(c) < 0 {
			bad++
		}
	}
	return bad <= 2 || bad*100 < len(b)
}

// decodeQP decodes quoted-printable (RFC 2045 §6.7) leniently: soft breaks with trailing blanks,
// lower-case hex, and a bare "=" followed by something other than hex are accepted (the "=" is kept).
func decodeQP(b []byte) ([]byte, string) {
	out := make([]byte, 0, len(b))
	warn := ""
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
			continue
		}
		// soft line break, possibly with trailing whitespace before the line end
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		if j < len(b) && b[j] == '\r' {
			j++
		}
		if j < len(b) && b[j] == '\n' {
			i = j
			continue
		}
		if j >= len(b) {
			i = j - 1
			continue
		}
		warn = "malformed quoted-printable"
		out = append(out, c)
	}
	return out, warn
}

// decodeUU decodes the first "begin ... end" block of a uuencoded body.
func decodeUU(b []byte) ([]byte, bool) {
	var out []byte
	in := false
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		line = bytes.TrimRight(line, "\r")
		if !in {
			in = bytes.HasPrefix(line, []byte("begin "))
			continue
		}
		if bytes.Equal(line, []byte("end")) || len(line) == 0 {
			break
		}
		n := int((line[0] - ' ') & 0x3f)
		data := line[1:]
		for k := 0; k < len(data) && n > 0; k += 4 {
			var q [4]byte
			for m := 0; m < 4 && k+m < len(data); m++ {
				q[m] = (data[k+m] - ' ') & 0x3f
			}
			three := []byte{q[0]<<2 | q[1]>>4, q[1]<<4 | q[2]>>2, q[2]<<6 | q[3]}
			if n < 3 {
				three = three[:n]
			}
			out = append(out, three...)
			n -= len(three)
		}
	}
	return out, in
}

// splitMultipart splits a multipart body at its boundary delimiters (RFC 2046 §5.1.1). A delimiter is
// "--boundary" at the start of a line followed by optional blanks and a line end; the line break before
// it belongs to the delimiter. It reports whether any delimiter and the close delimiter were found; a
// missing close delimiter leaves the last part running to the end of the body.
func splitMultipart(body []byte, boundary string, maxParts int) (parts [][]byte, found, closed bool) {
	delim := []byte("--" + boundary)
	pos := 0
	start := -1 // start of the current part's content
	for pos <= len(body) {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		pos = i + len(delim)
		if i > 0 && body[i-1] != '\n' {
			continue
		}
		rest := body[pos:]
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose {
			rest = rest[2:]
		}
		k := 0
		for k < len(rest) && (rest[k] == ' ' || rest[k] == '\t') {
			k++
		}
		if k < len(rest) && rest[k] != '\r' && rest[k] != '\n' && !isClose {
			continue // a longer boundary that shares this prefix
		}
		if start >= 0 {
			end := i
			if end > start && body[end-1] == '\n' {
				end--
				if end > start && body[end-1] == '\r' {
					end--
				}
			}
			if len(parts) < maxParts {
				parts = append(parts, body[start:end])
			}
		}
		found = true
		if isClose {
			return parts, true, true
		}
		nl := bytes.IndexByte(rest[k:], '\n')
		if nl < 0 {
			start = len(body)
		} else {
			start = pos + (len(body[pos:]) - len(rest)) + k + nl + 1
		}
		pos = start
	}
	if start >= 0 && start <= len(body) && len(parts) < maxParts {
		parts = append(parts, body[start:])
	}
	return parts, found, false
}

// guessBoundary finds a boundary for a multipart entity whose Content-Type lacks one: the first line
// that starts with "--" and is long enough to be a generated boundary.
func guessBoundary(body []byte) string {
	for len(body) > 0 {
		var line []byte
		line, body = nextLine(body)
		line = bytes.TrimRight(line, "\r \t")
		if len(line) > 6 && bytes.HasPrefix(line, []byte("--")) && !bytes.ContainsAny(line[2:], " ") {
			return string(bytes.TrimSuffix(line[2:], []byte("--")))
		}
	}
	return ""
}

// nextLine splits b after its first line feed: the line without the LF, and the rest.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}
