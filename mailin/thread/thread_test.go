package thread

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/deskd/deskd/internal/token"
)

type decideCase struct {
	name string
	in   Input
	opts func(*Options) // optional change to the fixture's options
	want Decision
}

func runDecideCases(t *testing.T, f fixture, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := f.opts
			if tc.opts != nil {
				tc.opts(&opts)
			}
			got, err := Decide(context.Background(), tc.in, opts, f.lk)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got != tc.want {
				t.Errorf("Decide =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
}

func appendTo(id int64, key string, via Via, reason string) Decision {
	return Decision{Action: Append, TicketID: id, TicketKey: key, Via: via, Reason: reason}
}

func linkTo(id int64, key string, via Via, reason string) Decision {
	return Decision{Action: NewTicket, LinkTo: id, LinkKey: key, Via: via, Reason: reason}
}

func newTicket(reason string) Decision {
	return Decision{Action: NewTicket, Via: ViaNew, Reason: reason}
}

var macPart = regexp.MustCompile(`-[a-z2-7]{16}`)

// tamper changes one character of the token MAC in a Message-ID or address.
func tamper(t *testing.T, s string) string {
	t.Helper()
	loc := macPart.FindStringIndex(s)
	if loc == nil {
		t.Fatalf("no token MAC in %q", s)
	}
	i := loc[0] + 3
	c := byte('a')
	if s[i] == 'a' {
		c = 'b'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestDecideSignedToken(t *testing.T) {
	f := newFixture(t)
	s := f.signer
	fresh := s.MessageID(1042, "9") // a mail of ours that was never stored
	other, _ := token.New([]byte("a-different-secret-16b"), deskDomain)
	forged := other.MessageID(1042, "9")
	tampered := tamper(t, fresh)
	closed := s.MessageID(7, "3")
	unknown := s.MessageID(99, "1")
	reply := s.ReplyAddress("support@example.com", 1042)

	runDecideCases(t, f, []decideCase{
		{"token in In-Reply-To", Input{InReplyTo: []string{"<" + fresh + ">"}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in In-Reply-To <"+fresh+">")},
		{"token in References behind a foreign ID",
			Input{InReplyTo: []string{"<unknown@elsewhere.example>"}, References: []string{"<" + fresh + ">", "<unknown@elsewhere.example>"}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in References <"+fresh+">")},
		{"token upper-cased and folded", Input{References: []string{"<" + strings.ToUpper(fresh[:10]) + "\r\n " + fresh[10:] + ">"}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in References <"+fresh+">")},
		{"token in To plus-address", Input{To: []string{"Service Desk <" + reply + ">"}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in To address <"+reply+">")},
		{"token in case-folded Delivered-To", Input{DeliveredTo: []string{strings.ToUpper(reply)}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in Delivered-To address <"+reply+">")},
		{"token in Cc", Input{To: []string{"someone@example.com"}, Cc: []string{reply}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in Cc address <"+reply+">")},
		{"token beats a stored Message-ID of another ticket",
			Input{InReplyTo: []string{chgOrigID}, References: []string{chgOrigID, fresh}},
			nil, appendTo(1042, "SD-1042", ViaToken, "threaded via signed token in References <"+fresh+">")},
		{"tampered token is ignored with a reason", Input{References: []string{tampered}},
			nil, newTicket("new ticket: no thread match; ignored invalid signed token in References <" + tampered + ">")},
		{"token of another secret is ignored", Input{InReplyTo: []string{forged}},
			nil, newTicket("new ticket: no thread match; ignored invalid signed token in In-Reply-To <" + forged + ">")},
		{"tampered reply address is ignored", Input{To: []string{tamper(t, reply)}},
			nil, newTicket("new ticket: no thread match; ignored invalid signed token in To address <" + tamper(t, reply) + ">")},
		{"tampered token, then a stored Message-ID",
			Input{InReplyTo: []string{tampered}, References: []string{aliceOrigID, tampered}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via References <"+aliceOrigID+">; ignored invalid signed token in In-Reply-To <"+tampered+">")},
		{"tampered token does not let a stranger's subject key through",
			Input{From: "mallory@evil.example", InReplyTo: []string{tampered}, Subject: "Re: [SD-1042] VPN"},
			nil, newTicket("new ticket: no thread match; ignored invalid signed token in In-Reply-To <" + tampered + ">; subject key SD-1042 ignored: sender not a participant")},
		{"token for a closed ticket links a new ticket", Input{InReplyTo: []string{closed}},
			nil, linkTo(7, "SD-7", ViaToken, "new ticket: reply to closed ticket SD-7 (threaded via signed token in In-Reply-To <"+closed+">)")},
		{"token for an unknown ticket falls through",
			Input{InReplyTo: []string{unknown}, References: []string{aliceOrigID}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via References <"+aliceOrigID+">; signed token in In-Reply-To <"+unknown+"> names unknown ticket 99")},
		{"no signer: token ignored, stored ID used",
			Input{InReplyTo: []string{s.MessageID(1042, "55")}},
			func(o *Options) { o.Signer = nil },
			appendTo(1042, "SD-1042", ViaHeader, "threaded via In-Reply-To <"+s.MessageID(1042, "55")+">")},
		{"no signer: reply address ignored", Input{To: []string{reply}},
			func(o *Options) { o.Signer = nil }, newTicket("new ticket: no thread match")},
	})
}

func TestDecideHeaders(t *testing.T) {
	f := newFixture(t)
	runDecideCases(t, f, []decideCase{
		{"In-Reply-To", Input{InReplyTo: []string{aliceOrigID}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via In-Reply-To <"+aliceOrigID+">")},
		{"case, brackets and folding", Input{
			InReplyTo:  []string{"  <CAKsfaBW4hj0Gek6erng4P1y0CZzJ0d=pXtCNnYnbe7PLg@mail.GMAIL.com>"},
			References: []string{"<CAKsfaBW4hj0Gek6erng4P1y0CZzJ0d=\r\n pXtCNnYnbe7PLg@mail.gmail.com>"}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via In-Reply-To <"+aliceOrigID+">")},
		{"References folded across lines", Input{References: []string{"<CAKsfaBW4hj0Gek6erng4P1y0CZzJ0d=pXtCNnYnbe7PLg@mail.gmail.com\r\n\t>"}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via References <"+aliceOrigID+">")},
		{"raw References header value", Input{References: []string{"<a@x.example>\r\n <" + chgOrigID + ">, <b@x.example> (comment)"}},
			nil, appendTo(2001, "CHG-2001", ViaHeader, "threaded via References <"+chgOrigID+">")},
		{"References newest first", Input{References: []string{chgOrigID, aliceOrigID}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via References <"+aliceOrigID+">")},
		{"In-Reply-To before References", Input{InReplyTo: []string{chgOrigID}, References: []string{aliceOrigID}},
			nil, appendTo(2001, "CHG-2001", ViaHeader, "threaded via In-Reply-To <"+chgOrigID+">")},
		{"unknown In-Reply-To, known References", Input{InReplyTo: []string{"nope@x.example"}, References: []string{aliceOrigID, "nope@x.example"}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via References <"+aliceOrigID+">")},
		{"Apple Mail: References dropped, only In-Reply-To kept", Input{InReplyTo: []string{"<" + agentMailID + ">"}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via In-Reply-To <"+agentMailID+">")},
		{"Apple Mail: References replaced by the last ID", Input{InReplyTo: []string{agentMailID}, References: []string{agentMailID}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via In-Reply-To <"+agentMailID+">")},
		{"own Message-ID never threads to itself", Input{MessageID: "<" + strings.ToUpper(aliceOrigID) + ">", References: []string{aliceOrigID}},
			nil, newTicket("new ticket: no thread match")},
		{"stored ID of a closed ticket links a new ticket", Input{InReplyTo: []string{closedOrig}},
			nil, linkTo(7, "SD-7", ViaHeader, "new ticket: reply to closed ticket SD-7 (threaded via In-Reply-To <"+closedOrig+">)")},
		{"header wins over subject key", Input{From: "dave@corp.example", Subject: "Re: [CHG-2001] x", InReplyTo: []string{aliceOrigID}},
			nil, appendTo(1042, "SD-1042", ViaHeader, "threaded via In-Reply-To <"+aliceOrigID+">")},
		{"bare ID without @", Input{InReplyTo: []string{"no-at-sign"}},
			nil, newTicket("new ticket: no thread match")},
	})
}

func TestDecideSubjectKey(t *testing.T) {
	f := newFixture(t)
	domainOK := func(o *Options) { o.AcceptRequesterDomain = true }
	runDecideCases(t, f, []decideCase{
		{"from requester", Input{From: "alice@example.com", Subject: "Re: [SD-1042] VPN down"},
			nil, appendTo(1042, "SD-1042", ViaSubjectKey, "subject key SD-1042 from requester")},
		{"Outlook: References dropped, key kept, display name and case",
			Input{From: `"Alice Example" <Alice@Example.COM>`, Subject: "RE: [SD-1042] VPN down", InReplyTo: []string{"unknown@outlook.example"}},
			nil, appendTo(1042, "SD-1042", ViaSubjectKey, "subject key SD-1042 from requester")},
		{"bare key after AW:", Input{From: "alice@example.com", Subject: "AW: SD-1042: VPN down"},
			nil, appendTo(1042, "SD-1042", ViaSubjectKey, "subject key SD-1042 from requester")},
		{"from watcher", Input{From: "Bob <bob@example.com>", Subject: "[sd-1042] me too"},
			nil, appendTo(1042, "SD-1042", ViaSubjectKey, "subject key SD-1042 from participant")},
		{"from agent", Input{From: "kim@desk.example.com", Subject: "[SD-1042] note"},
			nil, appendTo(1042, "SD-1042", ViaSubjectKey, "subject key SD-1042 from agent")},
		{"forged key from a stranger", Input{From: "mallory@evil.example", Subject: "Re: [SD-1042] give me access"},
			nil, newTicket("new ticket: no thread match; subject key SD-1042 ignored: sender not a participant")},
		{"forged key from the requester's domain, option off", Input{From: "eve@example.com", Subject: "[SD-1042] x"},
			nil, newTicket("new ticket: no thread match; subject key SD-1042 ignored: sender not a participant")},
		{"colleague from the requester's domain, option on", Input{From: "eve@EXAMPLE.com", Subject: "[SD-1042] x"},
			domainOK, appendTo(1042, "SD-1042", ViaSubjectKey, "subject key SD-1042 from requester's domain")},
		{"subdomain is not the requester's domain", Input{From: "eve@mail.example.com", Subject: "[SD-1042] x"},
			domainOK, newTicket("new ticket: no thread match; subject key SD-1042 ignored: sender not a participant")},
		{"no sender", Input{Subject: "[SD-1042] x"},
			nil, newTicket("new ticket: no thread match; subject key SD-1042 ignored: sender not a participant")},
		{"closed ticket from requester links a new ticket", Input{From: "carol@example.net", Subject: "Re: [SD-7] again"},
			nil, linkTo(7, "SD-7", ViaSubjectKey, "new ticket: reply to closed ticket SD-7 (subject key SD-7 from requester)")},
		{"closed ticket from a stranger is not linked", Input{From: "mallory@evil.example", Subject: "Re: [SD-7] again"},
			nil, newTicket("new ticket: no thread match; subject key SD-7 ignored: sender not a participant")},
		{"unknown key", Input{From: "alice@example.com", Subject: "[SD-9999] x"},
			nil, newTicket("new ticket: no thread match; subject key SD-9999 names no ticket")},
		{"unknown prefix", Input{From: "alice@example.com", Subject: "[XY-1042] x"},
			nil, newTicket("new ticket: no thread match")},
		{"other queue's prefix", Input{From: "dave@corp.example", Subject: "Re: [CHG-2001] window"},
			nil, appendTo(2001, "CHG-2001", ViaSubjectKey, "subject key CHG-2001 from requester")},
		{"key mentioned mid-subject does not count", Input{From: "alice@example.com", Subject: "Re: like SD-1042 but new"},
			nil, newTicket("new ticket: no thread match")},
	})
}

func TestDecideNew(t *testing.T) {
	f := newFixture(t)
	runDecideCases(t, f, []decideCase{
		{"nothing at all", Input{}, nil, newTicket("new ticket: no thread match")},
		{"a fresh mail", Input{From: "alice@example.com", To: []string{"support@example.com"}, Subject: "VPN down",
			MessageID: "<new@mail.example.com>"}, nil, newTicket("new ticket: no thread match")},
		{"reply to a thread deskd never saw", Input{From: "alice@example.com", Subject: "Re: lunch",
			InReplyTo: []string{"x@y.example"}, References: []string{"w@y.example", "x@y.example"}}, nil,
			newTicket("new ticket: no thread match")},
	})
}

func TestDecideBoundsNotesAndCandidates(t *testing.T) {
	f := newFixture(t)
	var refs []string
	for i := range 10 {
		refs = append(refs, tamper(t, f.signer.MessageID(1042, fmt.Sprint(i))))
	}
	got, err := Decide(context.Background(), Input{References: refs}, f.opts, f.lk)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if got.Action != NewTicket || !strings.HasSuffix(got.Reason, "; 6 more") || strings.Count(got.Reason, "ignored invalid") != maxNotes {
		t.Errorf("Decide with 10 tampered tokens = %+v; want %d notes then \"6 more\"", got, maxNotes)
	}

	// A stored ID older than the newest MaxCandidates References is not considered.
	refs = []string{aliceOrigID}
	for i := range MaxCandidates {
		refs = append(refs, fmt.Sprintf("filler-%d@x.example", i))
	}
	got, err = Decide(context.Background(), Input{References: refs}, f.opts, f.lk)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if got.Action != NewTicket {
		t.Errorf("Decide looked past %d candidates: %+v", MaxCandidates, got)
	}
	got, err = Decide(context.Background(), Input{References: refs[:MaxCandidates]}, f.opts, f.lk)
	if err != nil || got.TicketID != 1042 {
		t.Errorf("Decide with exactly %d candidates = %+v, %v; want SD-1042", MaxCandidates, got, err)
	}
}

func TestDecideLookupErrors(t *testing.T) {
	f := newFixture(t)
	boom := errors.New("connection reset")
	f.lk.err = boom
	for name, in := range map[string]Input{
		"token":   {InReplyTo: []string{f.signer.MessageID(1042, "1")}},
		"header":  {InReplyTo: []string{aliceOrigID}},
		"subject": {From: "alice@example.com", Subject: "[SD-1042] x"},
	} {
		if d, err := Decide(context.Background(), in, f.opts, f.lk); !errors.Is(err, boom) {
			t.Errorf("%s: Decide = %+v, %v; want the lookup error", name, d, err)
		}
	}
}

func TestClosedTokenDefersToOpenFollowUp(t *testing.T) {
	signer, err := token.New([]byte("0123456789abcdef0123456789abcdef"), "desk.example.com")
	if err != nil {
		t.Fatal(err)
	}
	closed := TicketRef{ID: 1, Key: "SD-1", Closed: true, Requester: "alice@corp.example"}
	followUp := TicketRef{ID: 2, Key: "SD-2", Requester: "alice@corp.example"}
	lk := &followUpLookup{byID: map[int64]TicketRef{1: closed, 2: followUp}, byMID: map[string]TicketRef{"reply-1@mail.gmail.com": followUp}}
	in := Input{From: "alice@corp.example", Subject: "Re: [SD-1] VPN", MessageID: "reply-2@mail.gmail.com",
		InReplyTo:  []string{"reply-1@mail.gmail.com"},
		References: []string{"<orig@corp.example> <" + signer.MessageID(1, "ack") + "> <reply-1@mail.gmail.com>"}}
	d, err := Decide(context.Background(), in, Options{Signer: signer, KeyPrefixes: []string{"SD"}}, lk)
	if err != nil {
		t.Fatal(err)
	}
	if d.Action != Append || d.TicketID != 2 || d.Via != ViaHeader || !strings.Contains(d.Reason, "closed ticket SD-1") {
		t.Errorf("decision %+v: want append to the open follow-up SD-2", d)
	}
	// without the follow-up's message the closed ticket's token still opens a linked ticket
	in.InReplyTo, in.References = []string{signer.MessageID(1, "ack")}, nil
	d, err = Decide(context.Background(), in, Options{Signer: signer, KeyPrefixes: []string{"SD"}}, lk)
	if err != nil || d.Action != NewTicket || d.LinkTo != 1 {
		t.Errorf("decision %+v %v: want a new ticket linked to SD-1", d, err)
	}
}

type followUpLookup struct {
	byID  map[int64]TicketRef
	byMID map[string]TicketRef
}

func (l *followUpLookup) TicketByID(_ context.Context, id int64) (TicketRef, error) {
	if t, ok := l.byID[id]; ok {
		return t, nil
	}
	return TicketRef{}, ErrNotFound
}

func (l *followUpLookup) TicketByMessageID(_ context.Context, ids []string) (TicketRef, string, error) {
	for _, id := range ids {
		if t, ok := l.byMID[id]; ok {
			return t, id, nil
		}
	}
	return TicketRef{}, "", ErrNotFound
}

func (l *followUpLookup) TicketByKey(context.Context, string) (TicketRef, error) {
	return TicketRef{}, ErrNotFound
}
