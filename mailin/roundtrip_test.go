package mailin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/deskd/deskd/internal/config"
	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/mailin"
	"github.com/deskd/deskd/mailin/parse"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/mailout/notify"
	"github.com/deskd/deskd/templates"
	"github.com/deskd/deskd/tickets"
)

// rtDesk is a desk for round-trip tests, wired like cmd/deskd (*app).build: the real notifier writes
// the outbox, so the acknowledgement a test answers is byte for byte what production would send.
// It reuses the ingest tests' harness (ingest_test.go) for storing, processing and counting.
type rtDesk struct {
	*harness
	ob *mailout.Outbox // renders the outbox rows as the sender sends them
}

// rtConfig is a validated configuration built in code, as cmd/deskd demoConfig does.
func rtConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Desk = config.Desk{Name: "Example IT Service Desk", Domain: "desk.example.com", Secret: "0123456789abcdef0123456789abcdef"}
	cfg.Mailboxes = []config.Mailbox{{Name: "inbox", Host: "127.0.0.1", TLS: config.TLSNone, User: "support@example.com",
		Password: "x", Queue: "support"}}
	cfg.SMTP.Host, cfg.SMTP.TLS, cfg.SMTP.Auth = "127.0.0.1", config.TLSNone, config.AuthNone
	cfg.Queues = []config.Queue{
		{Name: "support", Addresses: []string{"support@example.com"}, KeyPrefix: "SD", Agents: []string{"ana", "ben"}, TeamLead: "ana"},
		{Name: "changes", Addresses: []string{"changes@example.com"}, KeyPrefix: "CHG", DefaultKind: "change", Agents: []string{"ben"}},
	}
	cfg.Agents = []config.Agent{
		{Name: "ana", Email: "ana@example.com", DisplayName: "Ana Agent", Role: config.RoleLead},
		{Name: "ben", Email: "ben@example.com", DisplayName: "Ben Agent"},
	}
	cfg.ApplyDefaults()
	if problems := cfg.Validate(); len(problems) > 0 {
		t.Fatal(config.ValidationError(problems))
	}
	return cfg
}

