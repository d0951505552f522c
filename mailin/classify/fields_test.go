package classify

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestParseFieldGroups(t *testing.T) {
	in := "Reporting-MTA: dns; mx.example.org\r\nX-Junk line without colon\r\n\r\n" +
		"Final-Recipient: rfc822; a@example.org\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  user\r\n\tunknown\r\n"
	want := [][]field{
		{{"reporting-mta", "dns; mx.example.org"}},
		{{"final-recipient", "rfc822; a@example.org"}, {"diagnostic-code", "smtp; 550 5.1.1 user unknown"}},
	}
	if got := parseFieldGroups(in, -1); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := parseFieldGroups(in, 1); len(got) != 1 {
		t.Errorf("maxGroups 1: %d groups", len(got))
	}
	if got := parseFieldGroups("\r\r Final-Recipient: x\rAction: failed\r", -1); len(got) != 1 || got[0][0].name != "action" {
		t.Errorf("CR-only input with a leading continuation line: %q", got)
	}
}

// TestParseFieldGroupsLinear guards against quadratic unfolding: a value folded over 20,000
// lines must not copy the growing value once per line (that allocated gigabytes).
func TestParseFieldGroupsLinear(t *testing.T) {
	in := "Diagnostic-Code: smtp; 550" + strings.Repeat("\n x", 20000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g := parseFieldGroups(in, -1)
	runtime.ReadMemStats(&after)
	if len(g) != 1 || len(g[0][0].value) > maxFieldLen+64 {
		t.Fatalf("unexpected result: %d groups", len(g))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("unfolding allocated %d bytes for a %d-byte input", alloc, len(in))
	}
}

func TestHeaderFieldAndMsgID(t *testing.T) {
	block := "\n\nFrom: a@example.org\nMessage-ID:\n  <abc@example.org> (comment)\n\nMessage-ID: <body@example.org>\n"
	if got := msgID(headerField(block, "message-id")); got != "abc@example.org" {
		t.Errorf("msg-id %q", got)
	}
	if got := headerField(block, "subject"); got != "" {
		t.Errorf("absent field: %q", got)
	}
	for in, want := range map[string]string{"<a@b>": "a@b", " a@b ": "a@b", "<a@b> <c@d>": "a@b", "": "", "<": ""} {
		if got := msgID(in); got != want {
			t.Errorf("msgID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanAddress(t *testing.T) {
	for in, want := range map[string]string{
		"rfc822; User@Example.org":      "user@example.org",
		"RFC822; <user@example.org>":    "user@example.org",
		"rfc822;user@example.org (Ann)": "user@example.org",
		"utf-8; josé@example.org":       "josé@example.org",
		"x-local; root":                 "root",
		"":                              "",
	} {
		if got := cleanAddress(in); got != want {
			t.Errorf("cleanAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindAddresses(t *testing.T) {
	tests := map[string][]string{
		"<User@Example.org>宛のメールは配信できませんでした":                          {"user@example.org"},
		"josé@exämple.org and josé@exämple.org again":                 {"josé@exämple.org"},
		"host mx.example.org[192.0.2.1] said: 550 <a@b.example>... x": {"a@b.example"},
		"no address, just example.org and @handle":                    nil,
		"end of sentence a@example.org.":                              {"a@example.org"},
	}
	for in, want := range tests {
		if got := findAddresses(in); !reflect.DeepEqual(got, want) {
			t.Errorf("findAddresses(%q) = %q, want %q", in, got, want)
		}
	}
}
