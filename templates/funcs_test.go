package templates

import (
	"testing"
	"time"
)

func TestQuote(t *testing.T) {
	got := quote("first\r\n\r\n> already quoted\nlast\n\n")
	want := "> first\n>\n>> already quoted\n> last"
	if got != want {
		t.Errorf("quote = %q, want %q", got, want)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		n        int
		in, want string
	}{
		{5, "Grüße", "Grüße"},
		{4, "Grüße", "Grü…"},
		{4, "ab  cdef", "ab…"}, // no space before the ellipsis
		{0, "x", ""},
	}
	for _, tt := range tests {
		if got := truncate(tt.n, tt.in); got != tt.want {
			t.Errorf("truncate(%d, %q) = %q, want %q", tt.n, tt.in, got, tt.want)
		}
	}
}

func TestNormalizeText(t *testing.T) {
	got := normalizeText("\n\n  \nHello  \r\n\r\n\r\n\tworld\t\n-- \nsig  \n\n\n")
	want := "Hello\n\n\tworld\n-- \nsig\n"
	if got != want {
		t.Errorf("normalizeText = %q, want %q", got, want)
	}
	if got := normalizeText(" \n\n"); got != "" {
		t.Errorf("blank text normalised to %q", got)
	}
}

func TestRelativeAndSpan(t *testing.T) {
	now := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		lang string
		d    time.Duration
		want string
	}{
		{"en", 2*time.Hour + 5*time.Minute, "in 2 h 5 min"},
		{"en", -15 * time.Minute, "15 min ago"},
		{"en", 30 * time.Second, "now"},
		{"en", 50 * time.Hour, "in 2 d 2 h"},
		{"de", -3 * 24 * time.Hour, "vor 3 Tg."},
		{"de", time.Hour, "in 1 Std."},
		{"de-AT", 90 * time.Second, "in 1 Min."},
	}
	for _, tt := range tests {
		if got := localeFor(tt.lang).relative(now, now.Add(tt.d)); got != tt.want {
			t.Errorf("%s relative(%v) = %q, want %q", tt.lang, tt.d, got, tt.want)
		}
	}
}

func TestDateFormats(t *testing.T) {
	at := time.Date(2026, 11, 24, 8, 7, 0, 0, time.UTC)
	for lang, want := range map[string]string{
		"en": "Tue, 24 Nov 2026 08:07 UTC",
		"de": "Di., 24.11.2026, 08:07 UTC",
		"fr": "Tue, 24 Nov 2026 08:07 UTC",
	} {
		f := textFuncs(localeFor(lang))["datetime"].(func(any) string)
		if got := f(at); got != want {
			t.Errorf("%s datetime = %q, want %q", lang, got, want)
		}
		if got := f((*time.Time)(nil)); got != "" {
			t.Errorf("%s datetime(nil) = %q, want empty", lang, got)
		}
	}
}

func TestParasEscapes(t *testing.T) {
	got := string(paras("a <b>\nc & d\n\n\n<script>x</script>"))
	want := "<p style=\"margin:0 0 1em 0\">a &lt;b&gt;<br>\nc &amp; d</p>\n" +
		"<p style=\"margin:0 0 1em 0\">&lt;script&gt;x&lt;/script&gt;</p>\n"
	if got != want {
		t.Errorf("paras = %q, want %q", got, want)
	}
}

func TestReplyMarkers(t *testing.T) {
	ms := ReplyMarkers()
	if len(ms) != 2 || ms[0] != ReplyMarker("en") || ms[1] != ReplyMarker("de-CH") || ReplyMarker("xx") != ms[0] {
		t.Errorf("ReplyMarkers() = %q", ms)
	}
}
