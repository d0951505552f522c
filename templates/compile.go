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
		return nil, fmt.Errorf("validate %s (queue %q, language %q): %w", name, queue, lang, err)
	}
	b.mails[k] = c
	return c, nil
}

// text parses a text/template file, with the {{define}} blocks of common when not nil. The
// template is named by its file, so parse and execution errors say file:line.
func (b *builder) text(lang string, main source, common *source) (*ttemplate.Template, error) {
	k := "text|" + lang + "|" + main.name + "|"
	if common != nil {
		k += common.name
	}
	if t, ok := b.parsed[k].(*ttemplate.Template); ok {
		return t, nil
	}
	t := ttemplate.New(main.name).Option("missingkey=zero").Funcs(textFuncs(localeFor(lang)))
	if common != nil {
		if _, err := t.New(common.name).Parse(common.text); err != nil {
			return nil, fmt.Errorf("parse template: %w", err)
		}
	}
	if _, err := t.Parse(main.text); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	b.parsed[k] = t
	return t, nil
}

// html parses an html/template file with the {{define}} blocks of common.
func (b *builder) html(lang string, main, common source) (*htemplate.Template, error) {
	k := "html|" + lang + "|" + main.name + "|" + common.name
	if t, ok := b.parsed[k].(*htemplate.Template); ok {
		return t, nil
	}
	t := htemplate.New(main.name).Option("missingkey=zero").Funcs(htmlFuncs(localeFor(lang)))
	if _, err := t.New(common.name).Parse(common.text); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if _, err := t.Parse(main.text); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	b.parsed[k] = t
	return t, nil
}
