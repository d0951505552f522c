package subject

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var testPrefixes = []string{"SD", "CHG"}

func TestFormatAndParseKey(t *testing.T) {
	if got := FormatKey("SD", 1042); got != "SD-1042" {
		t.Fatalf("FormatKey = %q", got)
	}
	tests := []struct {
		in     string
		prefix string
		number int64
		ok     bool
	}{
		{"SD-1042", "SD", 1042, true},
		{" [SD-1042] ", "SD", 1042, true},
		{"sd-7", "sd", 7, true},
		{"IT-SD-12", "IT-SD", 12, true},
		{"SD-007", "SD", 7, true},
		{"SD-0", "", 0, false},
		{"SD-", "", 0, false},
		{"-12", "", 0, false},
		{"1SD-12", "", 0, false},
		{"SD-12a", "", 0, false},
		{"SD 12", "", 0, false},
		{"SD-1234567890123456789", "", 0, false}, // 19 digits
		{"SÜ-12", "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		p, n, ok := ParseKey(tc.in)
		if p != tc.prefix || n != tc.number || ok != tc.ok {
			t.Errorf("ParseKey(%q) = %q, %d, %v; want %q, %d, %v", tc.in, p, n, ok, tc.prefix, tc.number, tc.ok)
		}
	}
}

func TestStripReplyPrefixes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Re: VPN down", "VPN down"},
		{"RE: RE: re: VPN down", "VPN down"},
		{"Re:Re:VPN down", "VPN down"},
		{"Re[2]: VPN down", "VPN down"},
		{"Re(3): Re^2: VPN down", "VPN down"},
		{"Fwd: Fw: FW: VPN down", "VPN down"},
		{"AW: WG: Antw: Antwort: Drucker", "Drucker"},
		{"SV: VS: VB: VL: Skrivare", "Skrivare"},
		{"TR: RE : Réf: Ré : Imprimante", "Imprimante"},
		{"RV: Enc: RES: Impresora", "Impresora"},
		{"R: I: Rif: Stampante", "Stampante"},
		{"Odp: PD: Drukarka", "Drukarka"},
		{"YNT: Ynt: İLT: Yazıcı", "Yazıcı"},
		{"ΑΠ: ΣΧΕΤ: Εκτυπωτής", "Εκτυπωτής"},
		{"Отв: Ответ: Пересл: Принтер", "Принтер"},
		{"回复：打印机", "打印机"},
		{"回覆: 答复: 转发: 打印机", "打印机"},
		{"[External] RE: VPN down", "VPN down"},
		{"[EXT] [it-list] Re: Fwd: VPN down", "VPN down"},
		{"Re: [External] Re: VPN down", "VPN down"},
		{"[External] VPN down", "[External] VPN down"},       // a tag alone stays
		{"Re: [SD-1042] VPN down", "[SD-1042] VPN down"},     // keys stay
		{"[SD-1042] Re: VPN down", "[SD-1042] Re: VPN down"}, // a key tag is never stripped
		{"VPN down (fwd)", "VPN down"},
		{"[Fwd: VPN down]", "VPN down"},
		{"  Re:\r\n\tVPN \t down  ", "VPN down"},
		{"Re: line\r\nBcc: evil@example.com", "line Bcc: evil@example.com"},
		{"Reply: VPN down", "Reply: VPN down"},   // not a prefix word
		{"Regarding VPN", "Regarding VPN"},       // no colon
		{"Re VPN down", "Re VPN down"},           // no colon
		{"Status: all down", "Status: all down"}, // unknown word
		{"Re:", ""},
		{"", ""},
		{"bad \xff byte", "bad \uFFFD byte"},
	}
	for _, tc := range tests {
		if got := StripReplyPrefixes(tc.in); got != tc.want {
			t.Errorf("StripReplyPrefixes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFindKey(t *testing.T) {
	tests := []struct {
		subject string
		key     string
		ok      bool
	}{
		{"[SD-1042] VPN down", "SD-1042", true},
		{"Re: VPN down [SD-1042]", "SD-1042", true},
		{"RE: [sd-1042] VPN down", "SD-1042", true},
		{"Re: [ SD-1042 ] VPN down", "SD-1042", true},
		{"Re: SD-1042 VPN down", "SD-1042", true},
		{"AW: SD-1042: VPN down", "SD-1042", true},
		{"AW: [External] SD-1042: VPN down", "SD-1042", true},
		{"SD-1042", "SD-1042", true},
		{"回复：[CHG-9] 变更", "CHG-9", true},
		{"Re: [XY-1042] VPN down", "", false},  // unknown prefix
		{"Re: see SD-1042 please", "", false},  // bare key not at the start
		{"Re: SD-10423 VPN", "SD-10423", true}, // a longer number is another key
		{"Re: SD-1042abc", "", false},          // not ending at a word boundary
		{"Re: [SD-1042x] VPN", "", false},
		{"[SD-0] zero", "", false},
		{"Re: SD-", "", false},
		{"[SD-1] first [SD-2] second", "SD-1", true},
		{"[CHG-5] Re: [SD-6]", "CHG-5", true},
		{"", "", false},
	}
	for _, tc := range tests {
		key, ok := FindKey(tc.subject, testPrefixes)
		if key != tc.key || ok != tc.ok {
			t.Errorf("FindKey(%q) = %q, %v; want %q, %v", tc.subject, key, ok, tc.key, tc.ok)
		}
	}
	if _, ok := FindKey("[SD-1] x", nil); ok {
		t.Error("FindKey with no prefixes found a key")
	}
	if _, ok := FindKey("[-1] x", []string{""}); ok {
		t.Error("FindKey with an empty prefix found a key")
	}
}

func TestOutbound(t *testing.T) {
	tests := []struct{ subject, want string }{
		{"VPN down", "[SD-1042] VPN down"},
		{"Re: VPN down", "[SD-1042] VPN down"},
		{"Re: [SD-1042] VPN down", "[SD-1042] VPN down"},
		{"RE: AW: [sd-1042] VPN down", "[SD-1042] VPN down"},
		{"[SD-1042] Re: VPN down", "[SD-1042] VPN down"},
		{"Re: SD-1042: VPN down", "[SD-1042] VPN down"},
		{"VPN [SD-1042] down [SD-1042]", "[SD-1042] VPN down"},
		{"Re: [SD-7] VPN down", "[SD-1042] [SD-7] VPN down"}, // another ticket's key is kept
		{"Re: SD-10423 VPN down", "[SD-1042] SD-10423 VPN down"},
		{"", "[SD-1042]"},
		{"Re:", "[SD-1042]"},
		{"Re: line\r\nBcc: evil@example.com", "[SD-1042] line Bcc: evil@example.com"},
		{"Ответ: Принтер", "[SD-1042] Принтер"},
	}
	for _, tc := range tests {
		got := Outbound("SD-1042", tc.subject)
		if got != tc.want {
			t.Errorf("Outbound(%q) = %q, want %q", tc.subject, got, tc.want)
		}
		if again := Outbound("SD-1042", "Re: "+got); again != got {
			t.Errorf("Outbound of a reply to %q = %q: grew", got, again)
		}
	}
}

// checkClean fails when s could not go into a header field or a text column as is.
func checkClean(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s = %q: invalid UTF-8", what, s)
	}
	if strings.TrimSpace(s) != s || strings.Contains(s, "  ") {
		t.Fatalf("%s = %q: whitespace not collapsed", what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("%s = %q: control character %U", what, s, r)
		}
	}
}

func FuzzSubject(f *testing.F) {
	for _, seed := range []string{"Re: [SD-1042] VPN down", "AW: SD-1042: x", "[External] RE: Fwd: y", "Re[2]: z (fwd)",
		"[Fwd: [SD-1] a]", "回复：打印机", "İLT: x", "[SD-1042]", "Re: SD-1042", "\xff\r\n", "[[SD-1]]", "[ SD-1 ]x",
		strings.Repeat("[SD-7] ", 12) + "many keys"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base := StripReplyPrefixes(s)
		checkClean(t, "StripReplyPrefixes", base)
		if again := StripReplyPrefixes(base); again != base {
			t.Fatalf("StripReplyPrefixes not idempotent: %q -> %q -> %q", s, base, again)
		}
		out := Outbound("SD-1042", s)
		checkClean(t, "Outbound", out)
		if again := Outbound("SD-1042", out); again != out {
			t.Fatalf("Outbound not idempotent: %q -> %q -> %q", s, out, again)
		}
		if key, ok := FindKey(out, testPrefixes); !ok || key != "SD-1042" {
			t.Fatalf("FindKey(Outbound(%q)) = %q, %v", s, key, ok)
		}
		c := Clean(s, testPrefixes)
		checkClean(t, "Clean", c)
		if key, ok := FindKey(c, testPrefixes); ok && strings.Contains(strings.ToUpper(c), "["+key+"]") {
			t.Fatalf("Clean(%q) = %q still carries [%s]", s, c, key)
		}
		if key, ok := FindKey(s, testPrefixes); ok {
			p, n, pok := ParseKey(key)
			if !pok || FormatKey(p, n) != key || (p != "SD" && p != "CHG") {
				t.Fatalf("FindKey(%q) = %q: not a well-formed key of a known prefix", s, key)
			}
		}
	})
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"Re: [SD-1000] Received: VPN is down":  "Received: VPN is down",
		"AW: AW: [sd-12] [CHG-3] Drucker":      "Drucker",
		"Fwd: SD-1000 is what they call it":    "SD-1000 is what they call it",
		"  Printer   on fire ":                 "Printer on fire",
		"Re: [SD-5]":                           "",
		"[External] Re: [SD-9] Laptop request": "Laptop request",
	} {
		if got := Clean(in, []string{"SD", "CHG"}); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}
