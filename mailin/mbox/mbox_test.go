package mbox

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSplitUnquotesAndSeparates(t *testing.T) {
	data := "From alice@example.com Tue Nov 24 09:00:00 2026\nSubject: one\n\nhello\n>From the start\n>>From deeper\n\n" +
		"From bob@example.com Tue Nov 24 09:01:00 2026\nSubject: two\n\nFrom inside a paragraph is not a separator\nbye\n"
	msgs := Split([]byte(data))
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if got := string(msgs[0]); got != "Subject: one\n\nhello\nFrom the start\n>From deeper\n" {
		t.Errorf("first message %q", got)
	}
	if got := string(msgs[1]); got != "Subject: two\n\nFrom inside a paragraph is not a separator\nbye\n" {
		t.Errorf("second message %q", got)
	}
}

func TestOpenMaildirAndFiles(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"cur/2.eml", "new/1.eml", "tmp/partial.eml", ".hidden"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("Subject: "+p+"\n\nx\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srcs, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || filepath.Base(srcs[0].Name) != "2.eml" || srcs[1].Index != 2 {
		t.Fatalf("sources %+v: want cur/2.eml then new/1.eml, tmp/ and dot files skipped", srcs)
	}
	b, err := srcs[1].Read()
	if err != nil || string(b) != "Subject: new/1.eml\n\nx\n" {
		t.Errorf("read %q %v", b, err)
	}
	mbox := filepath.Join(dir, "archive.mbox")
	os.WriteFile(mbox, []byte("From x Tue Nov 24 09:00:00 2026\nSubject: a\n\nb\n"), 0o644)
	srcs, err = Open(mbox)
	if err != nil || len(srcs) != 1 {
		t.Fatalf("mbox: %v %+v", err, srcs)
	}
}