func newRTDesk(t *testing.T) *rtDesk {
	t.Helper()
	cfg := rtConfig(t)
	opts, err := mailin.OptionsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := templates.New(templates.Options{Dir: cfg.Templates.Dir})
	if err != nil {
		t.Fatal(err)
	}
	notifier, err := notify.New(notify.Options{
		Outbox:    mailout.OutboxOptions{Signer: opts.Signer, MailOut: cfg.MailOut, OwnAddresses: cfg.DeskAddresses()},
		Templates: tpl, Desk: cfg.Desk, Queues: cfg.Queues, Agents: cfg.Agents,
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := testdb.New(t)
	svc := tickets.NewService(pool, tickets.Options{Mailer: notifier})
	ing, err := mailin.NewIngester(svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &rtDesk{&harness{t: t, ctx: context.Background(), pool: pool, svc: svc, ing: ing, signer: opts.Signer}, notifier.Outbox()}
}

// deliver stores raw mail as the poller would, ingests all pending mail and returns the one outcome.
func (d *rtDesk) deliver(raw string) mailin.Outcome {
	d.t.Helper()
	d.harness.deliver(strings.ReplaceAll(raw, "\r\n", "\n")) // it makes every line end CRLF
	outs := d.process()
	if len(outs) != 1 || outs[0].State != mailin.StateIngested || outs[0].TicketKey == "" {
		d.t.Fatalf("outcomes %+v: want one message ingested into a ticket", outs)
	}
	return outs[0]
}

func (d *rtDesk) ticket(key string) *tickets.Ticket {
	d.t.Helper()
	tk, err := d.svc.Store().TicketByKey(d.ctx, key)
	if err != nil {
		d.t.Fatalf("ticket %s: %v", key, err)
	}
	return tk
}

func (d *rtDesk) messages(id int64) []*tickets.Message {
	d.t.Helper()
	msgs, err := d.svc.Store().Messages(d.ctx, id)
	if err != nil {
		d.t.Fatal(err)
	}
	return msgs
}

// outbox lists "recipient:status" for every envelope recipient of the outbox mail of one kind
// about a ticket, sorted (one row per recipient or one for all: either way each is listed once).
func (d *rtDesk) outbox(ticketID int64, kind string) []string {
	d.t.Helper()
	rows, err := d.pool.Query(d.ctx, `SELECT r || ':' || status FROM outbox, unnest(rcpt_to) AS r
		WHERE ticket_id = $1 AND kind = $2 ORDER BY 1`, ticketID, kind)
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			d.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// text returns the first outbox mail of kind about a ticket, parsed.
func (d *rtDesk) text(ticketID int64, kind string) *parse.Message {
	d.t.Helper()
	var id int64
	if err := d.pool.QueryRow(d.ctx, `SELECT id FROM outbox WHERE ticket_id = $1 AND kind = $2 ORDER BY id LIMIT 1`,
		ticketID, kind).Scan(&id); err != nil {
		d.t.Fatalf("%s mail of ticket %d: %v", kind, ticketID, err)
	}
	m, err := parse.Parse(d.rendered(id))
	if err != nil {
		d.t.Fatalf("parse %s mail: %v", kind, err)
	}
	return m
}

// rendered returns outbox row id as the sender transmits it.
func (d *rtDesk) rendered(id int64) []byte {
	d.t.Helper()
	raw, err := d.ob.Rendered(d.ctx, d.pool, id)
	if err != nil {
		d.t.Fatal(err)
	}
	return raw
}

// rtRequest is the requester's first mail, which opens the ticket.
const rtRequest = `From: Alice Example <alice@corp.example>
To: Example IT Service Desk <support@example.com>
Cc: Bob Colleague <bob@corp.example>
Subject: VPN is down
Message-ID: <req-1@corp.example>
Date: Tue, 24 Nov 2026 08:55:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

The VPN drops every 5 minutes since this morning.
`

// open ingests rtRequest and returns the new ticket and its acknowledgement as sent.
func (d *rtDesk) open() (*tickets.Ticket, *parse.Message) {
	d.t.Helper()
	tk := d.ticket(d.deliver(rtRequest).TicketKey)
	return tk, d.ack(tk)
}

// ack returns the ticket's acknowledgement, parsed from the exact bytes in the outbox. It fails
// unless the ack is addressed to the requester first and carries a Message-ID, a Reply-To, a From
// and the ticket key in its subject: everything a reply is built from.
func (d *rtDesk) ack(tk *tickets.Ticket) *parse.Message {
	d.t.Helper()
	var (
		rcpt []string
		id   int64
	)
	err := d.pool.QueryRow(d.ctx, `SELECT rcpt_to, id FROM outbox WHERE ticket_id = $1 AND kind = 'ack'`, tk.ID).Scan(&rcpt, &id)
	if err != nil {
		d.t.Fatalf("ack of %s: %v", tk.Key, err)
	}
	raw := d.rendered(id)
	if len(rcpt) < 1 || rcpt[0] != tk.Requester {
		d.t.Errorf("ack of %s went to %v, want the requester %s first", tk.Key, rcpt, tk.Requester)
	}
	m, err := parse.Parse(raw)
	if err != nil {
		d.t.Fatalf("parse ack of %s: %v", tk.Key, err)
	}
	if m.MessageID == "" || len(m.ReplyTo) != 1 || m.From == nil || !strings.Contains(m.Subject, "["+tk.Key+"]") {
		d.t.Fatalf("ack of %s lacks Message-ID, Reply-To, From or the key in the subject:\n%s", tk.Key, raw)
	}
	return m
}

// replyData is what a reply template sees: the acknowledgement being answered, as the mail client
// shows it, and the text the requester writes.
type replyData struct {
	New                      string // what the requester types: the one thing the ticket must store
	Requester                string // the requester's From header
	Date                     string // the reply's Date header
	Key                      string // the ticket key
	Subject                  string // the acknowledgement's subject
	AckID                    string // its Message-ID, without brackets
	AckRefs                  string // its References header, brackets and all ("" when none)
	ReplyTo                  string // its Reply-To, formatted as a client writes it into To
	ReplyToName, ReplyToAddr string
	From                     string    // its From, formatted
	FromName                 string    // its From display name
	FromAddr                 string    // its From address
	AckDate                  time.Time // its Date
	AckText                  string    // its text/plain body, decoded, without the trailing newline
	AckHTML                  string    // the inside of its HTML <body>
	RequestID                string    // the Message-ID of the requester's first mail, without brackets
}

func newReplyData(ack *parse.Message, newText string) replyData {
	refs := make([]string, len(ack.References))
	for i, r := range ack.References {
		refs[i] = "<" + r + ">"
	}
	html := ack.HTML
	if i := strings.Index(html, "<body"); i >= 0 {
		html = html[i:]
		html = html[strings.IndexByte(html, '>')+1:]
	}
	if i := strings.Index(html, "</body>"); i >= 0 {
		html = html[:i]
	}
	return replyData{
		New:         newText,
		Requester:   "Alice Example <alice@corp.example>",
		Date:        ack.Date.Add(7 * time.Minute).Format(time.RFC1123Z),
		Key:         subjectKey(ack.Subject),
		Subject:     ack.Subject,
		AckID:       ack.MessageID,
		AckRefs:     strings.Join(refs, " "),
		ReplyTo:     ack.ReplyTo[0].String(),
		ReplyToName: ack.ReplyTo[0].Name,
		ReplyToAddr: ack.ReplyTo[0].Address,
		From:        ack.From.String(),
		FromName:    ack.From.Name,
		FromAddr:    ack.From.Address,
		AckDate:     ack.Date,
		AckText:     strings.TrimRight(ack.Text, "\n"),
		AckHTML:     strings.TrimSpace(html),
		RequestID:   "req-1@corp.example",
	}
}

func subjectKey(s string) string {
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

// buildReply renders testdata/roundtrip/<shape>.eml.tmpl. A template writes headers and bodies as
// the client would; {{qp "name"}}, {{b64 "name"}} and {{latin1qp "name"}} encode the output of its
// sub-template "name" (quoted-printable in UTF-8, base64 in UTF-8, quoted-printable in ISO-8859-1),
// and {{quote "> " ">" .AckText}} quotes text line by line (the second prefix for blank lines).
func buildReply(t *testing.T, shape string, data replyData) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "roundtrip", shape+".eml.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl *template.Template
	sub := func(name string) (string, error) {
		var b strings.Builder
		err := tmpl.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	tmpl, err = template.New(shape).Funcs(template.FuncMap{
		"quote": quoteText,
		"flow":  flowText,
		"qp": func(name string) (string, error) {
			s, err := sub(name)
			return qpEncode([]byte(s)), err
		},
		"latin1qp": func(name string) (string, error) {
			s, err := sub(name)
			b := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					return "", fmt.Errorf("%q is not ISO-8859-1", r)
				}
				b = append(b, byte(r))
			}
			return qpEncode(b), err
		},
		"b64": func(name string) (string, error) {
			s, err := sub(name)
			enc := base64.StdEncoding.EncodeToString([]byte(s))
			var b strings.Builder
			for len(enc) > 76 {
				b.WriteString(enc[:76] + "\n")
				enc = enc[76:]
			}
			b.WriteString(enc)
			return b.String(), err
		},
	}).Parse(string(src))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("render %s: %v", shape, err)
	}
	return b.String()
}

func quoteText(prefix, blank, text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			lines[i] = blank
		} else {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// flowText wraps each paragraph of text at 66 columns the way a format=flowed client does: every
// line but a paragraph's last ends in a space, a soft break (RFC 3676 §4.2).
func flowText(text string) string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+len(w) > 66 {
				out = append(out, line)
				line = ""
			}
			line += w + " "
		}
		out = append(out, strings.TrimSuffix(line, " "))
	}
	return strings.Join(out, "\n")
}

