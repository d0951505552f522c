package notify_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/internal/token"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/mailout/notify"
	"github.com/deskd/deskd/templates"
	"github.com/deskd/deskd/tickets"
)

var (
	now       = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	requester = tickets.Actor{Kind: tickets.ActorUser, Name: "zoe@example.net"}
	agentAna  = tickets.Actor{Kind: tickets.ActorAgent, Name: "ana"}
)

type fixture struct {
	pool   *pgxpool.Pool
	svc    *tickets.Service
	n      *notify.Notifier
	signer *token.Signer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	set, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.New([]byte("0123456789abcdef-notify-secret"), "desk.example.org")
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	n, err := notify.New(notify.Options{
		Outbox:    mailout.OutboxOptions{Signer: signer, MailOut: config.Default().MailOut, Now: clock},
		Templates: set,
		Desk:      config.Desk{Name: "IT Service Desk"},
		Queues:    []config.Queue{{Name: "support", Addresses: []string{"support@desk.example.org"}, Language: "en", Agents: []string{"ana", "ben"}}},
		Agents: []config.Agent{
			{Name: "ana", Email: "ana@desk.example.org", DisplayName: "Ana Lima", Language: "en"},
			{Name: "ben", Email: "ben@desk.example.org", DisplayName: "Ben Okafor", Language: "de"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := testdb.New(t)
	return &fixture{pool: pool, svc: tickets.NewService(pool, tickets.Options{Mailer: n, Now: clock}), n: n, signer: signer}
}

type outRow struct {
	Key, Kind, Status string
	Rcpt              []string
	Msg               *mail.Message
	Raw               []byte
}

func (f *fixture) outbox(t *testing.T) map[string]outRow {
	t.Helper()
	ctx := context.Background()
	rows, err := f.pool.Query(ctx, `SELECT id, idempotency_key, kind, status, rcpt_to FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		ids  []int64
		list []outRow
	)
	for rows.Next() {
		var (
			id int64
			r  outRow
		)
		if err := rows.Scan(&id, &r.Key, &r.Kind, &r.Status, &r.Rcpt); err != nil {
			rows.Close()
			t.Fatal(err)
		}
		ids, list = append(ids, id), append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string]outRow{}
	for i, r := range list {
		// what the sender transmits: stored bytes, or the draft rendered as the sender renders it
		if r.Raw, err = f.n.Outbox().Rendered(ctx, f.pool, ids[i]); err != nil {
			t.Fatal(err)
		}
		if r.Msg, err = mail.ReadMessage(bytes.NewReader(r.Raw)); err != nil {
			t.Fatal(err)
		}
		out[r.Key] = r
	}
	return out
}

func (f *fixture) create(t *testing.T, class string) *tickets.Ticket {
	t.Helper()
	ctx := context.Background()
	tk, err := tickets.Run(ctx, f.svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
		tk, _, err := tx.Create(ctx, tickets.NewTicket{
			Prefix: "SD", Queue: "support", Kind: tickets.KindIncident, Priority: tickets.P3,
			Requester: "zoe@example.net", RequesterName: "Zoë Ærø", Subject: "Re: AW: Printer on fire", Language: "en",
			Message: &tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, Class: class,
				AuthorKind: tickets.ActorUser, Author: "zoe@example.net", MessageID: "orig-1@client.example.net",
				References: []string{"root@client.example.net"}, From: "zoe@example.net", FromName: "Zoë Ærø",
				Subject: "Printer on fire", Text: "It is on fire.\n", VisibleText: "It is on fire.\n"},
			Actor: requester, Why: "new mail",
		})
		return tk, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func header(r outRow, k string) string {
	v, _ := new(mime.WordDecoder).DecodeHeader(r.Msg.Header.Get(k))
	return strings.Join(strings.Fields(v), " ")
}

func TestNewTicketFromPerson(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tk := f.create(t, "normal")
	out := f.outbox(t)
	ack, ok := out["ack:ticket:"+itoa(tk.ID)]
	if !ok || ack.Status != "pending" || !slices.Equal(ack.Rcpt, []string{"zoe@example.net"}) {
		t.Fatalf("ack %+v, want pending to zoe; outbox %v", ack, keys(out))
	}
	if got := header(ack, "Subject"); got != "["+tk.Key+"] Received: Printer on fire" {
		t.Errorf("ack Subject %q", got)
	}
	if header(ack, "Auto-Submitted") != "auto-replied" || header(ack, "In-Reply-To") != "<orig-1@client.example.net>" ||
		header(ack, "References") != "<root@client.example.net> <orig-1@client.example.net>" {
		t.Errorf("ack threading/auto headers: %q %q %q", header(ack, "Auto-Submitted"), header(ack, "In-Reply-To"), header(ack, "References"))
	}
	// one notification per language: Ana reads English, Ben German
	for a, lang := range map[string]string{"ana@desk.example.org": "en", "ben@desk.example.org": "de"} {
		r, ok := out["agent_new:ticket:"+itoa(tk.ID)+":"+lang]
		if !ok || r.Status != "pending" || header(r, "Auto-Submitted") != "auto-generated" || !slices.Equal(r.Rcpt, []string{a}) {
			t.Errorf("agent_new to %s: %+v", a, r.Key)
			continue
		}
		if id, err := f.signer.TicketFromMessageID(header(r, "In-Reply-To")); err != nil || id != tk.ID {
			t.Errorf("agent_new In-Reply-To %q is not the ticket root", header(r, "In-Reply-To"))
		}
	}
	// Ben reads German.
	if got := header(out["agent_new:ticket:"+itoa(tk.ID)+":de"], "Content-Language"); got != "de" {
		t.Errorf("Ben's notification Content-Language %q, want de", got)
	}
	if got := header(ack, "Content-Language"); got != "en" {
		t.Errorf("ack Content-Language %q, want en", got)
	}
	// Replaying the change enqueues nothing new.
	err := pgx.BeginFunc(context.Background(), f.pool, func(tx pgx.Tx) error {
		mail, err := f.n.TicketChanged(context.Background(), tx, tickets.Change{Ticket: tk, Event: tickets.Event{Kind: tickets.EventCreated, Actor: requester},
			Message: &tickets.Message{ID: 1, Direction: tickets.Inbound, Class: "normal"}})
		if err != nil || len(mail) == 0 {
			return fmt.Errorf("replayed change: %d mails, %v", len(mail), err)
		}
		return f.n.WriteMail(context.Background(), tx, mail)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.outbox(t)); n != len(out) {
		t.Errorf("replay: %d rows, want %d", n, len(out))
	}
}

func TestNewTicketFromMachineIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tk := f.create(t, "autoreply")
	ack := f.outbox(t)["ack:ticket:"+itoa(tk.ID)]
	if ack.Status != "suppressed" {
		t.Errorf("ack to an auto-reply is %q, want suppressed", ack.Status)
	}
}

func TestAgentReplyAndRequesterReplyAndStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tk := f.create(t, "normal")
	err := f.svc.Do(ctx, func(tx *tickets.Tx) error {
		if _, err := tx.Assign(ctx, tk.ID, "ana", "ana@desk.example.org", agentAna, ""); err != nil {
			return err
		}
		if _, err := tx.AddNote(ctx, tk.ID, agentAna, "internal: toner vendor is slow", nil); err != nil {
			return err
		}
		_, err := tx.AppendMessage(ctx, tk.ID, tickets.Message{Direction: tickets.Outbound, Visibility: tickets.Public,
			AuthorKind: tickets.ActorAgent, Author: "ana", MessageID: "agent-1@desk-client.example.org",
			From: "ana@desk.example.org", Text: "Please pull the plug.\n", VisibleText: "Please pull the plug.\n",
			Attachments: []tickets.Attachment{{Filename: "howto.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4 fake")}},
		}, agentAna, "agent reply")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := f.outbox(t)
	var reply outRow
	for k, r := range out {
		if strings.HasPrefix(k, "reply:message:") {
			reply = r
		}
	}
	if reply.Msg == nil {
		t.Fatalf("no reply enqueued: %v", keys(out))
	}
	if header(reply, "Auto-Submitted") != "" || header(reply, "Precedence") != "" {
		t.Errorf("human reply marked automated")
	}
	if header(reply, "In-Reply-To") != "<orig-1@client.example.net>" || header(reply, "Subject") != "["+tk.Key+"] Printer on fire" {
		t.Errorf("reply In-Reply-To %q Subject %q", header(reply, "In-Reply-To"), header(reply, "Subject"))
	}
	text, files := parts(t, reply)
	if !strings.Contains(text, "Please pull the plug.") || !strings.Contains(text, "It is on fire.") {
		t.Errorf("reply text lacks the agent's text or the quoted history:\n%s", text)
	}
	if strings.Contains(text, "toner vendor") {
		t.Error("internal note leaked into the requester's mail")
	}
	if !slices.Equal(files, []string{"howto.pdf"}) {
		t.Errorf("attachments %v, want howto.pdf forwarded", files)
	}

	// The requester answers: the assignee (only) hears about it.
	err = f.svc.Do(ctx, func(tx *tickets.Tx) error {
		_, err := tx.AppendMessage(ctx, tk.ID, tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, Class: "normal",
			AuthorKind: tickets.ActorUser, Author: "zoe@example.net", MessageID: "orig-2@client.example.net",
			InReplyTo: "x@desk.example.org", From: "zoe@example.net", Text: "Done, still smoking.\n"}, requester, "reply")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		agentReplies []string
		replyRcpt    []string
	)
	for k, r := range f.outbox(t) {
		if r.Kind == templates.AgentReply {
			agentReplies = append(agentReplies, k)
			replyRcpt = r.Rcpt
		}
	}
	if len(agentReplies) != 1 || !slices.Equal(replyRcpt, []string{"ana@desk.example.org"}) {
		t.Errorf("agent_reply rows %v, want one to the assignee", agentReplies)
	}

	// An agent sets the ticket pending: the requester is asked, in their latest thread.
	err = f.svc.Do(ctx, func(tx *tickets.Tx) error {
		_, err := tx.ChangeStatus(ctx, tk.ID, tickets.StatusPending, agentAna, "Which model is it?")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var pending outRow
	for _, r := range f.outbox(t) {
		if r.Kind == templates.StatusPending {
			pending = r
		}
	}
	if pending.Msg == nil || header(pending, "In-Reply-To") != "<orig-2@client.example.net>" ||
		header(pending, "References") != "<orig-2@client.example.net>" || header(pending, "Auto-Submitted") != "auto-generated" {
		t.Fatalf("status_pending mail missing or mis-threaded: %+v", pending.Key)
	}
	if text, _ := parts(t, pending); !strings.Contains(text, "Which model is it?") {
		t.Errorf("status_pending lacks the question:\n%s", text)
	}
}

func TestNoticeMails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tk := f.create(t, "normal")
	err := pgx.BeginFunc(context.Background(), f.pool, func(tx pgx.Tx) error {
		for _, nt := range []mailout.Notice{
			{Kind: mailout.KindDeadLetter, Key: "dl:1", TicketID: tk.ID, Why: "550 5.1.1 unknown", Recipients: []string{"zoe@example.net"},
				Subject: "[SD-1] x", Attempts: 3, At: now},
			{Kind: mailout.KindLoopDetected, Key: "loop:1", TicketID: tk.ID, Why: "ticket rate limit", Addresses: []string{"bot@example.net"},
				Count: 20, At: now, Until: now.Add(24 * time.Hour)},
		} {
			ms, err := f.n.NoticeMails(context.Background(), tx, nt)
			if err != nil {
				return err
			}
			if len(ms) != 2 || ms[0].To[0].Email != "ana@desk.example.org" {
				t.Fatalf("%s notice: %d mails, want 2 to the queue's agents", nt.Kind, len(ms))
			}
			// the mail is a draft: its content is what the sender will compose from it
			c, err := f.n.Compose(ms[0].Kind, ms[0].Compose)
			if err != nil {
				return err
			}
			if !strings.Contains(c.Text, nt.Why[:10]) && !strings.Contains(c.Text, "bot@example.net") {
				t.Errorf("%s notice composes to:\n%s", nt.Kind, c.Text)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func parts(t *testing.T, r outRow) (text string, files []string) {
	t.Helper()
	var walk func(ct string, body io.Reader)
	walk = func(ct string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(mt, "multipart/") {
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fn := p.FileName(); fn != "" {
				files = append(files, fn)
				continue
			}
			pct := p.Header.Get("Content-Type")
			if strings.HasPrefix(pct, "text/plain") {
				b, _ := io.ReadAll(p) // multipart.Part decodes quoted-printable
				text += string(b)
			}
			walk(pct, p)
		}
	}
	walk(r.Msg.Header.Get("Content-Type"), r.Msg.Body)
	return text, files
}

func keys(m map[string]outRow) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
