package parse

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// unflow joins the soft-broken lines of a format=flowed text/plain body (RFC 3676 §4). A line ending
// in a space is flowed into the next line of the same quote depth; with delsp=yes that space is
// deleted (§4.2). Space-stuffing is undone (§4.4) and the signature separator "-- " is never flowed
// (§4.3). Quoted lines are re-emitted with one "> " style prefix per depth.
func unflow(text string, delsp bool) string {
	var sb strings.Builder
	sb.Grow(len(text))
	open := false // the previous line was flowed and the current output line continues
	curDepth := 0
	for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		depth := 0
		for depth < len(line) && line[depth] == '>' {
			depth++
		}
		content := line[depth:]
		content = strings.TrimPrefix(content, " ")
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if open && depth != curDepth {
			sb.WriteByte('\n')
			open = false
		}
		if !open {
			if depth > 0 {
				sb.WriteString(strings.Repeat(">", depth))
				sb.WriteByte(' ')
			}
		}
		if flowed && delsp && delspApplies(content) {
			content = content[:len(content)-1]
		}
		sb.WriteString(content)
		if !flowed {
			sb.WriteByte('\n')
		}
		open = flowed
		curDepth = depth
	}
	out := sb.String()
	if open || !strings.HasSuffix(text, "\n") {
		out = strings.TrimSuffix(out, "\n")
		if strings.HasSuffix(text, "\n") {
			out += "\n"
		}
	}
	return out
}

// delspApplies decides whether the trailing space of a flowed line is deleted under delsp=yes
// (RFC 3676 §4.2). Conforming senders of space-separated scripts double the space at a break, so a
// doubled space loses one; a single space after a letter of a space-separated script is kept, since
// mailers that label delsp=yes but break at a single space are common and deleting it glues words.
func delspApplies(content string) bool {
	t := content[:len(content)-1]
	if t == "" || strings.HasSuffix(t, " ") {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(t)
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar) || !unicode.IsLetter(r) && !unicode.IsPunct(r) && !unicode.IsDigit(r)
}
