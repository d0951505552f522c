package classify

import (
	"strings"
)

// Limits that keep classification cheap on hostile input. Report parts and bounce texts are
// small in practice; anything beyond these sizes is the returned message or garbage.
const (
	maxScan       = 64 << 10 // bytes of a part or text that are examined
	maxRecipients = 1000     // recipients kept per report
	maxFieldLen   = 8 << 10  // bytes of one unfolded field value
	maxContext    = 8 << 10  // bytes of report text judged together with a recipient
)

// clip returns at most maxScan bytes of s.
func clip(s string) string {
	if len(s) > maxScan {
		return s[:maxScan]
	}
	return s
}

// normalizeNewlines turns CRLF and bare CR into LF.
func normalizeNewlines(s string) string {
	if !strings.ContainsRune(s, '\r') {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// field is one "Name: value" line of a header-like block, unfolded.
type field struct {
	name  string // lower-case
	value string // unfolded, trimmed
}

// parseFieldGroups splits header-like text (RFC 5322 §2.2 syntax, as used by the report
// bodies of RFC 3464 §2.1, RFC 8098 §3.1 and RFC 5965 §3.1) into groups separated by blank
// lines, stopping after maxGroups groups (-1: all). Folded lines are unfolded (RFC 5322
// §2.2.3), values capped at maxFieldLen. Lines that are not fields are ignored.
func parseFieldGroups(text string, maxGroups int) [][]field {
	var groups [][]field
	var cur []field
	var folded strings.Builder // continuation of the last field in cur
	end := func() {
		if len(cur) > 0 && folded.Len() > 0 {
			cur[len(cur)-1].value = strings.TrimSpace(cur[len(cur)-1].value + folded.String())
		}
		folded.Reset()
	}
	for _, line := range strings.Split(normalizeNewlines(clip(text)), "\n") {
		if strings.TrimSpace(line) == "" {
			end()
			if len(cur) > 0 {
				groups = append(groups, cur)
				cur = nil
				if len(groups) == maxGroups {
					return groups
				}
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(cur) > 0 && folded.Len() < maxFieldLen {
				folded.WriteByte(' ')
				folded.WriteString(strings.TrimSpace(line))
			}
			continue
		}
		end()
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		cur = append(cur, field{name: strings.ToLower(name), value: strings.TrimSpace(value)})
	}
	end()
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// headerField returns the first value of the named field in the header block at the start of
// text (leading blank lines skipped, the block ends at the first blank line); "" when absent.
func headerField(text, name string) string {
	text = strings.TrimLeft(normalizeNewlines(clip(text)), "\n")
	groups := parseFieldGroups(text, 1)
	if len(groups) == 0 {
		return ""
	}
	name = strings.ToLower(name)
	for _, f := range groups[0] {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// msgID extracts one msg-id (RFC 5322 §3.6.4) from a field value, without angle brackets.
func msgID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	if f := strings.Fields(v); len(f) > 0 {
		return strings.Trim(f[0], "<>")
	}
	return ""
}
