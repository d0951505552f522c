package classify

import "strings"

// phrases is a set of lower-case phrases looked for in lower-cased text. Go's regexp engine
// slows to a few hundred KB/s on long case-insensitive alternations over report-sized texts;
// plain substring search keeps classification at memory speed on hostile input.
//
// A phrase written "\bword\b" must stand at word boundaries on the marked sides (ASCII letters
// and digits are word characters), so that "spam" does not match in "antispam-gw".
type phrases []string

// in returns the first phrase found in lower (which must already be lower-case), "" if none.
func (ps phrases) in(lower string) string {
	for _, p := range ps {
		if containsPhrase(lower, p) {
			return p
		}
	}
	return ""
}

// containsPhrase reports whether lower contains phrase p, honouring \b marks.
func containsPhrase(lower, p string) bool {
	start, end := strings.HasPrefix(p, `\b`), strings.HasSuffix(p, `\b`)
	p = strings.TrimSuffix(strings.TrimPrefix(p, `\b`), `\b`)
	if !start && !end {
		return strings.Contains(lower, p)
	}
	for from := 0; from <= len(lower)-len(p); {
		i := strings.Index(lower[from:], p)
		if i < 0 {
			return false
		}
		i += from
		j := i + len(p)
		if (!start || i == 0 || !isWordByte(lower[i-1])) && (!end || j == len(lower) || !isWordByte(lower[j])) {
			return true
		}
		from = i + 1
	}
	return false
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// cross returns every concatenation a+b, for phrase lists with alternatives in two places.
func cross(as, bs []string) phrases {
	out := make(phrases, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			out = append(out, a+b)
		}
	}
	return out
}

// join concatenates phrase lists.
func join(lists ...phrases) phrases {
	var out phrases
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// index returns the smallest offset at which any phrase occurs in lower, -1 if none. \b marks
// are not supported here.
func (ps phrases) index(lower string) int {
	best := -1
	for _, p := range ps {
		if i := strings.Index(lower, p); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// lowerASCII lower-cases ASCII letters only, so byte offsets stay those of s.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
