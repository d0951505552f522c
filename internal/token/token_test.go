package token

import (
	"errors"
	"math"
	"strings"
	"testing"
)

var testSecret = []byte("0123456789abcdef-test-secret")

func mustSigner(t testing.TB, secret []byte, domain string) *Signer {
	t.Helper()
	s, err := New(secret, domain)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// rejectCase is one input that a parse function must refuse with a given sentinel.
type rejectCase struct {
	name, in string
	want     error
}

func checkRejects(t *testing.T, fnName string, fn func(string) (int64, error), cases []rejectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := fn(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s(%q) = %d, %v; want %v", fnName, tc.in, id, err, tc.want)
			}
		})
	}
}

func TestNewRejectsShortSecretAndBadDomain(t *testing.T) {
	if _, err := New([]byte("short"), "desk.example.com"); err == nil {
		t.Error("New accepted a 5-byte secret")
	}
	for _, d := range []string{"", "a@b", "desk example.com", "<x>", ".x.com", "x..com"} {
		if _, err := New(testSecret, d); err == nil {
			t.Errorf("New accepted domain %q", d)
		}
	}
	s := mustSigner(t, testSecret, " Desk.Example.COM ")
	if s.Domain() != "desk.example.com" {
		t.Errorf("Domain() = %q, want lower-cased and trimmed", s.Domain())
	}
}

func TestTokenRoundTrip(t *testing.T) {
	s := mustSigner(t, testSecret, "desk.example.com")
	for _, id := range []int64{1, 35, 36, 1042, 1 << 40, math.MaxInt64} {
		tok := s.Token(id)
		if tok != strings.ToLower(tok) || strings.ContainsAny(tok, ".+@<> ") {
			t.Errorf("Token(%d) = %q: not lowercase/address-safe", id, tok)
		}
		got, err := s.Verify(tok)
		if err != nil || got != id {
			t.Errorf("Verify(Token(%d)) = %d, %v", id, got, err)
		}
		got, err = s.Verify(strings.ToUpper(tok))
		if err != nil || got != id {
			t.Errorf("Verify(upper(Token(%d))) = %d, %v", id, got, err)
		}
	}
	// At least 80 bits of MAC: 16 base-32 characters.
	_, mac, _ := strings.Cut(s.Token(7), "-")
	if len(mac)*5 < 80 {
		t.Errorf("MAC part %q carries %d bits, want >= 80", mac, len(mac)*5)
	}
}

func TestVerifyRejects(t *testing.T) {
	s := mustSigner(t, testSecret, "desk.example.com")
	other := mustSigner(t, []byte("another-secret-of-16+bytes"), "desk.example.com")
	tok := s.Token(1042)
	idPart, mac, _ := strings.Cut(tok, "-")
	flip := func(c byte) byte {
		if c == 'a' {
			return 'b'
		}
		return 'a'
	}
	tamperedMAC := idPart + "-" + mac[:5] + string(flip(mac[5])) + mac[6:]
	otherID := s.Token(1043)
	_, otherMAC, _ := strings.Cut(otherID, "-")

	checkRejects(t, "Verify", s.Verify, []rejectCase{
		{"tampered mac", tamperedMAC, ErrInvalidToken},
		{"id swapped, mac kept", "t1-" + mac, ErrInvalidToken},
		{"mac of another id", idPart + "-" + otherMAC, ErrInvalidToken},
		{"wrong secret", other.Token(1042), ErrInvalidToken},
		{"leading zero id", "0" + tok, ErrInvalidToken},
		{"zero id", s.Token(0), ErrInvalidToken},
		{"negative id", s.Token(-5), ErrInvalidToken},
		{"truncated mac", tok[:len(tok)-1], ErrNoToken},
		{"no separator", idPart + mac, ErrNoToken},
		{"empty", "", ErrNoToken},
		{"junk", "hello-world", ErrNoToken},
		{"base32 digit out of alphabet", idPart + "-" + mac[:15] + "1", ErrNoToken},
	})
}

func TestMessageIDRoundTrip(t *testing.T) {
	s := mustSigner(t, testSecret, "Desk.Example.com")
	id := s.MessageID(1042, "Outbox-77")
	want := "t." + s.Token(1042) + ".outbox-77@desk.example.com"
	if id != want {
		t.Fatalf("MessageID = %q, want %q", id, want)
	}
	if s.MessageID(1042, "Outbox-77") != id {
		t.Error("MessageID is not stable for the same unique (retries must reuse it)")
	}
	if s.MessageID(1042, "outbox-78") == id {
		t.Error("MessageID does not differ for another unique")
	}
	for _, v := range []string{id, "<" + id + ">", strings.ToUpper("<" + id + ">"), "  <" + id + ">\r\n"} {
		got, err := s.TicketFromMessageID(v)
		if err != nil || got != 1042 {
			t.Errorf("TicketFromMessageID(%q) = %d, %v; want 1042", v, got, err)
		}
	}
}

