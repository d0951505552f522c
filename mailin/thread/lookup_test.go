package thread

import (
	"context"
	"strings"
	"testing"

	"github.com/deskd/deskd/internal/token"
)

// memLookup is an in-memory Lookup with the documented contract.
type memLookup struct {
	tickets map[int64]TicketRef
	msgIDs  map[string]int64 // canonical Message-ID -> ticket
	err     error            // when set, every call fails with it
}

func (m *memLookup) TicketByID(_ context.Context, id int64) (TicketRef, error) {
	if m.err != nil {
		return TicketRef{}, m.err
	}
	if t, ok := m.tickets[id]; ok {
		return t, nil
	}
	return TicketRef{}, ErrNotFound
}

func (m *memLookup) TicketByMessageID(_ context.Context, ids []string) (TicketRef, string, error) {
	if m.err != nil {
		return TicketRef{}, "", m.err
	}
	for _, id := range ids {
		if tid, ok := m.msgIDs[id]; ok {
			return m.tickets[tid], id, nil
		}
	}
	return TicketRef{}, "", ErrNotFound
}

func (m *memLookup) TicketByKey(_ context.Context, key string) (TicketRef, error) {
	if m.err != nil {
		return TicketRef{}, m.err
	}
	for _, t := range m.tickets {
		if t.Key == key {
			return t, nil
		}
	}
	return TicketRef{}, ErrNotFound
}

const deskDomain = "desk.example.com"

// fixture is a small desk: open SD-1042 (requester alice, watcher bob, agent ana), closed SD-7
// (requester carol) and open CHG-2001 (requester dave), with a few stored Message-IDs.
type fixture struct {
	signer *token.Signer
	lk     *memLookup
	opts   Options
}

const (
	aliceOrigID = "caksfabw4hj0gek6erng4p1y0czzj0d=pxtcnnynbe7plg@mail.gmail.com" // alice's first mail on SD-1042
	agentMailID = "agent-direct-1@desk.example.com"                               // ana replied from her own client
	closedOrig  = "closed-thread@example.org"                                     // a mail on closed SD-7
	chgOrigID   = "chg-orig@corp.example"                                         // the mail that opened CHG-2001
)

func newFixture(t testing.TB) fixture {
	t.Helper()
	s, err := token.New([]byte("0123456789abcdef-thread-test"), deskDomain)
	if err != nil {
		t.Fatalf("token.New: %v", err)
	}
	lk := &memLookup{
		tickets: map[int64]TicketRef{
			1042: {ID: 1042, Key: "SD-1042", Requester: "alice@example.com",
				Participants: []string{"bob@example.com", "ana@desk.example.com"}},
			7:    {ID: 7, Key: "SD-7", Closed: true, Requester: "carol@example.net"},
			2001: {ID: 2001, Key: "CHG-2001", Requester: "dave@corp.example"},
		},
		msgIDs: map[string]int64{
			aliceOrigID:             1042,
			agentMailID:             1042,
			s.MessageID(1042, "55"): 1042, // our acknowledgement, as stored in the outbox
			closedOrig:              7,
			chgOrigID:               2001,
		},
	}
	opts := Options{
		Signer:      s,
		KeyPrefixes: []string{"SD", "CHG"},
		IsAgent:     func(addr string) bool { return strings.HasSuffix(addr, "@"+deskDomain) },
	}
	return fixture{signer: s, lk: lk, opts: opts}
}
