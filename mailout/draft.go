package mailout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Composer writes the content of a deferred mail (Mail.Compose) when it is about to be sent: its
// subject, bodies and language from the payload its author stored in the transaction that caused
// it. It must be a pure function of kind and payload (DESIGN.md invariant 7), so that every attempt
// sends the same content. The Notifier implements it with the templates.
type Composer interface {
	Compose(kind string, payload []byte) (Content, error)
}

// Content is what a Composer writes: the final subject (ticket key included), the text/plain body,
// the optional text/html alternative and the BCP 47 language sent as Content-Language.
type Content struct {
	Subject, Text, HTML, Language string
}

// ErrNoComposer: a drafted outbox row cannot be rendered because the Outbox has no Composer.
var ErrNoComposer = errors.New("outbox row is a draft and no composer is configured")

// draft is a deferred mail as stored in outbox.draft: what the enqueueing transaction fixed (the
// envelope, the threading headers, Auto-Submitted) and the Composer's payload for the content.
type draft struct {
	Kind          string    `json:"kind"`
	From          Address   `json:"from"`
	ReplyTo       Address   `json:"reply_to"`
	To            []Address `json:"to"`
	MessageID     string    `json:"message_id"`
	Date          time.Time `json:"date"`
	Domain        string    `json:"domain"`
	InReplyTo     string    `json:"in_reply_to,omitempty"`
	References    []string  `json:"references,omitempty"`
	AutoSubmitted string    `json:"auto_submitted,omitempty"`
	// Compose is written last by newDraft, appended as it is (encoding/json would re-scan it).
	Compose json.RawMessage `json:"compose,omitempty"`
}

// newDraft encodes m (normalized, m.Compose set) with its envelope.
func newDraft(m Mail, env envelope) ([]byte, error) {
	if len(m.Attachments) > 0 {
		return nil, fmt.Errorf("%w: a deferred mail cannot carry attachments", ErrInvalidMail)
	}
	b, err := json.Marshal(draft{
		Kind: m.Kind, From: m.From, ReplyTo: env.replyTo, To: env.to, MessageID: env.messageID, Date: env.date,
		Domain: env.domain, InReplyTo: m.InReplyTo, References: m.References, AutoSubmitted: m.AutoSubmitted,
	})
	if err != nil {
		return nil, err
	}
	// The payload is the Composer's own JSON, spliced in as the last member without a second pass
	// over it; a payload that is not JSON makes the draft undecodable, and the mail goes dead at send.
	out := make([]byte, 0, len(b)+len(m.Compose)+12)
	out = append(append(out, b[:len(b)-1]...), `,"compose":`...)
	return append(append(out, m.Compose...), '}'), nil
}

// renderDraft composes a stored draft and renders it as the RFC 5322 message to send, with the
// Message-ID, Date and recipients fixed when it was enqueued.
func (o *Outbox) renderDraft(b []byte) ([]byte, error) {
	if o.composer == nil {
		return nil, ErrNoComposer
	}
	var d draft
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode draft: %w", err)
	}
	c, err := o.composer.Compose(d.Kind, d.Compose)
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", d.Kind, err)
	}
	m := Mail{Kind: d.Kind, From: d.From, To: d.To, Subject: sanitizeHeader(c.Subject), Text: c.Text, HTML: c.HTML,
		InReplyTo: d.InReplyTo, References: d.References, AutoSubmitted: d.AutoSubmitted, Language: c.Language}
	raw, err := render(m, envelope{messageID: d.MessageID, date: d.Date, domain: d.Domain, replyTo: d.ReplyTo, to: d.To})
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", d.Kind, err)
	}
	return raw, nil
}

// Rendered returns outbox row id as the RFC 5322 message the Sender transmits: its stored bytes, or
// its draft composed and rendered (for `deskd` tooling and tests).
func (o *Outbox) Rendered(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id int64) ([]byte, error) {
	var raw, d []byte
	if err := q.QueryRow(ctx, `SELECT raw, draft FROM outbox WHERE id = $1`, id).Scan(&raw, &d); err != nil {
		return nil, fmt.Errorf("read outbox %d: %w", id, err)
	}
	if raw != nil {
		return raw, nil
	}
	raw, err := o.renderDraft(d)
	if err != nil {
		return nil, fmt.Errorf("outbox %d: %w", id, err)
	}
	return raw, nil
}
