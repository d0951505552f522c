package templates

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeFiles creates files (slash paths relative to dir) with the given contents.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, text := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOverrideLookupOrder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ack.subject.tmpl":              "[{{.Ticket.Key}}] base\n",
		"de/ack.subject.tmpl":           "[{{.Ticket.Key}}] lang de",
		"support/ack.subject.tmpl":      "[{{.Ticket.Key}}] queue support",
		"support/de/ack.subject.tmpl":   "[{{.Ticket.Key}}] queue support, lang de",
		"support/de/reply.txt.tmpl":     "support de reply {{.Body}}",
		"hr/ack.txt.tmpl":               "hr text in {{.Lang}}",
		".git/ack.subject.tmpl":         "{{broken", // hidden: ignored
		"README.md":                     "not a template",
		"de/status_closed.subject.tmpl": "[{{.Ticket.Key}}] {{label \"status\" .NewStatus}} {{datetime .Now}}",
	})
	s, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v := SampleView()
	tests := []struct {
		name, queue, lang string
		wantSubject       string
	}{
		{Ack, "support", "de", "[SD-1042] queue support, lang de"}, // queue+lang beats all
		{Ack, "support", "de-AT", "[SD-1042] queue support, lang de"},
		{Ack, "support", "en", "[SD-1042] queue support"}, // queue beats lang and base
		{Ack, "support", "", "[SD-1042] queue support"},
		{Ack, "billing", "de", "[SD-1042] lang de"}, // lang beats base
		{Ack, "", "de", "[SD-1042] lang de"},
		{Ack, "billing", "en", "[SD-1042] base"}, // base beats embedded
		{Ack, "", "", "[SD-1042] base"},
		{Reply, "support", "de", "[SD-1042] VPN drops every ten minutes"}, // not overridden: embedded
		{StatusClosed, "", "de", "[SD-1042] Wartend Di., 03.03.2026, 10:15 UTC"},
	}
	for _, tt := range tests {
		r, err := s.Render(tt.name, tt.queue, tt.lang, v)
		if err != nil {
			t.Fatalf("Render(%s, %q, %q): %v", tt.name, tt.queue, tt.lang, err)
		}
		if r.Subject != tt.wantSubject {
			t.Errorf("Render(%s, %q, %q).Subject = %q, want %q", tt.name, tt.queue, tt.lang, r.Subject, tt.wantSubject)
		}
	}

	// Parts resolve independently: the overridden German text body, the embedded German HTML.
	r, err := s.Render(Reply, "support", "de", v)
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "support de reply "+v.Body+"\n" {
		t.Errorf("text = %q, want the support/de override", r.Text)
	}
	if !strings.Contains(r.HTML, "Bitte oberhalb dieser Zeile antworten") {
		t.Errorf("HTML is not the embedded German one")
	}
	// A language-neutral override speaks the requested language; else English.
	for lang, want := range map[string]string{"de": "hr text in de\n", "": "hr text in en\n"} {
		r, err := s.Render(Ack, "hr", lang, v)
		if err != nil {
			t.Fatal(err)
		}
		if r.Text != want {
			t.Errorf("hr, %q: text = %q, want %q", lang, r.Text, want)
		}
	}
}

func TestNewRejectsBrokenOverride(t *testing.T) {
	tests := []struct {
		file, text string
		want       []string // substrings of the error
	}{
		{"de/ack.subject.tmpl", "[{{.Ticket.Key}}]\n{{if .Body}}", []string{"de/ack.subject.tmpl:2", "unexpected EOF"}},
		{"support/reply.html.tmpl", "<p>\n\n{{.Ticket.Nope}}</p>", []string{"support/reply.html.tmpl:3", "Nope"}},
		{"reply.txt.tmpl", "{{nosuchfunc .Body}}", []string{"reply.txt.tmpl:1", "nosuchfunc"}},
		{"common.html.tmpl", `{{define "marker"}}<a href="{{.Ticket.URL}}>{{end}}`, []string{"common.html.tmpl"}},
		{"escalation.subject.tmpl", "{{/* nothing */}}\n", []string{"escalation.subject.tmpl", "empty"}},
		{"acknowledge.txt.tmpl", "x", []string{"acknowledge.txt.tmpl", "unknown file name"}},
		{"a/b/c/ack.txt.tmpl", "x", []string{"too deep"}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{tt.file: tt.text})
		_, err := New(Options{Dir: dir})
		if err == nil {
			t.Errorf("%s: New accepted %q", tt.file, tt.text)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.file, err, w)
			}
		}
	}
}

