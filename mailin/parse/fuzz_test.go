package parse

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// corpusFiles lists every message file of the shared corpus (expected-output files excluded), or nil
// when the corpus is absent.
func corpusFiles(tb testing.TB) []string {
	tb.Helper()
	dir := os.Getenv("DESKD_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	var files []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		base := d.Name()
		if base == "MANIFEST.tsv" || base == "SOURCES.md" || strings.HasSuffix(base, ".expected.txt") {
			return nil
		}
		files = append(files, path)
		return nil
	})
	return files
}

var fuzzSeeds = []string{
	"Subject: =?utf-8?B?w6k=?=\r\n\r\nhi\r\n",
	"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nx\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n\nbody\n--b--\n",
	"Content-Type: multipart/alternative; boundary=\"x\"\r\n\r\n--x\r\n\r\nplain\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>a<br>b</p>\r\n",
	"From: =?iso-2022-jp?B?GyRCJEIbKEI=?= <a@b>\rSubject: cr only\r\rbody\r",
	"Content-Type: text/plain; charset=utf-7\n\nHi +AOk-\n",
	"Content-Type: text/plain; format=flowed; delsp=yes\n\nline \nnext\n> q \n> r\n-- \nsig\n",
	"Content-Transfer-Encoding: base64\n\nSGVsbG8=ZXh0cmE\n",
	"Content-Type: text/html\n\n<table><tr><td>a<td>b</table><a href=\"https://x\">y</a><script>z</script>",
}

// FuzzParse checks that Parse never panics, always returns valid UTF-8 text, and that VisibleText is
// idempotent-safe (never longer than Text when Text is non-blank).
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, path := range corpusFiles(f) {
		if raw, err := os.ReadFile(path); err == nil && len(raw) < 64<<10 {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Parse recovered from a panic: %v", err)
			}
			return
		}
		for name, s := range map[string]string{"Text": m.Text, "VisibleText": m.VisibleText, "HTML": m.HTML, "Subject": m.Subject} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", name, s)
			}
		}
		if strings.TrimSpace(m.Text) != "" && m.VisibleText == "" {
			t.Fatalf("VisibleText empty for non-empty Text %q", m.Text)
		}
		for _, a := range m.Attachments {
			if a.Size != int64(len(a.Data)) {
				t.Fatalf("attachment size %d != len(data) %d", a.Size, len(a.Data))
			}
		}
	})
}

// BenchmarkParseCorpus parses every corpus message per iteration and reports msgs/s and MB/s.
func BenchmarkParseCorpus(b *testing.B) {
	var msgs [][]byte
	var total int64
	for _, path := range corpusFiles(b) {
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, raw)
		total += int64(len(raw))
	}
	if len(msgs) == 0 {
		b.Skip("corpus not found (set DESKD_CORPUS)")
	}
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, raw := range msgs {
			if _, err := Parse(raw); err != nil {
				b.Fatal(err)
			}
		}
	}
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*len(msgs))/sec, "msgs/s")
	b.ReportMetric(float64(total)*float64(b.N)/sec/1e6, "MB/s")
}