func TestMessageIDSanitizesUnique(t *testing.T) {
	s := mustSigner(t, testSecret, "desk.example.com")
	tests := []struct{ unique, wantLeftSuffix string }{
		{"", ""},
		{"42", ".42"},
		{"..a..b..", ".a.b"},
		{"a b<c>@d", ".a-b-c--d"},
		{"Ünï", ".-n-"},
	}
	for _, tc := range tests {
		id := s.MessageID(9, tc.unique)
		want := "t." + s.Token(9) + tc.wantLeftSuffix + "@desk.example.com"
		if id != want {
			t.Errorf("MessageID(9, %q) = %q, want %q", tc.unique, id, want)
		}
		if got, err := s.TicketFromMessageID(id); err != nil || got != 9 {
			t.Errorf("TicketFromMessageID(%q) = %d, %v", id, got, err)
		}
	}
}

func TestTicketFromMessageIDRejects(t *testing.T) {
	s := mustSigner(t, testSecret, "desk.example.com")
	other := mustSigner(t, []byte("another-secret-of-16+bytes"), "desk.example.com")
	good := s.MessageID(5, "1")
	checkRejects(t, "TicketFromMessageID", s.TicketFromMessageID, []rejectCase{
		{"wrong domain", strings.Replace(good, "desk.example.com", "evil.example.com", 1), ErrNoToken},
		{"subdomain of ours is not ours", strings.Replace(good, "@desk.", "@x.desk.", 1), ErrNoToken},
		{"foreign message-id", "<CAKsfaBW4hj0Gek6@mail.gmail.com>", ErrNoToken},
		{"our domain, other form", "<abc@desk.example.com>", ErrNoToken},
		{"no at sign", "t." + s.Token(5), ErrNoToken},
		{"wrong secret", other.MessageID(5, "1"), ErrInvalidToken},
		{"tampered id", strings.Replace(good, "t.5-", "t.6-", 1), ErrInvalidToken},
	})
}

func TestReplyAddress(t *testing.T) {
	s := mustSigner(t, testSecret, "desk.example.com")
	tok := s.Token(1042)
	tests := []struct{ base, want string }{
		{"support@example.com", "support+t-" + tok + "@example.com"},
		{"support+it@example.com", "support+it+t-" + tok + "@example.com"},
		{"no-at-sign", "no-at-sign"},
	}
	for _, tc := range tests {
		if got := s.ReplyAddress(tc.base, 1042); got != tc.want {
			t.Errorf("ReplyAddress(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
	addr := s.ReplyAddress("support@example.com", 1042)
	for _, v := range []string{
		addr,
		strings.ToUpper(addr), // an MTA that case-folds the whole address
		"Service Desk <" + addr + ">",
		" " + addr + " ",
		s.ReplyAddress("support+it@example.com", 1042),
		s.ReplyAddress("support@other.example.org", 1042), // the address domain is not checked
	} {
		got, err := s.TicketFromAddress(v)
		if err != nil || got != 1042 {
			t.Errorf("TicketFromAddress(%q) = %d, %v; want 1042", v, got, err)
		}
	}
}

func TestTicketFromAddressRejects(t *testing.T) {
	s := mustSigner(t, testSecret, "desk.example.com")
	other := mustSigner(t, []byte("another-secret-of-16+bytes"), "desk.example.com")
	checkRejects(t, "TicketFromAddress", s.TicketFromAddress, []rejectCase{
		{"plain address", "support@example.com", ErrNoToken},
		{"other sub-address", "support+it@example.com", ErrNoToken},
		{"no at sign", "support+t-" + s.Token(1), ErrNoToken},
		{"wrong secret", other.ReplyAddress("support@example.com", 1042), ErrInvalidToken},
		{"tampered", strings.Replace(s.ReplyAddress("support@example.com", 1042), "+t-sy-", "+t-sz-", 1), ErrInvalidToken},
	})
}

// FuzzVerify checks that no input panics, that anything accepted round-trips to the same token
// (so one ticket has exactly one token, up to letter case), and that parsing Message-IDs and
// addresses agrees with Verify.
func FuzzVerify(f *testing.F) {
	s := mustSigner(f, testSecret, "desk.example.com")
	for _, seed := range []string{s.Token(1), s.Token(1042), s.Token(math.MaxInt64), "0-aaaaaaaaaaaaaaaa",
		"zzzzzzzzzzzzzz-aaaaaaaaaaaaaaaa", "", "-", "t.", s.MessageID(3, "x"), s.ReplyAddress("a@b", 4)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, err := s.Verify(in)
		if err == nil {
			if id <= 0 {
				t.Fatalf("Verify(%q) accepted non-positive id %d", in, id)
			}
			if s.Token(id) != strings.ToLower(in) {
				t.Fatalf("Verify(%q) = %d but Token(%d) = %q", in, id, id, s.Token(id))
			}
		} else if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) {
			t.Fatalf("Verify(%q) returned unexpected error %v", in, err)
		}
		if mid, err := s.TicketFromMessageID(in); err == nil {
			if got, _ := s.TicketFromMessageID(s.MessageID(mid, "u")); got != mid {
				t.Fatalf("TicketFromMessageID(%q) = %d does not round-trip", in, mid)
			}
		}
		if aid, err := s.TicketFromAddress(in); err == nil && aid <= 0 {
			t.Fatalf("TicketFromAddress(%q) accepted non-positive id %d", in, aid)
		}
		// Any unique yields a Message-ID that parses back to its ticket.
		if got, err := s.TicketFromMessageID(s.MessageID(77, in)); err != nil || got != 77 {
			t.Fatalf("MessageID(77, %q) does not round-trip: %d, %v", in, got, err)
		}
	})
}
