package thread

import (
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"testing"
)

// corpusDir holds real reply mails from many clients: $DESKD_CORPUS/replies, else shared/ beside
// the repository.
func corpusDir() string {
	if d := os.Getenv("DESKD_CORPUS"); d != "" {
		return filepath.Join(d, "replies")
	}
	return "../../../shared/corpus/replies"
}

// corpusHeaders returns the threading header fields of each parseable mail in corpusDir, keyed by
// canonical header name ("References", "In-Reply-To", "Message-Id", "From", "To", "Cc", "Subject"),
// raw values as written. It returns nil when the corpus is absent.
func corpusHeaders(tb testing.TB) []map[string]string {
	tb.Helper()
	entries, err := os.ReadDir(corpusDir())
	if err != nil {
		tb.Logf("corpus not seeded: %v", err)
		return nil
	}
	var out []map[string]string
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".eml" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(corpusDir(), e.Name()))
		if err != nil {
			tb.Fatalf("read corpus: %v", err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			continue // not every corpus file is a whole message
		}
		h := make(map[string]string)
		for _, name := range []string{"References", "In-Reply-To", "Message-Id", "From", "To", "Cc", "Subject"} {
			h[name] = msg.Header.Get(name)
		}
		out = append(out, h)
	}
	return out
}