func TestNewMissingDir(t *testing.T) {
	if _, err := New(Options{Dir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Fatal("New accepted a missing directory")
	}
}

func TestRenderUnknownName(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Render("nope", "", "en", SampleView())
	if !errors.Is(err, ErrUnknownTemplate) {
		t.Fatalf("err = %v, want ErrUnknownTemplate", err)
	}
}

func TestRenderLanguageFallback(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for lang, want := range map[string]string{"de": "de", "de-AT": "de", "DE_ch": "de", "fr": "en", "": "en", "en-GB": "en"} {
		r, err := s.Render(Ack, "anyqueue", lang, SampleView())
		if err != nil {
			t.Fatal(err)
		}
		if r.Lang != want {
			t.Errorf("lang %q rendered in %q, want %q", lang, r.Lang, want)
		}
	}
}

func TestLanguages(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Languages(), ","); got != "de,en" {
		t.Errorf("Languages() = %s, want de,en", got)
	}
	// A complete French directory makes French available; a partial one does not.
	dir := t.TempDir()
	files := map[string]string{"it/ack.subject.tmpl": "[{{.Ticket.Key}}] IT"}
	for _, n := range names {
		files["fr/"+n+subjectSuffix] = "[{{.Ticket.Key}}] fr"
		files["fr/"+n+textSuffix] = "fr"
		files["fr/"+n+htmlSuffix] = "<p>fr</p>"
	}
	writeFiles(t, dir, files)
	s, err = New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Languages(), ","); got != "de,en,fr" {
		t.Errorf("Languages() = %s, want de,en,fr", got)
	}
	r, err := s.Render(Digest, "", PickLanguage("fr-CA", "de", s.Languages()), SampleView())
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "[SD-1042] fr" || r.Lang != "fr" {
		t.Errorf("French digest = %q in %q", r.Subject, r.Lang)
	}
}

func TestRequesterNeverSeesInternalNotes(t *testing.T) {
	dir := t.TempDir()
	// Even an override that shows every message cannot leak internal notes to the requester.
	writeFiles(t, dir, map[string]string{
		"reply.txt.tmpl": "{{range .Messages}}{{.Text}}\n{{end}}",
	})
	s, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v := SampleView()
	v.Messages = append(v.Messages, MessageView{Text: "SECRET-NOTE", Internal: true})
	for _, name := range names {
		r, err := s.Render(name, "", "en", v)
		if err != nil {
			t.Fatal(err)
		}
		leaked := strings.Contains(r.Text, "SECRET-NOTE") || strings.Contains(r.HTML, "SECRET-NOTE")
		if ForRequester(name) && leaked {
			t.Errorf("%s shows an internal note to the requester", name)
		}
		if (name == AgentNew || name == AgentReply) && !leaked {
			t.Errorf("%s hides the internal note from agents", name)
		}
	}
	if len(v.Messages) != 3 {
		t.Errorf("Render modified the caller's messages")
	}
}

func TestRenderURLAndSubjectSafety(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := SampleView()
	v.Ticket.URL = "javascript:alert(1)"
	v.Ticket.Subject = "Urgent\r\nBcc: evil@x\r\nContent-Type: text/html\r\n\r\n<h1>" + strings.Repeat("long ", 100)
	r, err := s.Render(Ack, "", "en", v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, `href="javascript:`) {
		t.Errorf("HTML links to a javascript: URL")
	}
	if strings.ContainsAny(r.Subject, "\r\n") || len([]rune(r.Subject)) > MaxHeaderRunes {
		t.Errorf("subject %q is not one capped line", r.Subject)
	}
	if !strings.HasPrefix(r.Subject, "[SD-1042] Received: Urgent Bcc: evil@x Content-Type: text/html <h1>long long") {
		t.Errorf("subject = %q", r.Subject)
	}
}

func TestRenderConcurrent(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Render(Reply, "", "de", SampleView())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := s.Render(Reply, "", "de", SampleView())
				if err != nil || got != want {
					t.Errorf("concurrent render differs: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}
