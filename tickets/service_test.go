package tickets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/mailout"
	"github.com/deskd/deskd/tickets"
)

var (
	requester = tickets.Actor{Kind: tickets.ActorUser, Name: "alice@example.com"}
	agent     = tickets.Actor{Kind: tickets.ActorAgent, Name: "ana"}
	fixedNow  = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
)

func newService(t *testing.T, opts tickets.Options) (*tickets.Service, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.New(t)
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	return tickets.NewService(pool, opts), pool
}

func create(t *testing.T, ctx context.Context, svc *tickets.Service, subject string) *tickets.Ticket {
	t.Helper()
	tk, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
		tk, _, err := tx.Create(ctx, tickets.NewTicket{
			Prefix: "SD", Queue: "support", Kind: tickets.KindIncident, Priority: tickets.P3,
			Requester: "Alice@Example.com", RequesterName: "Alice", Subject: subject,
			Message: &tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, AuthorKind: tickets.ActorUser,
				Author: "alice@example.com", MessageID: "m1-" + subject + "@example.com", From: "alice@example.com",
				Subject: subject, Text: "it broke", VisibleText: "it broke",
				Attachments: []tickets.Attachment{{Filename: "log.txt", ContentType: "text/plain", Data: []byte("boom")}}},
			Watchers: []string{"bob@example.com"},
			Actor:    requester, Why: "new mail",
		})
		return tk, err
	})
	if err != nil {
		t.Fatalf("create ticket: %v", err)
	}
	return tk
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// A message's attachments go in with one statement per 8 MiB of content: each gets its row and id,
// in order, and content shared by two of them is stored once, also across statements.
func TestAttachmentsOfOneMessageAreStoredTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, pool := newService(t, tickets.Options{})
	tk := create(t, ctx, svc, "Printer logs")
	big1, big2 := bytes.Repeat([]byte("dump 1 "), 5<<20/7), bytes.Repeat([]byte("dump 2 "), 5<<20/7)
	atts := []tickets.Attachment{
		{Filename: "a.log", ContentType: "text/plain", Data: []byte("jam at tray 2")},
		{Filename: "b.bin", Data: []byte{0, 1, 2}},
		{Filename: "a-again.log", ContentType: "text/plain", Data: []byte("jam at tray 2")},
		{Filename: "big1.dmp", Data: big1}, // 5 MiB: the first statement ends after it
		{Filename: "big2.dmp", Data: big2},
		{Filename: "big1-again.dmp", Data: big1},
	}
	note, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Message, error) {
		return tx.AddNote(ctx, tk.ID, tickets.Actor{Kind: tickets.ActorAgent, Name: "ana"}, "logs attached", atts)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range note.Attachments {
		if a.ID == 0 || (i > 0 && a.ID <= note.Attachments[i-1].ID) {
			t.Errorf("attachment %d (%s) has id %d: want ids ascending in order", i, a.Filename, a.ID)
		}
	}
	msgs, err := svc.Store().Messages(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := msgs[len(msgs)-1].Attachments
	if len(got) != 6 || got[0].Filename != "a.log" || got[1].ContentType != "application/octet-stream" ||
		got[2].Filename != "a-again.log" || !bytes.Equal(got[0].SHA256, got[2].SHA256) || got[1].Size != 3 ||
		got[5].Filename != "big1-again.dmp" || !bytes.Equal(got[3].SHA256, got[5].SHA256) || got[4].Size != int64(len(big2)) {
		t.Fatalf("attachments read back: %+v", got)
	}
	for i, want := range map[int][]byte{3: big1, 4: big2, 5: big1} {
		data, err := svc.Store().AttachmentData(ctx, got[i].SHA256)
		if err != nil || !bytes.Equal(data, want) {
			t.Errorf("%s: %d bytes read back (%v), want %d", got[i].Filename, len(data), err, len(want))
		}
	}
	if n := countRows(t, pool, "blobs"); n != 5 { // log.txt of the ticket's first message, and four here
		t.Errorf("%d blobs, want 5 (equal content stored once)", n)
	}
}

// Every message records its number of attachments (both ways a message is written), and listing a
// ticket's messages reads the attachments table only when one of them has some.
func TestMessagesReadAttachmentsOnlyWhenThereAreSome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := testdb.NewWithURL(t)
	svc := tickets.NewService(pool, tickets.Options{Now: func() time.Time { return fixedNow }})
	with := create(t, ctx, svc, "Printer jams") // its first message carries log.txt
	if _, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Message, error) {
		return tx.AddNote(ctx, with.ID, agent, "two more", []tickets.Attachment{
			{Filename: "a.log", Data: []byte("a")}, {Filename: "b.log", Data: []byte("b")}})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Message, error) {
		return tx.AddNote(ctx, with.ID, agent, "no files", nil)
	}); err != nil {
		t.Fatal(err)
	}
	without, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
		tk, _, err := tx.Create(ctx, tickets.NewTicket{
			Prefix: "SD", Queue: "support", Kind: tickets.KindIncident, Priority: tickets.P3,
			Requester: "carol@example.com", Subject: "Password expired",
			Message: &tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, AuthorKind: tickets.ActorUser,
				Author: "carol@example.com", MessageID: "m-carol@example.com", From: "carol@example.com",
				Subject: "Password expired", Text: "locked out", VisibleText: "locked out"},
			Actor: requester, Why: "new mail",
		})
		return tk, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wrong int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM messages m
		WHERE attachment_count <> (SELECT count(*) FROM attachments a WHERE a.message_id = m.id)`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d messages record a number of attachments they do not have", wrong)
	}

	reads := &testdb.SQLCounter{Want: "FROM attachments"}
	st := tickets.NewStore(testdb.Traced(t, url, reads))
	msgs, err := st.Messages(ctx, with.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range msgs {
		for _, a := range m.Attachments {
			names = append(names, a.Filename)
		}
		names = append(names, "|")
	}
	if got := strings.Join(names, " "); got != "log.txt | a.log b.log | |" {
		t.Errorf("attachments by message: %q, want %q", got, "log.txt | a.log b.log | |")
	}
	if n := reads.Count(); n != 1 {
		t.Errorf("listing a ticket with attachments read the attachments table %d times, want 1", n)
	}
	msgs, err = st.Messages(ctx, without.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || len(msgs[0].Attachments) != 0 {
		t.Errorf("ticket without attachments: %d messages, %+v", len(msgs), msgs)
	}
	if n := reads.Count(); n != 1 {
		t.Errorf("listing a ticket without attachments read the attachments table (%d reads in all, want 1)", n)
	}
}

func TestCreateWritesTicketMessageParticipantsAndOneEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, pool := newService(t, tickets.Options{})
	tk := create(t, ctx, svc, "VPN is down")
	if tk.Key != fmt.Sprintf("SD-%d", tk.Number) || tk.Number < 1000 {
		t.Errorf("key %q number %d: want SD-<number>, number from 1000", tk.Key, tk.Number)
	}
	if tk.Status != tickets.StatusNew || tk.Requester != "alice@example.com" {
		t.Errorf("status %s requester %s: want new, lower-cased requester", tk.Status, tk.Requester)
	}
	st := svc.Store()
	msgs, err := st.Messages(ctx, tk.ID)
	if err != nil || len(msgs) != 1 || len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].Size != 4 {
		t.Fatalf("messages: %v %+v", err, msgs)
	}
	data, err := st.AttachmentData(ctx, msgs[0].Attachments[0].SHA256)
	if err != nil || string(data) != "boom" {
		t.Errorf("attachment data %q %v", data, err)
	}
	parts, err := st.Participants(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []tickets.Participant{{Email: "alice@example.com", Role: tickets.RoleRequester}, {Email: "bob@example.com", Role: tickets.RoleWatcher}}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Errorf("participants %v, want %v", parts, want)
	}
	evs, err := st.Events(ctx, tk.ID)
	if err != nil || len(evs) != 1 || evs[0].Kind != tickets.EventCreated || evs[0].Actor != requester || evs[0].MessageID == nil {
		t.Errorf("events %v %+v: want one created event by the requester", err, evs)
	}
	got, err := st.TicketByKey(ctx, "sd-"+fmt.Sprint(tk.Number))
	if err != nil || got.ID != tk.ID {
		t.Errorf("TicketByKey: %v %v", got, err)
	}
	byMID, matched, err := st.TicketByMessageID(ctx, []string{"nope@x", "m1-vpn is down@example.com", "m1-VPN is down@example.com"})
	if err != nil || byMID.ID != tk.ID || matched != "m1-VPN is down@example.com" {
		t.Errorf("TicketByMessageID: %v %q %v", byMID, matched, err)
	}
	// the threader's read in the ingest: found, read with the other participants, and locked
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // released at the end
	locked, others, matched, err := tickets.NewStore(tx).TicketAndOthersByMessageID(ctx,
		[]string{"nope@x", "m1-vpn is down@example.com"}, true)
	if err != nil || locked.ID != tk.ID || locked.Key != tk.Key || matched != "m1-VPN is down@example.com" ||
		fmt.Sprint(others) != "[bob@example.com]" {
		t.Errorf("TicketAndOthersByMessageID: %+v %v %q %v", locked, others, matched, err)
	}
	if _, err := pool.Exec(ctx, `SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE NOWAIT`, tk.ID); err == nil {
		t.Error("TicketAndOthersByMessageID with lock left the ticket unlocked")
	}
	if _, _, _, err := tickets.NewStore(tx).TicketAndOthersByMessageID(ctx, []string{"nope@x"}, true); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("TicketAndOthersByMessageID of an unknown id: %v, want ErrNotFound", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, others, _, err := st.TicketAndOthersByMessageID(ctx, []string{"m1-vpn is down@example.com"}, false); err != nil ||
		fmt.Sprint(others) != "[bob@example.com]" {
		t.Errorf("TicketAndOthersByMessageID without lock: %v %v", others, err)
	}
	cmsgs, cparts, err := st.Conversation(ctx, tk.ID)
	if err != nil || fmt.Sprint(cparts) != fmt.Sprint(want) || len(cmsgs) != 1 || cmsgs[0].ID != msgs[0].ID ||
		cmsgs[0].VisibleText != msgs[0].VisibleText || cmsgs[0].From != msgs[0].From || len(cmsgs[0].Attachments) != 0 {
		t.Errorf("Conversation: %v %+v %v, want the messages (text, no attachments) and participants read apart", err, cmsgs, cparts)
	}
	if countRows(t, pool, "contacts") != 2 {
		t.Errorf("contacts: want requester and watcher")
	}
}

func TestNotFoundIsAnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newService(t, tickets.Options{})
	if _, err := svc.Store().Ticket(ctx, 42); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("Ticket(42): %v, want ErrNotFound", err)
	}
	if _, err := svc.Store().TicketByKey(ctx, "SD-1"); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("TicketByKey: %v, want ErrNotFound", err)
	}
	err := svc.Do(ctx, func(tx *tickets.Tx) error {
		_, err := tx.ChangeStatus(ctx, 42, tickets.StatusOpen, agent, "")
		return err
	})
	if !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("ChangeStatus on missing ticket: %v, want ErrNotFound", err)
	}
}

// forceStatus walks a fresh ticket to status s through allowed transitions.
func forceStatus(t *testing.T, ctx context.Context, svc *tickets.Service, id int64, s tickets.Status) {
	t.Helper()
	path := map[tickets.Status][]tickets.Status{
		tickets.StatusNew:      nil,
		tickets.StatusOpen:     {tickets.StatusOpen},
		tickets.StatusPending:  {tickets.StatusPending},
		tickets.StatusResolved: {tickets.StatusResolved},
		tickets.StatusClosed:   {tickets.StatusClosed},
	}[s]
	for _, step := range path {
		if err := svc.Do(ctx, func(tx *tickets.Tx) error {
			_, err := tx.ChangeStatus(ctx, id, step, agent, "setup")
			return err
		}); err != nil {
			t.Fatalf("setup %s: %v", step, err)
		}
	}
}

func TestEveryStatusTransition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newService(t, tickets.Options{})
	all := []tickets.Status{tickets.StatusNew, tickets.StatusOpen, tickets.StatusPending, tickets.StatusResolved, tickets.StatusClosed}
	allowed := map[[2]tickets.Status]bool{
		{"new", "open"}: true, {"new", "pending"}: true, {"new", "resolved"}: true, {"new", "closed"}: true,
		{"open", "pending"}: true, {"open", "resolved"}: true, {"open", "closed"}: true,
		{"pending", "open"}: true, {"pending", "resolved"}: true, {"pending", "closed"}: true,
		{"resolved", "open"}: true, {"resolved", "closed"}: true,
	}
	for _, from := range all {
		for _, to := range all {
			tk := create(t, ctx, svc, fmt.Sprintf("%s to %s", from, to))
			forceStatus(t, ctx, svc, tk.ID, from)
			_, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
				return tx.ChangeStatus(ctx, tk.ID, to, agent, "test")
			})
			got, lerr := svc.Store().Ticket(ctx, tk.ID)
			if lerr != nil {
				t.Fatal(lerr)
			}
			switch {
			case from == to:
				if !errors.Is(err, tickets.ErrNoChange) || got.Status != from {
					t.Errorf("%s -> %s: err %v status %s, want ErrNoChange", from, to, err, got.Status)
				}
			case allowed[[2]tickets.Status{from, to}]:
				if err != nil || got.Status != to || !tickets.CanTransition(from, to) {
					t.Errorf("%s -> %s: err %v status %s, want allowed", from, to, err, got.Status)
				}
			default:
				if !errors.Is(err, tickets.ErrTransition) || got.Status != from || tickets.CanTransition(from, to) {
					t.Errorf("%s -> %s: err %v status %s, want ErrTransition", from, to, err, got.Status)
				}
			}
		}
	}
}

func TestRequesterReplyReopensButClosedNeverDoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newService(t, tickets.Options{})
	reply := func(id int64, n int) error {
		_, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Message, error) {
			return tx.AppendMessage(ctx, id, tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public,
				AuthorKind: tickets.ActorUser, Author: "alice@example.com", MessageID: fmt.Sprintf("r%d-%d@x", id, n), Text: "still broken"},
				requester, "reply")
		})
		return err
	}
	for _, st := range []tickets.Status{tickets.StatusPending, tickets.StatusResolved} {
		tk := create(t, ctx, svc, "reopen from "+string(st))
		forceStatus(t, ctx, svc, tk.ID, st)
		if err := reply(tk.ID, 1); err != nil {
			t.Fatalf("reply to %s ticket: %v", st, err)
		}
		got, _ := svc.Store().Ticket(ctx, tk.ID)
		evs, _ := svc.Store().Events(ctx, tk.ID)
		last := evs[len(evs)-1]
		if got.Status != tickets.StatusOpen || last.Kind != tickets.EventMessage || last.Before != string(st) || last.After != "open" {
			t.Errorf("reply to %s: status %s, last event %+v; want reopened with before/after", st, got.Status, last)
		}
	}
	tk := create(t, ctx, svc, "closed stays closed")
	forceStatus(t, ctx, svc, tk.ID, tickets.StatusClosed)
	if err := reply(tk.ID, 2); !errors.Is(err, tickets.ErrTransition) {
		t.Errorf("reply to closed: %v, want ErrTransition", err)
	}
	if got, _ := svc.Store().Ticket(ctx, tk.ID); got.Status != tickets.StatusClosed {
		t.Errorf("closed ticket became %s", got.Status)
	}
}

func TestEachUseCaseWritesExactlyOneEventWithItsActor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var committed []tickets.Event
	var mu sync.Mutex
	svc, _ := newService(t, tickets.Options{Committed: func(e tickets.Event) { mu.Lock(); committed = append(committed, e); mu.Unlock() }})
	tk := create(t, ctx, svc, "use cases")
	other := create(t, ctx, svc, "other")
	rule := tickets.Actor{Kind: tickets.ActorRule, Name: "vip"}
	slaActor := tickets.Actor{Kind: tickets.ActorSLA, Name: "sla"}
	cases := []struct {
		name  string
		actor tickets.Actor
		kind  tickets.EventKind
		run   func(tx *tickets.Tx) error
	}{
		{"append agent reply", agent, tickets.EventMessage, func(tx *tickets.Tx) error {
			_, err := tx.AppendMessage(ctx, tk.ID, tickets.Message{Direction: tickets.Outbound, Visibility: tickets.Public,
				AuthorKind: tickets.ActorAgent, Author: "ana", MessageID: "out1@desk", Text: "try again"}, agent, "")
			return err
		}},
		{"note", agent, tickets.EventNote, func(tx *tickets.Tx) error { _, err := tx.AddNote(ctx, tk.ID, agent, "called user", nil); return err }},
		{"status", agent, tickets.EventStatus, func(tx *tickets.Tx) error {
			_, err := tx.ChangeStatus(ctx, tk.ID, tickets.StatusPending, agent, "")
			return err
		}},
		{"priority", rule, tickets.EventPriority, func(tx *tickets.Tx) error { _, err := tx.SetPriority(ctx, tk.ID, tickets.P1, rule, "vip"); return err }},
		{"assign", slaActor, tickets.EventAssignee, func(tx *tickets.Tx) error {
			_, err := tx.Assign(ctx, tk.ID, "ana", "ana@desk.example", slaActor, "escalated")
			return err
		}},
		{"queue", agent, tickets.EventQueue, func(tx *tickets.Tx) error { _, err := tx.MoveQueue(ctx, tk.ID, "network", agent, ""); return err }},
		{"kind", agent, tickets.EventKindChanged, func(tx *tickets.Tx) error {
			_, err := tx.SetKind(ctx, tk.ID, tickets.KindProblem, agent, "")
			return err
		}},
		{"link", agent, tickets.EventLinked, func(tx *tickets.Tx) error {
			return tx.Link(ctx, tk.ID, other.ID, tickets.LinkProblemIncident, agent, "")
		}},
		{"add watcher", requester, tickets.EventWatcherAdded, func(tx *tickets.Tx) error { return tx.AddWatcher(ctx, tk.ID, "Carol@Example.com", requester, "cc") }},
		{"remove watcher", agent, tickets.EventWatcherRemoved, func(tx *tickets.Tx) error { return tx.RemoveWatcher(ctx, tk.ID, "carol@example.com", agent, "") }},
	}
	for _, c := range cases {
		before, _ := svc.Store().Events(ctx, tk.ID)
		if err := svc.Do(ctx, c.run); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after, _ := svc.Store().Events(ctx, tk.ID)
		if len(after) != len(before)+1 {
			t.Errorf("%s wrote %d events, want 1", c.name, len(after)-len(before))
			continue
		}
		if e := after[len(after)-1]; e.Kind != c.kind || e.Actor != c.actor {
			t.Errorf("%s: event %s by %v, want %s by %v", c.name, e.Kind, e.Actor, c.kind, c.actor)
		}
	}
	got, _ := svc.Store().Ticket(ctx, tk.ID)
	if got.Status != tickets.StatusPending || got.Priority != tickets.P1 || got.Assignee != "ana" || got.Queue != "network" ||
		got.Kind != tickets.KindProblem || got.FirstResponseAt == nil {
		t.Errorf("ticket after use cases: %+v", got)
	}
	links, _ := svc.Store().Links(ctx, other.ID)
	if len(links) != 1 || links[0].Kind != tickets.LinkProblemIncident {
		t.Errorf("links: %+v", links)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(committed) != len(cases)+2 { // + two creates
		t.Errorf("Committed saw %d events, want %d", len(committed), len(cases)+2)
	}
}

func TestConcurrentCreationGivesDistinctKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newService(t, tickets.Options{})
	const n = 50
	keys := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
				tk, _, err := tx.Create(ctx, tickets.NewTicket{Prefix: "SD", Queue: "support", Kind: tickets.KindRequest,
					Priority: tickets.P4, Requester: fmt.Sprintf("u%d@example.com", i), Subject: "concurrent", Actor: requester})
				return tk, err
			})
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			keys <- tk.Key
		}()
	}
	wg.Wait()
	close(keys)
	seen := map[string]bool{}
	for k := range keys {
		if seen[k] {
			t.Errorf("duplicate key %s", k)
		}
		seen[k] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct keys, want %d", len(seen), n)
	}
}

// failingMailer fails when the mail is prepared or, with atWrite, when it is written before commit.
type failingMailer struct{ atWrite bool }

func (f failingMailer) TicketChanged(context.Context, pgx.Tx, tickets.Change) ([]mailout.Mail, error) {
	if f.atWrite {
		return []mailout.Mail{{IdempotencyKey: "k"}}, nil
	}
	return nil, errors.New("smtp template exploded")
}

func (failingMailer) WriteMail(context.Context, pgx.Tx, []mailout.Mail) error {
	return errors.New("outbox exploded")
}

func TestFailureHalfwayLeavesNoPartialRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var pool *pgxpool.Pool
	for _, atWrite := range []bool{false, true} {
		var svc *tickets.Service
		svc, pool = newService(t, tickets.Options{Mailer: failingMailer{atWrite: atWrite}})
		_, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Ticket, error) {
			tk, _, err := tx.Create(ctx, tickets.NewTicket{Prefix: "SD", Queue: "support", Kind: tickets.KindIncident,
				Priority: tickets.P2, Requester: "x@example.com", Subject: "half",
				Message: &tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, AuthorKind: tickets.ActorUser,
					MessageID: "half@x", Attachments: []tickets.Attachment{{Filename: "a", Data: []byte("a")}}},
				Watchers: []string{"w@example.com"}, Actor: requester})
			return tk, err
		})
		want := map[bool]string{false: "smtp template exploded", true: "write mail: outbox exploded"}[atWrite]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("create with a mailer failing (atWrite=%v): %v, want %q", atWrite, err, want)
		}
		for _, table := range []string{"tickets", "messages", "participants", "contacts", "attachments", "blobs", "events"} {
			if n := countRows(t, pool, table); n != 0 {
				t.Errorf("atWrite=%v: %s has %d rows after a failed use case, want 0", atWrite, table, n)
			}
		}
	}
	// a failure after a successful use case inside the same Do also rolls both back
	plain := tickets.NewService(pool, tickets.Options{})
	tk := create(t, ctx, plain, "two steps")
	err := plain.Do(ctx, func(tx *tickets.Tx) error {
		if _, err := tx.ChangeStatus(ctx, tk.ID, tickets.StatusOpen, agent, ""); err != nil {
			return err
		}
		_, err := tx.SetPriority(ctx, tk.ID, "P9", agent, "")
		return err
	})
	if !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("second step: %v, want ErrInvalid", err)
	}
	got, _ := plain.Store().Ticket(ctx, tk.ID)
	evs, _ := plain.Store().Events(ctx, tk.ID)
	if got.Status != tickets.StatusNew || len(evs) != 1 {
		t.Errorf("after rolled-back Do: status %s, %d events; want new and only the created event", got.Status, len(evs))
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newService(t, tickets.Options{})
	a := create(t, ctx, svc, "a")
	b := create(t, ctx, svc, "b")
	if err := svc.Do(ctx, func(tx *tickets.Tx) error {
		if _, err := tx.Assign(ctx, a.ID, "ana", "", agent, ""); err != nil {
			return err
		}
		_, err := tx.SetKind(ctx, b.ID, tickets.KindChange, agent, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st := svc.Store()
	for _, c := range []struct {
		f    tickets.Filter
		want []int64
	}{
		{tickets.Filter{}, []int64{b.ID, a.ID}},
		{tickets.Filter{Assignee: "ana"}, []int64{a.ID}},
		{tickets.Filter{Assignee: "-"}, []int64{b.ID}},
		{tickets.Filter{Kind: tickets.KindChange}, []int64{b.ID}},
		{tickets.Filter{Status: []tickets.Status{tickets.StatusOpen}}, nil},
		{tickets.Filter{Queue: "support", Limit: 1}, []int64{b.ID}},
	} {
		got, err := st.List(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, tk := range got {
			ids = append(ids, tk.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.f, ids, c.want)
		}
	}
}

// TestVisibleTextStoredOnceWhenItIsTheWholeText: a message that quotes nothing stores its text once
// (visible_text NULL) and reads back with the same visible text; a reply whose visible text differs
// keeps both.
func TestVisibleTextStoredOnceWhenItIsTheWholeText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, pool := newService(t, tickets.Options{})
	tk := create(t, ctx, svc, "Printer jam")
	reply := tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, AuthorKind: tickets.ActorUser,
		Author: "alice@example.com", MessageID: "m2@example.com", From: "alice@example.com", Subject: "Re: Printer jam",
		Text: "still jammed\n\n> it broke\n", VisibleText: "still jammed\n"}
	if _, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) (*tickets.Message, error) {
		return tx.AppendMessage(ctx, tk.ID, reply, requester, "reply")
	}); err != nil {
		t.Fatal(err)
	}
	var stored []*string
	rows, err := pool.Query(ctx, `SELECT visible_text FROM messages WHERE ticket_id = $1 ORDER BY id`, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored, err = pgx.CollectRows(rows, pgx.RowTo[*string]); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0] != nil || stored[1] == nil || *stored[1] != "still jammed\n" {
		t.Fatalf("stored visible texts %v: want NULL for the first (same as its text), the reply's own for the second", stored)
	}
	msgs, err := svc.Store().Messages(ctx, tk.ID)
	if err != nil || len(msgs) != 2 {
		t.Fatal(err, len(msgs))
	}
	if msgs[0].VisibleText != "it broke" || msgs[1].VisibleText != "still jammed\n" || msgs[1].Text != reply.Text {
		t.Errorf("read back %q / %q (text %q)", msgs[0].VisibleText, msgs[1].VisibleText, msgs[1].Text)
	}
}

// CreateMany opens several tickets with one statement: each gets its number in input order, its
// own participants, message, attachments and "created" event; a contact shared by two of them is
// stored once and learns the name given; a ticket may come without mail.
func TestCreateManyOpensEachTicketWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, pool := newService(t, tickets.Options{})
	msg := func(from, id, text string, refs []string, files ...tickets.Attachment) *tickets.Message {
		return &tickets.Message{Direction: tickets.Inbound, Visibility: tickets.Public, AuthorKind: tickets.ActorUser,
			Author: from, MessageID: id, From: from, To: []string{"support@example.com", "carol@example.com"},
			References: refs, Subject: text, Text: text, VisibleText: text, Attachments: files}
	}
	ins := []tickets.NewTicket{
		{Prefix: "SD", Queue: "support", Kind: tickets.KindIncident, Priority: tickets.P3, Requester: "Alice@Example.com",
			Subject: "VPN down", Watchers: []string{"carol@example.com"}, Actor: requester, Why: "first",
			Message: msg("alice@example.com", "a1@example.com", "VPN down", []string{"x1@example.com", "x2@example.com"},
				tickets.Attachment{Filename: "vpn.log", Data: []byte("timeout")})},
		{Prefix: "HR", Queue: "people", Kind: tickets.KindRequest, Priority: tickets.P2, Requester: "bob@example.com",
			RequesterName: "Bob B", Subject: "  ", Actor: tickets.Actor{Kind: tickets.ActorUser, Name: "bob@example.com"}, Why: "second"},
		{Prefix: "SD", Queue: "support", Kind: tickets.KindIncident, Priority: tickets.P1, Requester: "carol@example.com",
			RequesterName: "Carol C", Subject: "Printer", Watchers: []string{"alice@example.com", "Alice@example.com"},
			Actor: tickets.Actor{Kind: tickets.ActorUser, Name: "carol@example.com"}, Why: "third",
			Message: msg("carol@example.com", "c1@example.com", "Printer", nil,
				tickets.Attachment{Filename: "a.txt", Data: []byte("one")}, tickets.Attachment{Filename: "b.txt", Data: []byte("timeout")})},
	}
	out, err := tickets.Run(ctx, svc, func(tx *tickets.Tx) ([]tickets.Created, error) { return tx.CreateMany(ctx, ins) })
	if err != nil {
		t.Fatalf("create many: %v", err)
	}
	if len(out) != 3 {
		t.Fatalf("%d results, want 3", len(out))
	}
	for i, c := range out {
		if c.Err != nil || c.Ticket == nil {
			t.Fatalf("ticket %d: %+v", i, c)
		}
	}
	a, b, c := out[0], out[1], out[2]
	if !(a.Ticket.Number < b.Ticket.Number && b.Ticket.Number < c.Ticket.Number) {
		t.Errorf("numbers %d, %d, %d: want input order", a.Ticket.Number, b.Ticket.Number, c.Ticket.Number)
	}
	if a.Ticket.Key != fmt.Sprintf("SD-%d", a.Ticket.Number) || b.Ticket.Key != fmt.Sprintf("HR-%d", b.Ticket.Number) {
		t.Errorf("keys %s, %s", a.Ticket.Key, b.Ticket.Key)
	}
	if a.Ticket.Requester != "alice@example.com" || b.Ticket.Subject != "(no subject)" || c.Ticket.Priority != tickets.P1 ||
		b.Ticket.Kind != tickets.KindRequest || b.Ticket.Queue != "people" || a.Ticket.Status != tickets.StatusNew {
		t.Errorf("tickets %+v %+v %+v", a.Ticket, b.Ticket, c.Ticket)
	}
	if b.Message != nil || a.Message == nil || c.Message == nil || a.Message.TicketID != a.Ticket.ID || c.Message.TicketID != c.Ticket.ID {
		t.Fatalf("messages %+v %+v %+v", a.Message, b.Message, c.Message)
	}
	st := svc.Store()
	for _, w := range []struct {
		tk    *tickets.Ticket
		parts string
		msgs  int
		files []string
	}{
		{a.Ticket, "alice@example.com:requester carol@example.com:watcher", 1, []string{"vpn.log"}},
		{b.Ticket, "bob@example.com:requester", 0, nil},
		{c.Ticket, "carol@example.com:requester alice@example.com:watcher", 1, []string{"a.txt", "b.txt"}},
	} {
		ps, err := st.Participants(ctx, w.tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Email+":"+string(p.Role))
		}
		if strings.Join(got, " ") != w.parts {
			t.Errorf("%s participants %q, want %q", w.tk.Key, strings.Join(got, " "), w.parts)
		}
		ms, err := st.Messages(ctx, w.tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != w.msgs {
			t.Fatalf("%s: %d messages, want %d", w.tk.Key, len(ms), w.msgs)
		}
		if len(ms) == 1 {
			var files []string
			for _, f := range ms[0].Attachments {
				files = append(files, f.Filename)
			}
			if strings.Join(files, " ") != strings.Join(w.files, " ") || len(ms[0].To) != 2 {
				t.Errorf("%s: attachments %q, to %q", w.tk.Key, files, ms[0].To)
			}
		}
		evs, err := st.Events(ctx, w.tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != tickets.EventCreated || (w.msgs == 1) != (evs[0].MessageID != nil) {
			t.Errorf("%s events %+v", w.tk.Key, evs)
		}
	}
	ma, err := st.Messages(ctx, a.Ticket.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ma[0].References, " ") != "x1@example.com x2@example.com" {
		t.Errorf("references %q", ma[0].References)
	}
	if n := countRows(t, pool, "blobs"); n != 2 {
		t.Errorf("%d blobs, want 2 (\"timeout\" twice stored once)", n)
	}
	var names string
	if err := pool.QueryRow(ctx, `SELECT string_agg(email || '=' || name, ' ' ORDER BY email) FROM contacts`).Scan(&names); err != nil {
		t.Fatal(err)
	}
	if names != "alice@example.com= bob@example.com=Bob B carol@example.com=Carol C" {
		t.Errorf("contacts %q", names)
	}
	// a line break cannot hide in a list joined for the statement
	_, err = tickets.Run(ctx, svc, func(tx *tickets.Tx) ([]tickets.Created, error) {
		bad := ins[0]
		m := *bad.Message
		m.References = []string{"a@x\nb@y"}
		bad.Message = &m
		return tx.CreateMany(ctx, []tickets.NewTicket{bad})
	})
	if !errors.Is(err, tickets.ErrInvalid) {
		t.Errorf("line break in a reference: %v, want ErrInvalid", err)
	}
}
