package notify

import (
	"encoding/json"
	"fmt"

	"github.com/deskd/deskd/internal/subject"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/templates"
)

// draftDoc is the payload of a deferred mail (mailout.Mail.Compose): the template, the queue and
// language it is rendered for, the ticket key of the subject, and the typed view as it was when the
// change happened. The mail is rendered from it at send time (Compose), so the transaction that
// causes the mail only encodes the view.
type draftDoc struct {
	Template string         `json:"template"`
	Queue    string         `json:"queue"`
	Lang     string         `json:"lang"`
	Key      string         `json:"key"`
	View     templates.View `json:"view"`
}

// draft encodes the payload of a deferred mail.
func (n *Notifier) draft(name, queue, lang, key string, v templates.View) ([]byte, error) {
	b, err := json.Marshal(draftDoc{Template: name, Queue: queue, Lang: lang, Key: key, View: v})
	if err != nil {
		return nil, fmt.Errorf("encode %s view: %w", name, err)
	}
	return b, nil
}

// Compose renders a deferred mail's template from its payload (mailout.Composer): the subject with
// the ticket key, the bodies and the language actually used. The view's times are shown in the
// Notifier's zone, as when rendering at once.
func (n *Notifier) Compose(kind string, payload []byte) (mailout.Content, error) {
	var d draftDoc
	if err := json.Unmarshal(payload, &d); err != nil {
		return mailout.Content{}, fmt.Errorf("decode %s draft: %w", kind, err)
	}
	d.View.Location = n.loc
	r, err := n.tmpl.Render(d.Template, d.Queue, d.Lang, d.View)
	if err != nil {
		return mailout.Content{}, err
	}
	return mailout.Content{Subject: subject.Outbound(d.Key, r.Subject), Text: r.Text, HTML: r.HTML, Language: r.Lang}, nil
}

// composeNow fills in a deferred mail's content at once (mail that must carry attachments).
func (n *Notifier) composeNow(m *mailout.Mail) error {
	if m.Compose == nil {
		return nil
	}
	c, err := n.Compose(m.Kind, m.Compose)
	if err != nil {
		return err
	}
	m.Subject, m.Text, m.HTML, m.Language, m.Compose = c.Subject, c.Text, c.HTML, c.Language, nil
	return nil
}
