package thread

import (
	"context"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecide feeds hostile header values to Decide against the fixture desk and checks that every
// Decision is consistent, deterministic and never threads by subject key for an outsider.
func FuzzDecide(f *testing.F) {
	fx := newFixture(f)
	s := fx.signer
	add := func(from, to, cc, subj, msgID, irt, refs string) {
		f.Add(from, to, cc, subj, msgID, irt, refs, uint8(0))
	}
	add("alice@example.com", "support@example.com", "", "Re: [SD-1042] VPN down", "<n1@x>", "<"+aliceOrigID+">", "")
	add("mallory@evil.example", "support@example.com", "", "Re: [SD-1042] VPN down", "<n2@x>", "", "")
	add("carol@example.net", "", "", "AW: SD-7: again", "", "", "")
	add("x@y", s.ReplyAddress("support@example.com", 1042), "", "", "", "", "")
	add("x@y", "", strings.ToUpper(s.ReplyAddress("support@example.com", 7)), "", "", "", "")
	add("x@y", "", "", "", "", "<"+s.MessageID(1042, "1")+">", "<"+chgOrigID+"> <"+s.MessageID(99, "2")+">")
	add("x@y", "", "", "", "", "<"+strings.Replace(s.MessageID(1042, "1"), "-", "-x", 1)+">", "<"+closedOrig+">")
	add("", "", "", "", "<"+aliceOrigID+">", "", aliceOrigID)
	for _, h := range corpusHeaders(f) {
		add(h["From"], h["To"], h["Cc"], h["Subject"], h["Message-Id"], h["In-Reply-To"], h["References"])
	}

	f.Fuzz(func(t *testing.T, from, to, cc, subj, msgID, irt, refs string, flags uint8) {
		opts := fx.opts
		opts.AcceptRequesterDomain = flags&1 != 0
		if flags&2 != 0 {
			opts.Signer = nil
		}
		in := Input{From: from, To: strings.Split(to, ","), Cc: strings.Split(cc, ","), DeliveredTo: []string{to},
			Subject: subj, MessageID: msgID, InReplyTo: []string{irt}, References: []string{refs}}
		d, err := Decide(context.Background(), in, opts, fx.lk)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		again, _ := Decide(context.Background(), in, opts, fx.lk)
		if again != d {
			t.Fatalf("Decide not deterministic: %+v then %+v", d, again)
		}
		checkReason(t, d.Reason)

		switch d.Action {
		case Append:
			tk, ok := fx.lk.tickets[d.TicketID]
			if !ok || tk.Closed || tk.Key != d.TicketKey || d.LinkTo != 0 || d.Via == ViaNew {
				t.Fatalf("inconsistent Append: %+v", d)
			}
		case NewTicket:
			if d.TicketID != 0 || d.TicketKey != "" {
				t.Fatalf("NewTicket names a ticket: %+v", d)
			}
			if d.LinkTo != 0 {
				if tk, ok := fx.lk.tickets[d.LinkTo]; !ok || !tk.Closed || tk.Key != d.LinkKey || d.Via == ViaNew {
					t.Fatalf("inconsistent link: %+v", d)
				}
			} else if d.Via != ViaNew {
				t.Fatalf("unlinked NewTicket via %s: %+v", d.Via, d)
			}
		default:
			t.Fatalf("unknown action: %+v", d)
		}

		matched := d.TicketID + d.LinkTo
		switch d.Via {
		case ViaToken:
			if opts.Signer == nil || !strings.Contains(d.Reason, "signed token") {
				t.Fatalf("token decision without a signer or reason: %+v", d)
			}
		case ViaHeader:
			ids := append(ParseIDList(irt), ParseIDList(refs)...)
			ids = append(ids, CanonicalID(irt), CanonicalID(refs))
			if !slices.ContainsFunc(ids, func(id string) bool { return id != CanonicalID(msgID) && fx.lk.msgIDs[id] == matched }) {
				t.Fatalf("header decision without a referenced stored ID: %+v", d)
			}
		case ViaSubjectKey:
			tk := fx.lk.tickets[matched]
			a := address(from)
			ok := a != "" && (a == tk.Requester || slices.Contains(tk.Participants, a) || opts.IsAgent(a) ||
				opts.AcceptRequesterDomain && domain(a) == domain(tk.Requester))
			if !ok {
				t.Fatalf("subject key accepted from outsider %q: %+v", from, d)
			}
		}
	})
}

// checkReason fails unless r is fit to store and show: non-empty, bounded, printable UTF-8.
func checkReason(t *testing.T, r string) {
	t.Helper()
	if r == "" || len(r) > 4096 || !utf8.ValidString(r) {
		t.Fatalf("bad reason %q", r)
	}
	for _, c := range r {
		if unicode.IsControl(c) {
			t.Fatalf("reason %q contains %U", r, c)
		}
	}
}
