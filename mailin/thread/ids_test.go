package thread

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCanonicalID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<ABC@Example.COM>", "abc@example.com"},
		{"abc@example.com", "abc@example.com"},
		{"  <abc@\r\n example.com>\r\n", "abc@example.com"},
		{"<<abc@example.com>>", "abc@example.com"},
		{"<a\x00b@x>", "ab@x"},
		{"<ÄBC@x>", "äbc@x"},
		{"<a\xffb@x>", "a\uFFFDb@x"},
		{"", ""},
		{"<>", ""},
	}
	for _, tc := range tests {
		if got := CanonicalID(tc.in); got != tc.want {
			t.Errorf("CanonicalID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Our own Message-IDs are stored as token.Signer.MessageID makes them: already canonical.
	s := newFixture(t).signer
	for _, unique := range []string{"", "42", "Outbox 7"} {
		if id := s.MessageID(1042, unique); CanonicalID("<"+id+">") != id {
			t.Errorf("CanonicalID(<%s>) = %q: MessageID is not canonical", id, CanonicalID("<"+id+">"))
		}
	}
}

func TestParseIDList(t *testing.T) {
	long := strings.Repeat("x", MaxIDLength) + "@y"
	tests := []struct {
		name, in string
		want     []string
	}{
		{"RFC 5322 A.2 References", "<1234@local.machine.example> <3456@example.net>",
			[]string{"1234@local.machine.example", "3456@example.net"}},
		{"folded", "<1234@local.machine.example>\r\n <3456@example.net>\r\n\t<abcd@example.net>",
			[]string{"1234@local.machine.example", "3456@example.net", "abcd@example.net"}},
		{"folding inside an ID", "<CAKsfaBW4hj0@\r\n mail.gmail.com>", []string{"caksfabw4hj0@mail.gmail.com"}},
		{"commas", "<a@x>,<b@x> , <c@x>", []string{"a@x", "b@x", "c@x"}},
		{"no brackets", "a@x b@x, c@x.", []string{"a@x", "b@x", "c@x"}},
		{"comments", "<a@x> (first (nested) one) <b@x>(second)", []string{"a@x", "b@x"}},
		{"comment hiding an id", "(<evil@x>) <a@x>", []string{"a@x"}},
		{"RFC 5322 §4.5.4 obsolete phrase", `Your message of "Mon, 2 Apr 2012 <x@y>" <a@x>`, []string{"a@x"}},
		{"junk before the bracket", "<junk <a@x>", []string{"a@x"}},
		{"no @ in brackets", "<1333374262.7063.15.camel>", []string{"1333374262.7063.15.camel"}},
		{"bare words without @ are not IDs", "hello world", nil},
		{"unterminated bracket", "<a@x> <b@x", []string{"a@x", "b@x"}},
		{"unterminated comment", "<a@x> (oops <b@x>", []string{"a@x"}},
		{"duplicates and case", "<A@x> <a@X> <b@x> <a@x>", []string{"a@x", "b@x"}},
		{"empty brackets", "<> < > <a@x>", []string{"a@x"}},
		{"too long", "<" + long + "> <a@x>", []string{"a@x"}},
		{"empty", "", nil},
		{"lone @", "@ a@ @b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseIDList(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseIDList(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// checkCanonical fails unless id is a non-empty fixed point of CanonicalID fit for a text column.
func checkCanonical(t *testing.T, id string) {
	t.Helper()
	if id == "" || len(id) > MaxIDLength {
		t.Fatalf("ID %q: empty or too long", id)
	}
	if CanonicalID(id) != id {
		t.Fatalf("ID %q is not canonical: %q", id, CanonicalID(id))
	}
	if !utf8.ValidString(id) || strings.ContainsAny(id, "<>") {
		t.Fatalf("ID %q: invalid UTF-8 or angle brackets", id)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			t.Fatalf("ID %q contains %U", id, r)
		}
	}
}

func FuzzParseIDList(f *testing.F) {
	for _, seed := range []string{
		"<1234@local.machine.example> <3456@example.net>",
		"<a@x>,b@x (c) \"<d@x>\" <e@x",
		"(((", "\"", "<", "<>", "a@b.", "<a\r\n @b>",
	} {
		f.Add(seed)
	}
	for _, h := range corpusHeaders(f) {
		for _, name := range []string{"References", "In-Reply-To", "Message-Id"} {
			if v := h[name]; v != "" {
				f.Add(v)
			}
		}
	}
	f.Fuzz(func(t *testing.T, header string) {
		ids := ParseIDList(header)
		seen := make(map[string]bool)
		for _, id := range ids {
			checkCanonical(t, id)
			if seen[id] {
				t.Fatalf("ParseIDList(%q) repeats %q", header, id)
			}
			seen[id] = true
		}
		// Re-serialising the IDs in brackets parses back to the same list, unless an ID itself holds
		// characters that end a bracketed ID.
		var b strings.Builder
		clean := true
		for _, id := range ids {
			clean = clean && !strings.ContainsAny(id, "()\"")
			b.WriteString("<" + id + "> ")
		}
		if again := ParseIDList(b.String()); clean && !reflect.DeepEqual(again, ids) {
			t.Fatalf("ParseIDList(%q) = %q, but re-parsing gives %q", header, ids, again)
		}
		if c := CanonicalID(header); CanonicalID(c) != c {
			t.Fatalf("CanonicalID not idempotent on %q", header)
		}
	})
}

// TestParseIDListCorpus reads the msg-id fields of real replies: every bracketed ID must come back.
func TestParseIDListCorpus(t *testing.T) {
	headers := corpusHeaders(t)
	if headers == nil {
		t.Skip("corpus absent")
	}
	checked := 0
	for _, h := range headers {
		for _, name := range []string{"References", "In-Reply-To", "Message-Id"} {
			v := h[name]
			if v == "" {
				continue
			}
			ids := ParseIDList(v)
			if len(ids) != strings.Count(v, "<") {
				t.Errorf("%s: %q gave %q", name, v, ids)
			}
			for _, id := range ids {
				if !strings.Contains(strings.ToLower(v), id) {
					t.Errorf("%s: %q gave %q, not in the header", name, v, id)
				}
			}
			checked++
		}
	}
	if checked < 10 {
		t.Errorf("only %d msg-id fields in the corpus, want at least 10", checked)
	}
	t.Logf("checked %d msg-id fields", checked)
}

// An ID longer than MaxIDLength is no msg-id: CleanID and CanonicalID give "", one of MaxIDLength
// bytes is kept.
func TestCleanIDDropsOverlongIDs(t *testing.T) {
	fits := strings.Repeat("a", MaxIDLength-2) + "@y"
	if got := CleanID("<" + fits + ">"); got != fits {
		t.Errorf("CleanID of a %d-byte ID: %d bytes, want it kept", len(fits), len(got))
	}
	if got := CleanID("<" + fits + "z>"); got != "" {
		t.Errorf("CleanID of a %d-byte ID: %d bytes, want \"\"", len(fits)+1, len(got))
	}
	if got := CanonicalID(strings.Repeat("B", 5000)); got != "" {
		t.Errorf("CanonicalID of 5000 bytes: %d bytes, want \"\"", len(got))
	}
}
