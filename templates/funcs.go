package templates

import (
	"html"
	htemplate "html/template"
	"strings"
	"time"
	"unicode/utf8"
)

// sigSep is the signature separator line, RFC 3676 §4.3.
const sigSep = "-- "

// textFuncs returns the helpers every template may call, speaking the language of loc; the
// package comment lists them.
func textFuncs(loc *locale) map[string]any {
	return map[string]any{
		"date":     func(t any) string { return formatTime(t, loc.date) },
		"datetime": func(t any) string { return formatTime(t, loc.dateTime) },
		"relative": func(now time.Time, t any) string {
			tt, ok := asTime(t)
			if !ok {
				return ""
			}
			return loc.relative(now, tt)
		},
		"span":        loc.span,
		"label":       loc.label,
		"person":      person,
		"quote":       quote,
		"indent":      indent,
		"truncate":    truncate,
		"trim":        strings.TrimSpace,
		"oneline":     SanitizeHeader,
		"public":      publicOnly,
		"take":        take,
		"sigsep":      func() string { return sigSep },
		"replyMarker": func() string { return loc.marker },
	}
}

// htmlFuncs returns textFuncs plus paras, for HTML bodies.
func htmlFuncs(loc *locale) map[string]any {
	f := textFuncs(loc)
	f["paras"] = paras
	return f
}

// asTime unwraps a time.Time or non-nil *time.Time; zero times count as absent.
func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil {
			return time.Time{}, false
		}
		return *t, !t.IsZero()
	}
	return time.Time{}, false
}

func formatTime(v any, layout func(time.Time) string) string {
	t, ok := asTime(v)
	if !ok {
		return ""
	}
	return layout(t)
}

// person formats a Person for reading, not for an address header.
func person(p Person) string {
	switch {
	case p.Name != "" && p.Email != "":
		return p.Name + " <" + p.Email + ">"
	case p.Name != "":
		return p.Name
	}
	return p.Email
}

// splitLines normalises line endings and splits s into lines, dropping trailing empty lines.
func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// quote prefixes every line with "> " (">" alone for empty lines, so no line ends in a space).
func quote(s string) string {
	lines := splitLines(s)
	for i, ln := range lines {
		if ln == "" || strings.HasPrefix(ln, ">") {
			lines[i] = ">" + ln
		} else {
			lines[i] = "> " + ln
		}
	}
	return strings.Join(lines, "\n")
}

// indent prefixes every non-empty line with n spaces.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", max(n, 0))
	lines := splitLines(s)
	for i, ln := range lines {
		if ln != "" {
			lines[i] = pad + ln
		}
	}
	return strings.Join(lines, "\n")
}

// truncate cuts s to at most n runes, the last being "…" when cut.
func truncate(n int, s string) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return cutRunes(s, n-1) + ellipsis
}

// take returns the first n messages.
func take(n int, ms []MessageView) []MessageView {
	if n < len(ms) {
		return ms[:max(n, 0)]
	}
	return ms
}

// paras renders plain text as HTML: blank lines separate paragraphs, single line breaks become
// <br>. Everything is escaped, so the result is safe whatever s holds.
func paras(s string) htemplate.HTML {
	var b strings.Builder
	var para []string
	flush := func() {
		if len(para) == 0 {
			return
		}
		b.WriteString(`<p style="margin:0 0 1em 0">`)
		for i, ln := range para {
			if i > 0 {
				b.WriteString("<br>\n")
			}
			b.WriteString(html.EscapeString(ln))
		}
		b.WriteString("</p>\n")
		para = para[:0]
	}
	for _, ln := range splitLines(s) {
		if strings.TrimSpace(ln) == "" {
			flush()
			continue
		}
		para = append(para, ln)
	}
	flush()
	return htemplate.HTML(b.String()) //nolint:gosec // every piece of text above is escaped
}
