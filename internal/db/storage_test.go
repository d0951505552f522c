package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

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

// TestEnumeratedColumnsRejectOtherValues pins the domains of migration 0010: each enumerated or
// lower-case column refuses a value outside its set (23514, check_violation), and no table keeps a
// one-column CHECK constraint, which every writing statement would parse and plan again.
func TestEnumeratedColumnsRejectOtherValues(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	for _, c := range []struct{ domain, bad, good string }{
		{"lower_email", "Ann@Example.com", "ann@example.com"},
		{"ticket_kind", "bug", "incident"},
		{"ticket_status", "done", "resolved"},
		{"ticket_priority", "P5", "P1"},
		{"raw_mail_state", "lost", "quarantined"},
		{"message_direction", "sideways", "out"},
		{"message_visibility", "secret", "internal"},
		{"message_class", "spam", "autoreply"},
		{"actor_kind", "robot", "sla"},
		{"participant_role", "owner", "watcher"},
		{"link_kind", "parent", "follow_up"},
		{"outbox_status", "queued", "suppressed"},
		{"auto_submitted", "auto-notified", "auto-replied"},
	} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT $1::text::`+c.domain+` = $1`, c.good).Scan(&ok); err != nil || !ok {
			t.Errorf("%s refuses %q: %v", c.domain, c.good, err)
		}
		_, err := pool.Exec(ctx, `SELECT $1::text::`+c.domain, c.bad)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23514" {
			t.Errorf("%s takes %q: error %v, want a check violation", c.domain, c.bad, err)
		}
	}
	// the columns carry the domains
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
		WHERE c.contype = 'c' AND r.relnamespace = 'public'::regnamespace AND cardinality(c.conkey) = 1`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d one-column CHECK constraints left on tables, want 0 (domains instead)", n)
	}
	_, err := pool.Exec(ctx, `INSERT INTO raw_mails (mailbox, uidvalidity, uid, state) VALUES ('inbox', 1, 1, 'lost')`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" {
		t.Errorf("raw_mails takes state 'lost': error %v, want a check violation", err)
	}
}
