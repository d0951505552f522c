package mailout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// echoComposer writes a draft's content from its payload: {"subject": ..., "text": ...}; a payload
// with "fail" set cannot be composed.
type echoComposer struct{}

func (echoComposer) Compose(kind string, payload []byte) (Content, error) {
	var p struct{ Subject, Text, Fail string }
	if err := json.Unmarshal(payload, &p); err != nil {
		return Content{}, err
	}
	if p.Fail != "" {
		return Content{}, errors.New(p.Fail)
	}
	return Content{Subject: p.Subject + "\r\nBcc: evil@example.net", Text: kind + ": " + p.Text, Language: "de"}, nil
}

// TestSendDraftRendersAtSendTime: a deferred mail is stored as a draft, not as bytes; the sender
// composes and renders it with the Message-ID, Date and recipients fixed at enqueue (a later clock
// does not change them), sanitizes the composed subject, and a draft that cannot be composed goes
// dead at once with the composer's reason and a dead-letter notice.
func TestSendDraftRendersAtSendTime(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	clk := newClock()
	ob := newTestOutbox(t, clk, testLimits())
	ob.composer = echoComposer{}
	srv := startSink(t, "zoe@example.net", agentAddr)
	s := newTestSender(t, pool, ob, clk, sinkSMTP(t, srv))
	ticket := seedTicket(t, pool, "zoe@example.net")

	m := ackMail("ack:draft", ticket, "zoe@example.net")
	m.Subject, m.Text = "", ""
	m.Compose = []byte(`{"subject": "[SD-1001] Drucker brennt", "text": "Wir kümmern uns."}`)
	enqueuedAt := clk.Now()
	id, queued := enqueue(t, pool, ob, m)
	if !queued {
		t.Fatal("draft not queued")
	}
	var raw, draft []byte
	if err := pool.QueryRow(t.Context(), `SELECT raw, draft FROM outbox WHERE id = $1`, id).Scan(&raw, &draft); err != nil {
		t.Fatal(err)
	}
	if raw != nil || !bytes.Contains(draft, []byte("Drucker brennt")) {
		t.Fatalf("row holds raw %d bytes, draft %q; want only the draft", len(raw), draft)
	}
	clk.Advance(time.Hour)
	if n := runOnce(t, s); n != 1 {
		t.Fatalf("sent %d, want 1", n)
	}
	row := readRow(t, pool, id)
	ds := srv.Deliveries()
	if row.Status != "sent" || len(ds) != 1 {
		t.Fatalf("row %+v, %d deliveries; want sent once", row, len(ds))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(ds[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	date, _ := h.Date()
	body := new(bytes.Buffer)
	if _, err := body.ReadFrom(msg.Body); err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Trim(h.Get("Message-Id"), "<>") != row.MessageID:
		t.Errorf("Message-ID %q, want the stored %q", h.Get("Message-Id"), row.MessageID)
	case !date.Equal(enqueuedAt):
		t.Errorf("Date %v, want the enqueue time %v", date, enqueuedAt)
	case !strings.HasPrefix(subj, "[SD-1001] Drucker brennt") || h.Get("Bcc") != "":
		t.Errorf("Subject %q, Bcc %q: the composed subject must be one sanitized header", subj, h.Get("Bcc"))
	case h.Get("Content-Language") != "de" || h.Get("Auto-Submitted") != "auto-replied" ||
		h.Get("In-Reply-To") != "<orig-1@client.example.net>":
		t.Errorf("headers %v", h)
	case !strings.Contains(body.String(), "ack: Wir k=C3=BCmmern uns."):
		t.Errorf("body %q", body.String())
	}
	// what tooling shows for the row is what was sent
	shown, err := ob.Rendered(t.Context(), pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if m2, err := mail.ReadMessage(bytes.NewReader(shown)); err != nil || m2.Header.Get("Message-Id") != h.Get("Message-Id") {
		t.Errorf("Rendered: %v, %v", err, m2)
	}

	bad := ackMail("ack:draft-bad", ticket, "zoe@example.net")
	bad.Compose = []byte(`{"fail": "template ack: no such field"}`)
	badID, _ := enqueue(t, pool, ob, bad)
	runOnce(t, s)
	if row := readRow(t, pool, badID); row.Status != "dead" || !strings.Contains(row.LastError, "no such field") {
		t.Fatalf("undrafted row %+v, want dead with the composer's reason", row)
	}
	if n := countRows(t, pool, `SELECT count(*) FROM outbox WHERE kind = $1 AND ticket_id = $2`, KindDeadLetter, ticket); n != 1 {
		t.Errorf("%d dead-letter notices, want 1", n)
	}

	withFile := ackMail("ack:draft-file", ticket, "zoe@example.net")
	withFile.Compose = []byte(`{}`)
	withFile.Attachments = []Attachment{{Filename: "a.txt", Data: []byte("x")}}
	if err := enqueueErr(t, pool, ob, withFile); !errors.Is(err, ErrInvalidMail) {
		t.Errorf("draft with attachments: %v, want ErrInvalidMail", err)
	}
}

// enqueueErr runs Enqueue in its own transaction and returns its error.
func enqueueErr(t testing.TB, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, ob *Outbox, m Mail) error {
	t.Helper()
	return pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		_, _, err := ob.Enqueue(context.Background(), tx, m)
		return err
	})
}
