package parse

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLToText renders an HTML document as readable plain text: paragraphs and blocks become line
// breaks, <br> a line break, list items "- " or "1. ", table cells are separated by " | ", blockquotes
// are prefixed with "> " (so quoted history can be stripped like plain-text quoting), link targets are
// kept as "text (https://…)", entities are decoded, and script, style and title content is dropped.
// It runs in one pass over the tokens and never fails: broken markup yields best-effort text.
func HTMLToText(doc string) string {
	r := htmlRenderer{}
	r.sb.Grow(len(doc) / 3)
	z := html.NewTokenizer(strings.NewReader(doc))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return r.result()
		case html.TextToken:
			if r.skip == 0 {
				r.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			var href, start string
			if hasAttr && (a == atom.A || a == atom.Ol) {
				for {
					k, v, more := z.TagAttr()
					switch string(k) {
					case "href":
						href = strings.TrimSpace(string(v))
					case "start":
						start = string(v)
					}
					if !more {
						break
					}
				}
			}
			r.start(a, href, start, tt == html.SelfClosingTagToken)
		case html.EndTagToken:
			name, _ := z.TagName()
			r.end(atom.Lookup(name))
		}
	}
}

// maxQuoteDepth bounds the "> " prefixes written for nested blockquotes.
const maxQuoteDepth = 10

type listState struct {
	ordered bool
	n       int
}

type linkState struct {
	href  string
	start int // output length when the link opened
}

type htmlRenderer struct {
	sb      strings.Builder
	skip    int // inside script/style/title
	pre     int
	quote   int // blockquote depth
	nl      int // line breaks owed before the next text (0-2)
	space   bool
	prefix  string // list marker owed at the start of the next line
	cellSep bool   // " | " owed before the next text on this line
	rowText bool
	lists   []listState
	links   []linkState
}

func (r *htmlRenderer) breakLine(n int) {
	if r.nl < n {
		r.nl = n
	}
}

func (r *htmlRenderer) start(a atom.Atom, href, start string, selfClosing bool) {
	switch a {
	case atom.Script, atom.Style, atom.Title, atom.Template:
		if !selfClosing {
			r.skip++
		}
	case atom.Br:
		if r.nl < 2 {
			r.nl++
		}
	case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Table, atom.Hr:
		r.breakLine(2)
	case atom.Pre:
		r.breakLine(2)
		r.pre++
	case atom.Blockquote:
		r.breakLine(1)
		if r.quote < maxQuoteDepth {
			r.quote++
		}
	case atom.Ul, atom.Ol:
		r.breakLine(1)
		l := listState{ordered: a == atom.Ol}
		if n, err := strconv.Atoi(start); err == nil && n > 0 && n < 1e6 {
			l.n = n - 1
		}
		if len(r.lists) < 50 {
			r.lists = append(r.lists, l)
		}
	case atom.Li:
		r.breakLine(1)
		indent := ""
		marker := "- "
		if k := len(r.lists); k > 0 {
			indent = strings.Repeat("  ", k-1)
			if l := &r.lists[k-1]; l.ordered {
				l.n++
				marker = strconv.Itoa(l.n) + ". "
			}
		}
		r.prefix = indent + marker
	case atom.Tr:
		r.breakLine(1)
		r.rowText = false
		r.cellSep = false
	case atom.Td, atom.Th:
		if r.rowText {
			r.cellSep = true
		}
	case atom.A:
		if len(r.links) < 100 {
			r.links = append(r.links, linkState{href: href, start: r.sb.Len()})
		}
	case atom.Div, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Address, atom.Center,
		atom.Dl, atom.Dt, atom.Dd, atom.Form, atom.Fieldset, atom.Caption, atom.Nav, atom.Aside,
		atom.Main, atom.Figure, atom.Figcaption, atom.Details, atom.Summary:
		r.breakLine(1)
	}
}

