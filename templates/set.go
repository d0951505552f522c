package templates

import (
	"errors"
	"fmt"
	htemplate "html/template"
	"maps"
	"slices"
	"strings"
	ttemplate "text/template"
	"time"
)

// Options configures New.
type Options struct {
	// Dir is a directory of override files; "" uses the embedded defaults only.
	Dir string
}

// Rendered is one mail ready for the mail writer.
type Rendered struct {
	// Subject is one line, sanitised by SanitizeHeader, never empty; it carries the ticket key as
	// "[KEY]" in all built-in templates.
	Subject string
	// Text is the text/plain body (UTF-8, "\n" line endings, ending in one "\n").
	Text string
	// HTML is a complete text/html document (UTF-8).
	HTML string
	// Lang is the language the mail is written in, for Content-Language (RFC 3282).
	Lang string
}

// ErrUnknownTemplate is returned by Render for a name that is not one of the template names.
var ErrUnknownTemplate = errors.New("unknown template")

// Set is a parsed, validated set of templates. It is immutable and safe for concurrent use.
type Set struct {
	queues    map[string]bool // top-level override directories
	langs     map[string]bool // every language a file may be written in
	available []string
	byKey     map[comboKey]*compiled
}

type comboKey struct{ queue, lang, name string }

// compiled is one mail, ready to execute.
type compiled struct {
	name      string
	lang      string
	requester bool
	subject   *ttemplate.Template
	footer    *ttemplate.Template
	text      *ttemplate.Template
	content   *htemplate.Template
	layout    *htemplate.Template
}

// page is what templates see: the View's fields plus what the renderer adds. It repeats View's
// fields instead of embedding View: text/template resolves a field it does not find directly on a
// struct with embedded fields by a breadth-first search that allocates, on every {{.Ticket}}, and
// that search was a fifth of rendering. TestPageHasEveryViewField keeps the two in step.
type page struct {
	Now        time.Time
	Location   *time.Location
	Desk       DeskView
	Ticket     TicketView
	Recipient  Person
	Body       string
	Messages   []MessageView
	OldStatus  string
	NewStatus  string
	Escalation EscalationView
	Digest     DigestView
	Delivery   DeliveryView
	Loop       LoopView
	Commands   []CommandIssue
	Extra      map[string]string

	Subject string
	Footer  string
	Lang    string
	Content htemplate.HTML // layout only
}

// newPage is the page of v (times already in v's location) for a mail written in lang.
func newPage(v View, lang string) *page {
	return &page{
		Now: v.Now, Location: v.Location, Desk: v.Desk, Ticket: v.Ticket, Recipient: v.Recipient, Body: v.Body,
		Messages: v.Messages, OldStatus: v.OldStatus, NewStatus: v.NewStatus, Escalation: v.Escalation,
		Digest: v.Digest, Delivery: v.Delivery, Loop: v.Loop, Commands: v.Commands, Extra: v.Extra,
		Lang: lang,
	}
}

// New parses the embedded defaults and the overrides in o.Dir, and validates every combination of
// queue, language and name that Render can reach by rendering it with SampleView. A file that does
// not parse or does not execute is an error naming the file and line; so is an override file with
// an unknown name. The returned Set does no file I/O.
func New(o Options) (*Set, error) {
	cat, err := loadCatalog(o.Dir)
	if err != nil {
		return nil, err
	}
	s := &Set{queues: map[string]bool{}, langs: map[string]bool{}, byKey: map[comboKey]*compiled{}}
	for _, q := range cat.tops {
		s.queues[q] = true
	}
	for _, group := range [][]string{cat.builtin, cat.tops, cat.subs} {
		for _, l := range group {
			s.langs[l] = true
		}
	}
	s.available = cat.complete()
	b := builder{cat: cat, parsed: map[string]any{}, mails: map[string]*compiled{}}
	queues := append([]string{""}, cat.tops...)
	langs := append([]string{""}, slices.Sorted(maps.Keys(s.langs))...)
	sample := SampleView()
	for _, q := range queues {
		for _, l := range langs {
			for _, n := range names {
				c, err := b.compile(q, l, n, sample)
				if err != nil {
					return nil, err
				}
				s.byKey[comboKey{q, l, n}] = c
			}
		}
	}
	return s, nil
}

// Languages returns the languages every mail can be written in: the built-in ones and each
// DIR/<lang>/ directory that overrides every part of every named template. Use it as the
// available list of PickLanguage. The caller may modify the slice.
func (s *Set) Languages() []string {
	return append([]string(nil), s.available...)
}

// Render renders the named mail for a ticket in queue, in lang, from v. Unknown queues and
// languages fall back as the lookup order says (a regional tag such as "de-AT" first tries "de");
// an unknown name is ErrUnknownTemplate. Mail for the requester (ForRequester) never shows
// messages marked Internal. Times are shown in v.Location.
func (s *Set) Render(name, queue, lang string, v View) (Rendered, error) {
	q := ""
	if s.queues[queue] {
		q = queue
	}
	l := normalizeLang(lang)
	if !s.langs[l] {
		l = primaryLang(l)
		if !s.langs[l] {
			l = ""
		}
	}
	c, ok := s.byKey[comboKey{q, l, name}]
	if !ok {
		return Rendered{}, fmt.Errorf("render %q: %w", name, ErrUnknownTemplate)
	}
	r, err := c.render(v)
	if err != nil {
		return Rendered{}, fmt.Errorf("render %s (queue %q, language %q): %w", name, queue, lang, err)
	}
	return r, nil
}

func (c *compiled) render(v View) (Rendered, error) {
	if c.requester {
		v.Messages = publicOnly(v.Messages)
	}
	p := newPage(inLocation(v), c.lang)
	var b strings.Builder
	if err := c.subject.Execute(&b, p); err != nil {
		return Rendered{}, err
	}
	subject := SanitizeHeader(b.String())
	if subject == "" {
		return Rendered{}, fmt.Errorf("subject from %s is empty", c.subject.Name())
	}
	b.Reset()
	if err := c.footer.Execute(&b, p); err != nil {
		return Rendered{}, err
	}
	p.Footer = strings.TrimSuffix(normalizeText(b.String()), "\n")
	p.Subject = subject
	b.Reset()
	if err := c.text.Execute(&b, p); err != nil {
		return Rendered{}, err
	}
	text := normalizeText(b.String())
	b.Reset()
	if err := c.content.Execute(&b, p); err != nil {
		return Rendered{}, err
	}
	p.Content = htemplate.HTML(b.String()) //nolint:gosec // produced by html/template
	b.Reset()
	if err := c.layout.Execute(&b, p); err != nil {
		return Rendered{}, err
	}
	return Rendered{Subject: subject, Text: text, HTML: b.String(), Lang: c.lang}, nil
}

// normalizeText tidies a rendered text body so templates need not fight white space: CR LF and CR
// become LF, trailing blanks are trimmed from every line but the signature separator "-- "
// (RFC 3676 §4.3), runs of blank lines collapse to one, leading blank lines go, and the text
// ends in exactly one "\n" (or is empty).
func normalizeText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	for _, ln := range splitLines(s) {
		if ln != sigSep {
			ln = strings.TrimRight(ln, " \t")
		}
		if ln == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
			if blank > 0 {
				b.WriteString("\n")
			}
		}
		blank = 0
		b.WriteString(ln)
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
