package templates

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// goldenView is SampleView at a fixed clock in a fixed zone, with hostile input where a requester
// controls it: a subject trying to inject a header, and HTML in a body and a display name.
func goldenView() View {
	v := SampleView()
	v.Location = time.FixedZone("CET", 3600)
	v.Ticket.Subject = "Hi\r\nBcc: evil@x"
	v.Body = "Hello,\n<script>alert(\"x\")</script> please check & confirm.\n\nThanks"
	v.Messages = append(v.Messages, MessageView{
		From: "eve@example.net", FromName: `Eve <img src=x onerror=alert(1)>`,
		At: v.Ticket.CreatedAt.Add(-time.Hour), Text: "<b>bold</b> & \"quoted\"\n> earlier quote",
	})
	return v
}

func TestGolden(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := goldenView()
	for _, lang := range []string{"en", "de"} {
		for _, name := range names {
			t.Run(name+"."+lang, func(t *testing.T) {
				r, err := s.Render(name, "support", lang, v)
				if err != nil {
					t.Fatal(err)
				}
				if r.Lang != lang {
					t.Errorf("Lang = %q, want %q", r.Lang, lang)
				}
				checkSafe(t, name, lang, r)
				base := filepath.Join("testdata", "golden", name+"."+lang)
				golden(t, base+".subject", r.Subject+"\n")
				golden(t, base+".txt", r.Text)
				golden(t, base+".html", r.HTML)
			})
		}
	}
}

// checkSafe asserts what must hold for every mail, whatever the templates look like.
func checkSafe(t *testing.T, name, lang string, r Rendered) {
	t.Helper()
	if strings.ContainsAny(r.Subject, "\r\n\t\x00") {
		t.Errorf("subject %q contains a control character", r.Subject)
	}
	if strings.Contains(r.Subject, "evil@x") && !strings.Contains(r.Subject, "Hi Bcc: evil@x") {
		t.Errorf("subject %q: injected header not folded into the line", r.Subject)
	}
	if name != Digest && name != LoopDetected && !strings.Contains(r.Subject, "[SD-1042]") {
		t.Errorf("subject %q lacks the ticket key", r.Subject)
	}
	for _, bad := range []string{"<script", "<img", "<b>bold"} {
		if strings.Contains(r.HTML, bad) {
			t.Errorf("HTML contains unescaped %q", bad)
		}
	}
	if !strings.HasPrefix(r.HTML, "<!DOCTYPE html>") || !strings.Contains(r.HTML, `lang="`+lang+`"`) {
		t.Errorf("HTML is not a document in %s", lang)
	}
	if !strings.HasSuffix(r.Text, "\n") || strings.HasSuffix(r.Text, "\n\n") {
		t.Errorf("text does not end in exactly one newline")
	}
	if ForRequester(name) {
		for _, body := range []string{r.Text, r.HTML} {
			if strings.Contains(body, "Checked the gateway") {
				t.Errorf("internal note shown to the requester")
			}
		}
		if !strings.HasPrefix(r.Text, ReplyMarker(lang)+"\n") {
			t.Errorf("text does not start with the reply marker %q", ReplyMarker(lang))
		}
	}
}

// golden compares got with the file at path, or rewrites the file under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update and review the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func BenchmarkRender(b *testing.B) {
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	v := goldenView()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Render(Reply, "support", "de", v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "renders/s")
}