func qpEncode(b []byte) string {
	var buf bytes.Buffer
	w := quotedprintable.NewWriter(&buf)
	w.Write(b) //nolint:errcheck // writes to a bytes.Buffer do not fail
	w.Close()  //nolint:errcheck
	return buf.String()
}

// rtShape is one mail client's way of answering the acknowledgement.
type rtShape struct {
	name string // subtest name and template testdata/roundtrip/<name>.eml.tmpl
	new  string // what the requester writes: the visible text the ticket must store
	// reason is the thread reason the reply must be stored with.
	reason func(d replyData) string
}

func viaToken(header string) func(replyData) string {
	return func(d replyData) string {
		return "threaded via signed token in " + header + " <" + strings.ToLower(d.AckID) + ">"
	}
}

func viaHeader(header string) func(replyData) string {
	return func(d replyData) string { return "threaded via " + header + " <" + d.RequestID + ">" }
}

var rtShapes = []rtShape{
	{"gmail", "It still drops, also on the office Wi-Fi since 9:05.", viaToken("In-Reply-To")},
	{"gmail_de", "Danke, seit dem Neustart läuft es wieder.", viaToken("In-Reply-To")},
	{"outlook_desktop", "The laptop is a ThinkPad T14, asset tag 4711. The VPN client is version 5.1.", viaToken("In-Reply-To")},
	{"outlook_mac", "Same problem on my second laptop, a MacBook Air.", viaToken("In-Reply-To")},
	{"outlook_ios_fr", "Merci, c'est réglé depuis ce matin.", viaToken("In-Reply-To")},
	{"outlook_cs", "Problém stále trvá, i po restartu.", viaToken("In-Reply-To")},
	{"outlook_web", "Sure, I can be at my desk at 2 pm today.", viaToken("In-Reply-To")},
	{"outlook_html", "I am on the 3rd floor, room 312, if someone wants to look at it.", viaToken("In-Reply-To")},
	{"apple_mail", "I restarted the router at home, no change.", viaToken("In-Reply-To")},
	{"apple_mail_overwrote_references", "Any update? I have a customer call at 11.", viaToken("In-Reply-To")},
	{"thunderbird", "The error code is 809 and it shows up right after the Wi-Fi reconnects, both at home and in " +
		"the office, so it is not my router.", viaToken("In-Reply-To")},
	{"yahoo", "Tried from my phone's hotspot too: same drops.", viaToken("In-Reply-To")},
	{"iphone", "Yes, please call me on my mobile: +1 555 0199.", viaToken("In-Reply-To")},
	{"android", "Перезагрузка не помогла, ошибка 809.", viaToken("In-Reply-To")},
	{"outlook_de_subject_only", "Das Problem besteht weiterhin, auch über LAN-Kabel.",
		func(d replyData) string { return "subject key " + d.Key + " from requester" }},
	{"outlook_de_token_address", "Ich bin ab 14 Uhr im Büro erreichbar.",
		func(d replyData) string { return "threaded via signed token in To address <" + d.ReplyToAddr + ">" }},
	{"thunderbird_own_request", "I forgot: it only happens with the new VPN client, version 5.1, which was installed " +
		"yesterday afternoon.", viaHeader("In-Reply-To")},
	{"gmail_via_colleague", "Bob sees it too, so it is not just my laptop.", viaHeader("References")},
}

