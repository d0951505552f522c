package mailin_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskd/deskd/internal/testdb"
	"github.com/deskd/deskd/mailin"
)

// The poller hands the raw mail it has just stored to the ingest instead of having it read back:
// each handed-over row must be what reading it back would give, be used once, and leave the rows
// it does not cover to the database.
func TestStoredRawMailIsHandedToTheIngestOnce(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	raws := rawChunk(1, 3)
	ids := storeRaws(t, pool, raws)
	for i, r := range raws {
		if r.ID != ids[i] || r.ReceivedAt.IsZero() {
			t.Fatalf("raw %d: ID %d ReceivedAt %v after StoreRaws, want id %d and the stored time", i, r.ID, r.ReceivedAt, ids[i])
		}
	}
	fromDB, err := mailin.LoadPending(ctx, pool, "inbox", 0, 0, 10, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := map[int64]*mailin.RawMail{ids[0]: &raws[0], ids[2]: &raws[2]}
	got, err := mailin.LoadPending(ctx, pool, "inbox", 0, 0, 10, 1<<20, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(fromDB) != 3 {
		t.Fatalf("loaded %d (with hand-over) and %d (from the database), want 3", len(got), len(fromDB))
	}
	if got[0] != &raws[0] || got[2] != &raws[2] || got[1] == &raws[1] {
		t.Errorf("rows 0 and 2 must come from the hand-over, row 1 from the database")
	}
	if len(fresh) != 0 {
		t.Errorf("%d handed-over rows left after use, want 0 (each is used once)", len(fresh))
	}
	for i := range got {
		if !sameRaw(got[i], fromDB[i]) {
			t.Errorf("row %d handed over as %+v, read back as %+v", i, got[i], fromDB[i])
		}
	}
}

// storeRaws stores raws with StoreRaws in a transaction of its own.
func storeRaws(t *testing.T, pool *pgxpool.Pool, raws []mailin.RawMail) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		ids, err = mailin.StoreRaws(ctx, tx, raws)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// sameRaw reports whether a and b hold the same stored raw mail, column by column.
func sameRaw(a, b *mailin.RawMail) bool {
	return a.ID == b.ID && a.Mailbox == b.Mailbox && a.UIDValidity == b.UIDValidity && a.UID == b.UID &&
		a.MessageID == b.MessageID && bytes.Equal(a.SHA256, b.SHA256) && a.Size == b.Size &&
		bytes.Equal(a.Raw, b.Raw) && (a.Raw == nil) == (b.Raw == nil) && a.State == b.State && a.Reason == b.Reason &&
		a.Attempts == b.Attempts && a.ReceivedAt.Equal(b.ReceivedAt) && (a.ProcessedAt == nil) == (b.ProcessedAt == nil)
}

// TestPollerIngestsWithoutReadingRawMailBack: the poller, for a backlog and for mail that arrives
// in IDLE, ingests what it stored from the bytes it fetched; the raw mail is never read back.
func TestPollerIngestsWithoutReadingRawMailBack(t *testing.T) {
	t.Parallel()
	_, url := testdb.NewWithURL(t)
	readBack := &testdb.SQLCounter{Want: "SELECT " + mailin.RawColumns + " FROM raw_mails"}
	pool := testdb.Traced(t, url, readBack)
	h := &pollHarness{t: t, pool: pool, dbURL: url, ing: newPollIngester(t, pool), mail: startMemmail(t), folder: "INBOX"}
	var logs logBuffer
	h.appendMail(3) // a backlog
	h.start(h.mailbox(), pollOptions(logs.logger()))
	h.waitTickets(3, 10*time.Second)
	h.appendMail(2) // noticed in IDLE
	h.waitTickets(5, 10*time.Second)
	h.assertExactlyOnce(5)
	if n := readBack.Count(); n != 0 {
		t.Errorf("raw mail read back %d times, want 0 (the poller hands over what it stored)\n%s", n, logs.String())
	}
}

// StoreRaws copies a chunk of new mail in one COPY and, when part of the chunk is already stored
// (a re-fetch after a crash), falls back to ON CONFLICT per message: either way every message is
// stored once, with ids ascending in UID order, and the rows read back are what was handed in.
func TestStoreRawsCopiesAndFallsBackOnARefetch(t *testing.T) {
	ctx := context.Background()
	_, url := testdb.NewWithURL(t)
	copies := &testdb.SQLCounter{Want: mailin.DrawRawIDs}
	pool := testdb.Traced(t, url, copies)
	chunk := func(from, to int) []mailin.RawMail {
		raws := rawChunk(from, to)
		raws[len(raws)-1].Raw, raws[len(raws)-1].State = nil, mailin.StateQuarantined // oversize: no bytes
		return raws
	}
	first := chunk(1, 20) // the COPY
	ids := storeRaws(t, pool, first)
	// the re-fetch: 11..20 are stored already, 21..30 are new; the COPY fails, the INSERTs do it
	second := chunk(11, 30)
	ids2 := storeRaws(t, pool, second)
	if n := copies.Count(); n != 2 {
		t.Errorf("%d COPYs started for two chunks of 20, want 2", n)
	}
	storeRaws(t, pool, rawChunk(31, 33)) // too few to copy
	if n := copies.Count(); n != 2 {
		t.Errorf("a chunk of 3 started a COPY (%d in all), want INSERTs", n)
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM raw_mails`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 33 {
		t.Fatalf("%d raw mails stored, want 33 (each once)", n)
	}
	for i := 0; i < 10; i++ {
		if ids2[i] != ids[10+i] {
			t.Errorf("uid %d: re-fetch returned id %d, want the stored %d", 11+i, ids2[i], ids[10+i])
		}
		if second[i].ID != 0 {
			t.Errorf("uid %d was stored before; StoreRaws set its ID to %d, want 0", 11+i, second[i].ID)
		}
	}
	all := append(first, second[10:]...)
	allIDs := append(ids, ids2[10:]...)
	for i, r := range all {
		if r.ID != allIDs[i] || r.ReceivedAt.IsZero() {
			t.Errorf("uid %d: ID %d ReceivedAt %v, want id %d and the stored time", r.UID, r.ID, r.ReceivedAt, allIDs[i])
		}
		if i > 0 && allIDs[i] <= allIDs[i-1] {
			t.Errorf("uid %d has id %d, not above uid %d's %d: ingest order would not follow the mailbox", r.UID,
				allIDs[i], all[i-1].UID, allIDs[i-1])
		}
		back, err := mailin.LoadRaw(ctx, pool, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !sameRaw(back, &all[i]) {
			t.Errorf("uid %d read back as %+v, stored as %+v", r.UID, back, r)
		}
	}
}

// rawChunk is what the poller stores for UIDs from..to of mailbox "inbox" at UIDVALIDITY 7: one
// request from a different sender each, of growing size.
func rawChunk(from, to int) []mailin.RawMail {
	var raws []mailin.RawMail
	for uid := from; uid <= to; uid++ {
		raw := strings.ReplaceAll(mailFrom(fmt.Sprintf("u%d@corp.example", uid), "support@example.com", "Printer",
			fmt.Sprintf("h%d@corp.example", uid), "", strings.Repeat("It jams. ", uid)), "\n", "\r\n")
		raws = append(raws, mailin.NewRaw("inbox", 7, uint32(uid), []byte(raw), int64(len(raw)), 1<<20))
	}
	return raws
}
