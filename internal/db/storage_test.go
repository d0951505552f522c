package db_test

import (
	"context"
	"testing"

	"github.com/deskd/deskd/internal/testdb"
)

// TestMailColumnsStorage pins how mail bytes are stored: received mail out of line and uncompressed
// (mostly incompressible attachments), rendered mail, mail drafts and message bodies compressed with lz4.
func TestMailColumnsStorage(t *testing.T) {
	pool := testdb.New(t)
	want := map[string][2]string{ // table.column -> attstorage, attcompression
		"raw_mails.raw":         {"e", ""},
		"outbox.raw":            {"x", "l"},
		"outbox.draft":          {"x", "l"},
		"messages.body_text":    {"x", "l"},
		"messages.visible_text": {"x", "l"},
		"messages.body_html":    {"x", "l"},
		"blobs.data":            {"e", ""},
	}
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname || '.' || a.attname, a.attstorage::text, a.attcompression::text
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE c.relname IN ('raw_mails', 'outbox', 'messages', 'blobs') AND a.attnum > 0 AND NOT a.attisdropped`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for rows.Next() {
		var col, storage, compression string
		if err := rows.Scan(&col, &storage, &compression); err != nil {
			t.Fatal(err)
		}
		got[col] = [2]string{storage, compression}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for col, w := range want {
		if got[col] != w {
			t.Errorf("%s: storage/compression %q, want %q", col, got[col], w)
		}
	}
}