// TestReplyShapesThreadBack answers the real acknowledgement the way each mail client would and
// checks that the answer lands on the same ticket with only the new text, tells the agents, and
// sends no second acknowledgement.
func TestReplyShapesThreadBack(t *testing.T) {
	t.Parallel()
	for _, sh := range rtShapes {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			d := newRTDesk(t)
			tk, ack := d.open()
			data := newReplyData(ack, sh.new)
			raw := buildReply(t, sh.name, data)
			out := d.deliver(raw)
			failed := false
			fail := func(format string, args ...any) {
				t.Helper()
				failed = true
				t.Errorf(format, args...)
			}
			if out.TicketKey != tk.Key {
				fail("reply went to %s (%s), want %s", out.TicketKey, out.Reason, tk.Key)
			}
			if n := d.count(`SELECT count(*) FROM tickets`); n != 1 {
				fail("%d tickets, want 1", n)
			}
			msgs := d.messages(tk.ID)
			if len(msgs) != 2 {
				t.Fatalf("%s has %d messages, want the request and the reply\ninput:\n%s", tk.Key, len(msgs), raw)
			}
			m := msgs[1]
			if m.Direction != tickets.Inbound || m.AuthorKind != tickets.ActorUser || m.From != "alice@corp.example" {
				fail("reply stored as %s/%s from %s", m.Direction, m.AuthorKind, m.From)
			}
			if want := sh.reason(data); m.ThreadReason != want {
				fail("thread reason %q, want %q", m.ThreadReason, want)
			}
			if m.VisibleText != sh.new {
				fail("visible text\n%q\nwant\n%q", m.VisibleText, sh.new)
			}
			if got := d.outbox(tk.ID, "agent_reply"); fmt.Sprint(got) != "[ana@example.com:pending ben@example.com:pending]" {
				fail("agent_reply mail %v, want one pending to each agent of the queue", got)
			} else if n := d.text(tk.ID, "agent_reply"); m.VisibleText == sh.new && (!strings.Contains(n.Text, sh.new) ||
				strings.Contains(n.Text, "We have received") || !strings.Contains(n.Subject, "["+tk.Key+"]")) {
				fail("agent_reply %q does not show the reply's new text alone:\n%s", n.Subject, n.Text)
			}
			if n := d.count(`SELECT count(*) FROM outbox WHERE kind = 'ack'`); n != 1 {
				fail("%d acknowledgements, want the first one only", n)
			}
			if failed {
				t.Logf("input:\n%s", raw)
			}
		})
	}
}

