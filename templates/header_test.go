package templates

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeHeader(t *testing.T) {
	long := strings.Repeat("ab ", 100)
	tests := []struct{ in, want string }{
		{"Hi\r\nBcc: evil@x", "Hi Bcc: evil@x"},
		{"Hi\nBcc: evil@x\r\n\r\n<body>", "Hi Bcc: evil@x <body>"},
		{"  tabs\tand\vspaces  ", "tabs and spaces"},
		{"nul\x00bell\x07del\x7f", "nulbelldel"},
		{"c1\u0085next\u2028line\u2029para", "c1 next line para"},
		{"bidi \u202Eevil\u202C \u2066iso\u2069 \ufeffbom", "bidi evil iso bom"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{"Grüße aus Köln", "Grüße aus Köln"},
		{"\r\n\r\n", ""},
		{long, strings.TrimSpace(long[:3*66+1]) + "…"},
	}
	for _, tt := range tests {
		got := SanitizeHeader(tt.in)
		if got != tt.want {
			t.Errorf("SanitizeHeader(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSanitizeHeaderCap(t *testing.T) {
	got := SanitizeHeader(strings.Repeat("ä", 5000))
	if n := utf8.RuneCountInString(got); n != MaxHeaderRunes {
		t.Fatalf("length %d runes, want %d", n, MaxHeaderRunes)
	}
	if !strings.HasSuffix(got, "…") {
		t.Errorf("cut value does not end in an ellipsis: %q", got[len(got)-8:])
	}
	exact := strings.Repeat("x", MaxHeaderRunes)
	if got := SanitizeHeader(exact); got != exact {
		t.Errorf("value of exactly MaxHeaderRunes runes was changed")
	}
}

func FuzzSanitizeHeader(f *testing.F) {
	for _, s := range []string{"Hi\r\nBcc: evil@x", "Subject: =?utf-8?q?x?=", "\u202e\x00\xff", strings.Repeat("é ", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeHeader(s)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if utf8.RuneCountInString(got) > MaxHeaderRunes {
			t.Fatalf("too long: %d runes", utf8.RuneCountInString(got))
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("control byte %#x in %q", c, got)
			}
		}
		if got != strings.TrimSpace(got) || strings.Contains(got, "  ") {
			t.Fatalf("untidy spaces in %q", got)
		}
		if SanitizeHeader(got) != got {
			t.Fatalf("not idempotent: %q", got)
		}
	})
}
