package templates

import (
	"fmt"
	htemplate "html/template"
	"strings"
	ttemplate "text/template"
)

// builder compiles mails for New, sharing parsed templates between combinations that resolve to
// the same files.
type builder struct {
	cat    *catalog
	parsed map[string]any       // "<kind>|<lang>|<file>|<common>" -> *ttemplate or *htemplate
	mails  map[string]*compiled // "<lang>|<name>|<files...>"
}

// compile resolves, parses and validates one mail for a queue and language ("" for none).
func (b *builder) compile(queue, lang, name string, sample View) (*compiled, error) {
	files := [...]string{
		name + subjectSuffix, footerFile, name + textSuffix, name + htmlSuffix,
		layoutFile, commonTextFile, commonHTMLFile,
	}
	var src [len(files)]source
	key := []string{"", name}
	for i, f := range files {
		s, err := b.cat.resolve(queue, lang, f)
		if err != nil {
			return nil, err
		}
		src[i] = s
		key = append(key, s.name)
	}
	subject, footer, text, content, layout, commonText, commonHTML := src[0], src[1], src[2], src[3], src[4], src[5], src[6]
	// The body's place says which language the mail is in; a language-neutral body speaks the
	// requested language.
	mailLang := text.lang
	if mailLang == "" {
		mailLang = lang
	}
	if mailLang == "" {
		mailLang = DefaultLanguage
	}
	key[0] = mailLang
	k := strings.Join(key, "|")
	if c, ok := b.mails[k]; ok {
		return c, nil
	}
	c := &compiled{name: name, lang: mailLang, requester: requesterFacing[name]}
	var err error
	if c.subject, err = b.text(mailLang, subject, nil); err != nil {
		return nil, err
	}
	if c.footer, err = b.text(mailLang, footer, &commonText); err != nil {
		return nil, err
	}
	if c.text, err = b.text(mailLang, text, &commonText); err != nil {
		return nil, err
	}
	if c.content, err = b.html(mailLang, content, commonHTML); err != nil {
		return nil, err
	}
	if c.layout, err = b.html(mailLang, layout, commonHTML); err != nil {
		return nil, err
	}
	if _, err := c.render(sample); err != nil {
		var over []string
		for _, s := range src {
			if !strings.HasPrefix(s.name, "embedded:") {
				over = append(over, s.name)
			}
		}
		return nil, fmt.Errorf("validate %s (queue %q, language %q, overrides %v): %w", name, queue, lang, over, err)
	}
	b.mails[k] = c
	return c, nil
}

// text parses a text/template file, with the {{define}} blocks of common when not nil. Templates
// are named by their file, so parse and execution errors say file:line.
func (b *builder) text(lang string, main source, common *source) (*ttemplate.Template, error) {
	return cached(b, "text|"+lang, main, common, func() *ttemplate.Template {
		return ttemplate.New(main.name).Option("missingkey=zero").Funcs(textFuncs(localeFor(lang)))
	})
}

// html parses an html/template file with the {{define}} blocks of common.
func (b *builder) html(lang string, main, common source) (*htemplate.Template, error) {
	return cached(b, "html|"+lang, main, &common, func() *htemplate.Template {
		return htemplate.New(main.name).Option("missingkey=zero").Funcs(htmlFuncs(localeFor(lang)))
	})
}

// parser is what text/template and html/template templates have in common.
type parser[T any] interface {
	New(name string) T
	Parse(text string) (T, error)
}

// cached parses common (when not nil) and then main into a fresh root template, once per kind,
// main and common file.
func cached[T parser[T]](b *builder, kind string, main source, common *source, root func() T) (T, error) {
	k := kind + "|" + main.name + "|"
	if common != nil {
		k += common.name
	}
	if t, ok := b.parsed[k].(T); ok {
		return t, nil
	}
	t := root()
	if common != nil {
		if _, err := t.New(common.name).Parse(common.text); err != nil {
			return t, fmt.Errorf("parse template: %w", err)
		}
	}
	if _, err := t.Parse(main.text); err != nil {
		return t, fmt.Errorf("parse template: %w", err)
	}
	b.parsed[k] = t
	return t, nil
}