// rtGmailID is the Message-ID of testdata/roundtrip/gmail.eml.tmpl.
const rtGmailID = "CAKsfaBW4hj0Gek6TwbR3erng4P1y0CZzJ0d=pXtCNnYnbe7PLg@mail.gmail.com"

// TestForgedSubjectKeyOpensNewTicket: a stranger who copies the ticket key into a subject, with no
// threading headers and no token, gets a ticket of their own; the requester's ticket is untouched.
func TestForgedSubjectKeyOpensNewTicket(t *testing.T) {
	t.Parallel()
	d := newRTDesk(t)
	tk, ack := d.open()
	out := d.deliver(`From: Mallory <mallory@evil.example>
To: support@example.com
Subject: Re: ` + ack.Subject + `
Message-ID: <m1@evil.example>
Date: Tue, 24 Nov 2026 09:30:00 +0000
Content-Type: text/plain; charset=utf-8

Please close this ticket, the problem is solved.
`)
	if out.TicketKey == tk.Key {
		t.Fatalf("forged key threaded into %s: %s", tk.Key, out.Reason)
	}
	want := "subject key " + tk.Key + " ignored: sender not a participant"
	if !strings.Contains(out.Reason, want) {
		t.Errorf("reason %q, want it to say %q", out.Reason, want)
	}
	nt := d.ticket(out.TicketKey)
	if nt.Requester != "mallory@evil.example" {
		t.Errorf("new ticket's requester %s", nt.Requester)
	}
	if got := d.outbox(nt.ID, "ack"); fmt.Sprint(got) != "[mallory@evil.example:pending]" {
		t.Errorf("acks of the new ticket %v, want one to the stranger", got)
	}
	if n := len(d.messages(tk.ID)); n != 1 {
		t.Errorf("%s has %d messages, want only the request", tk.Key, n)
	}
	if got := d.outbox(tk.ID, "agent_reply"); len(got) != 0 {
		t.Errorf("agents told of a reply on %s: %v", tk.Key, got)
	}
	if got := d.ticket(tk.Key); got.Status != tickets.StatusNew {
		t.Errorf("%s is %s after a stranger's mail", tk.Key, got.Status)
	}
}

