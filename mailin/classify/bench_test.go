package classify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deskd/deskd/mailin/parse"
)

// BenchmarkClassifyCorpus classifies every parsed corpus message once per iteration.
func BenchmarkClassifyCorpus(b *testing.B) {
	dir := corpusDir(b)
	var msgs []*parse.Message
	for _, row := range readManifest(b, dir) {
		raw, err := os.ReadFile(filepath.Join(dir, row.Path))
		if err != nil {
			b.Fatal(err)
		}
		if m, err := parse.Parse(raw); err == nil {
			msgs = append(msgs, m)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range msgs {
			Classify(m, opts)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/msg")
}

// BenchmarkClassifyLargeBounceText is the worst case of the text rules: a mail system sender
// with a bounce subject and a megabyte of text that matches nothing.
func BenchmarkClassifyLargeBounceText(b *testing.B) {
	m := msg(strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit 42\n", 20000),
		"From", "MAILER-DAEMON@mx.example.org", "Subject", "Undelivered Mail Returned to Sender")
	for i := 0; i < b.N; i++ {
		Classify(m, opts)
	}
}