func (r *htmlRenderer) end(a atom.Atom) {
	switch a {
	case atom.Script, atom.Style, atom.Title, atom.Template:
		if r.skip > 0 {
			r.skip--
		}
	case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Table:
		r.breakLine(2)
	case atom.Pre:
		r.breakLine(2)
		if r.pre > 0 {
			r.pre--
		}
	case atom.Blockquote:
		r.breakLine(1)
		if r.quote > 0 {
			r.quote--
		}
	case atom.Ul, atom.Ol:
		r.breakLine(1)
		if len(r.lists) > 0 {
			r.lists = r.lists[:len(r.lists)-1]
		}
	case atom.A:
		if len(r.links) == 0 {
			return
		}
		l := r.links[len(r.links)-1]
		r.links = r.links[:len(r.links)-1]
		if target := linkTarget(l.href, r.sb.String()[l.start:]); target != "" {
			r.text(" (" + target + ")")
		}
	case atom.Div, atom.Li, atom.Tr, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Address,
		atom.Center, atom.Dl, atom.Dt, atom.Dd, atom.Form, atom.Fieldset, atom.Caption, atom.Nav,
		atom.Aside, atom.Main, atom.Figure, atom.Figcaption, atom.Details, atom.Summary:
		r.breakLine(1)
	}
}

// linkTarget returns what to print after a link's text: its URL when it adds information.
func linkTarget(href, text string) string {
	text = strings.TrimSpace(text)
	lower := strings.ToLower(href)
	switch {
	case text == "":
		return ""
	case strings.HasPrefix(lower, "mailto:"):
		addr := href[7:]
		if q := strings.IndexByte(addr, '?'); q >= 0 {
			addr = addr[:q]
		}
		if addr == "" || strings.Contains(text, "@") {
			return ""
		}
		return addr
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"), strings.HasPrefix(lower, "ftp://"):
		bare := strings.TrimSuffix(href[strings.Index(href, "//")+2:], "/")
		t := strings.TrimSuffix(text, "/")
		if t == href || t == bare || strings.TrimPrefix(t, "www.") == strings.TrimPrefix(bare, "www.") || strings.Contains(text, href) {
			return ""
		}
		return href
	}
	return ""
}

// text writes character data, collapsing whitespace outside <pre>.
func (r *htmlRenderer) text(s string) {
	if r.pre > 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		for i, line := range strings.Split(s, "\n") {
			if i > 0 {
				r.nl++
			}
			if line != "" {
				r.flush()
				r.sb.WriteString(line)
			}
		}
		return
	}
	start := 0
	for i := 0; i <= len(s); {
		if i < len(s) {
			c, size := utf8.DecodeRuneInString(s[i:])
			if !isCollapsible(c) {
				i += size
				continue
			}
			if i > start {
				r.word(s[start:i])
			}
			r.space = true
			i += size
			start = i
			continue
		}
		if i > start {
			r.word(s[start:i])
		}
		break
	}
}

func (r *htmlRenderer) word(w string) {
	w = stripInvisible(w)
	if w == "" {
		return
	}
	r.flush()
	r.sb.WriteString(w)
	r.space = false
}

// flush writes owed line breaks, quote prefix, list marker, cell separator or space before text.
func (r *htmlRenderer) flush() {
	if r.sb.Len() == 0 {
		r.nl = 0
		r.space = false
	}
	if r.nl > 0 {
		for k := 0; k < r.nl; k++ {
			r.sb.WriteByte('\n')
		}
		r.nl = 0
		r.space = false
		r.cellSep = false
		r.writeLinePrefix()
	} else if r.sb.Len() == 0 {
		r.writeLinePrefix()
	} else if r.cellSep {
		r.sb.WriteString(" | ")
		r.cellSep = false
		r.space = false
	} else if r.space {
		r.sb.WriteByte(' ')
		r.space = false
	}
	if r.prefix != "" {
		r.sb.WriteString(r.prefix)
		r.prefix = ""
	}
	r.rowText = true
}

func (r *htmlRenderer) writeLinePrefix() {
	for k := 0; k < r.quote; k++ {
		r.sb.WriteString("> ")
	}
}

func (r *htmlRenderer) result() string {
	out := r.sb.String()
	var sb strings.Builder
	sb.Grow(len(out))
	for line := range strings.SplitSeq(out, "\n") {
		sb.WriteString(strings.TrimRight(line, " \t"))
		sb.WriteByte('\n')
	}
	return strings.TrimSpace(sb.String())
}

func isCollapsible(c rune) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\u00a0', '\u2007', '\u202f', '\u3000':
		return true
	}
	return false
}

// stripInvisible removes zero-width and direction marks that HTML mailers sprinkle into text.
func stripInvisible(w string) string {
	if !strings.ContainsAny(w, "\u200b\u200c\u200d\u200e\u200f\ufeff\u00ad") {
		return w
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '\u200b', '\u200c', '\u200d', '\u200e', '\u200f', '\ufeff', '\u00ad':
			return -1
		}
		return r
	}, w)
}