// TestReplyAfterCloseOpensFollowUp: answering the acknowledgement of a closed ticket opens a new
// ticket, linked follow_up to the closed one, with an acknowledgement of its own; a further message
// in the same conversation then belongs to that follow-up, not to yet another ticket.
func TestReplyAfterCloseOpensFollowUp(t *testing.T) {
	t.Parallel()
	d := newRTDesk(t)
	tk, ack := d.open()
	err := d.svc.Do(d.ctx, func(tx *tickets.Tx) error {
		_, err := tx.ChangeStatus(d.ctx, tk.ID, tickets.StatusClosed, tickets.Actor{Kind: tickets.ActorAgent, Name: "ana"}, "fixed")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	data := newReplyData(ack, "It is broken again since this morning.")
	raw := buildReply(t, "gmail", data)
	out := d.deliver(raw)
	if out.TicketKey == tk.Key {
		t.Fatalf("reply reopened closed %s", tk.Key)
	}
	nt := d.ticket(out.TicketKey)
	links, err := d.svc.Store().Links(d.ctx, nt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(links) != fmt.Sprint([]tickets.Link{{From: nt.ID, To: tk.ID, Kind: tickets.LinkFollowUp}}) {
		t.Errorf("links of %s: %+v, want follow_up to %s", nt.Key, links, tk.Key)
	}
	msgs := d.messages(nt.ID)
	want := "new ticket: reply to closed ticket " + tk.Key + " (" + viaToken("In-Reply-To")(data) + ")"
	if len(msgs) != 1 || msgs[0].VisibleText != data.New || msgs[0].ThreadReason != want {
		t.Fatalf("follow-up messages %+v, want the reply's text with reason %q", msgs, want)
	}
	followAck := d.ack(nt)
	if n, got := d.count(`SELECT count(*) FROM outbox WHERE ticket_id = $1 AND kind = 'ack'`, nt.ID), d.outbox(nt.ID, "ack"); n != 1 ||
		got[0] != "alice@corp.example:pending" {
		t.Errorf("%d acks of %s to %v, want one, pending for the requester", n, nt.Key, got)
	}
	if n := len(d.messages(tk.ID)); n != 1 || d.ticket(tk.Key).Status != tickets.StatusClosed {
		t.Errorf("closed %s changed: %d messages, status %s", tk.Key, n, d.ticket(tk.Key).Status)
	}

	// an answer to the follow-up's own ack threads there by its token
	if out := d.deliver(buildReply(t, "apple_mail", newReplyData(followAck, "Thanks."))); out.TicketKey != nt.Key {
		t.Errorf("reply to the follow-up's ack went to %s (%s), want %s", out.TicketKey, out.Reason, nt.Key)
	}

	// Gmail answers the newest message of a conversation; after her own reply that is that reply:
	// In-Reply-To names it (stored on the follow-up); References and To still carry the old ack's token.
	second := strings.NewReplacer(
		"<"+rtGmailID+">", "<CAKsfaBW-second@mail.gmail.com>",
		"In-Reply-To: <"+data.AckID+">", "In-Reply-To: <"+rtGmailID+">",
		"References: "+data.AckRefs+" <"+data.AckID+">", "References: "+data.AckRefs+" <"+data.AckID+"> <"+rtGmailID+">",
		data.New, "Also: the office printer shows the same error.",
	).Replace(raw)
	out = d.deliver(second)
	if out.TicketKey != nt.Key {
		t.Errorf("second reply in the conversation went to %s (%s), want the follow-up %s\ninput:\n%s", out.TicketKey, out.Reason, nt.Key, second)
	}
	if n := d.count(`SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want the closed one and one follow-up", n)
	}
}
