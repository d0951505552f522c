// Package mailin takes mail into deskd: the IMAP Poller stores every message raw (nothing is lost
// after that point), and the Ingester turns stored messages into ticket changes, one savepoint per
// message inside a batch transaction, quarantining any message that fails with its reason.
package mailin

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/deskd/deskd/mailin/thread"
	"github.com/deskd/deskd/tickets"
)

// Raw mail states (raw_mails.state).
const (
	StatePending     = "pending"     // stored, not yet ingested
	StateIngested    = "ingested"    // turned into a ticket change
	StateQuarantined = "quarantined" // failed; reason recorded; `deskd replay` re-runs it
	StateDuplicate   = "duplicate"   // the same message was already ingested (UIDVALIDITY re-scan, re-import)
	StateIgnored     = "ignored"     // machine mail with no ticket to attach to; reason recorded
)

// ErrRawNotFound: no raw mail with that id.
var ErrRawNotFound = errors.New("raw mail not found")

// RawMail is one stored inbound message.
type RawMail struct {
	ID          int64
	Mailbox     string
	UIDValidity uint32
	UID         uint32
	MessageID   string
	SHA256      []byte
	Size        int64
	Raw         []byte // nil when the message was over the size cap
	State       string
	Reason      string
	Attempts    int
	ReceivedAt  time.Time
	ProcessedAt *time.Time

	// prep is the parse and classification of a message the poller has just fetched, run while it
	// was being stored (Ingester.prepareAhead); the ingest uses it instead of parsing again.
	prep *prepared
}

// NewRaw prepares a RawMail from fetched bytes. When the message exceeds maxBytes (0: no cap) its
// bytes are not kept and it is stored quarantined with the reason (DESIGN.md invariant 4).
func NewRaw(mailbox string, uidValidity, uid uint32, raw []byte, size int64, maxBytes int64) RawMail {
	r := RawMail{Mailbox: mailbox, UIDValidity: uidValidity, UID: uid, Size: size, State: StatePending}
	if r.Size == 0 {
		r.Size = int64(len(raw))
	}
	if maxBytes > 0 && r.Size > maxBytes {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d/%d", mailbox, uidValidity, uid, r.Size)))
		r.SHA256 = sum[:]
		r.State = StateQuarantined
		r.Reason = fmt.Sprintf("oversize: %d bytes exceeds mailin.max_message_bytes (%d); the message stays in the mailbox (UID %d)",
			r.Size, maxBytes, uid)
		return r
	}
	sum := sha256.Sum256(raw)
	r.SHA256 = sum[:]
	r.Raw = raw
	r.MessageID = thread.CanonicalID(headerMessageID(raw))
	return r
}

// StoreRaw inserts r unless (mailbox, UIDVALIDITY, UID) is already stored, and returns the row id and
// whether it was new. It is the first write for every message: once it commits the message is safe.
func StoreRaw(ctx context.Context, q tickets.DB, r RawMail) (int64, bool, error) {
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO raw_mails (mailbox, uidvalidity, uid, message_id, sha256, size, raw, state, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING RETURNING id`,
		r.Mailbox, int64(r.UIDValidity), int64(r.UID), r.MessageID, r.SHA256, r.Size, r.Raw, r.State, r.Reason).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("store raw mail %s/%d/%d: %w", r.Mailbox, r.UIDValidity, r.UID, err)
	}
	err = q.QueryRow(ctx, `SELECT id FROM raw_mails WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3`,
		r.Mailbox, int64(r.UIDValidity), int64(r.UID)).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("look up raw mail %s/%d/%d: %w", r.Mailbox, r.UIDValidity, r.UID, err)
	}
	return id, false, nil
}

const rawColumns = `id, mailbox, uidvalidity, uid, message_id, sha256, size, raw, state, reason, attempts, received_at, processed_at`

func scanRaw(row pgx.Row) (*RawMail, error) {
	var (
		r        RawMail
		uv, uid  int64
		withData []byte
	)
	err := row.Scan(&r.ID, &r.Mailbox, &uv, &uid, &r.MessageID, &r.SHA256, &r.Size, &withData, &r.State, &r.Reason,
		&r.Attempts, &r.ReceivedAt, &r.ProcessedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrRawNotFound
	}
	if err != nil {
		return nil, err
	}
	r.UIDValidity, r.UID, r.Raw = uint32(uv), uint32(uid), withData
	return &r, nil
}

// LoadRaw returns a stored message with its bytes.
func LoadRaw(ctx context.Context, q tickets.DB, id int64) (*RawMail, error) {
	r, err := scanRaw(q.QueryRow(ctx, `SELECT `+rawColumns+` FROM raw_mails WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("load raw mail %d: %w", id, err)
	}
	return r, nil
}

// ListRaw returns stored messages in a state (without their bytes), oldest first, at most limit.
func ListRaw(ctx context.Context, q tickets.DB, state string, limit int) ([]*RawMail, error) {
	rows, err := q.Query(ctx, `SELECT id, mailbox, uidvalidity, uid, message_id, sha256, size, NULL::bytea, state, reason,
		attempts, received_at, processed_at FROM raw_mails WHERE state = $1 ORDER BY id LIMIT $2`, state, limit)
	if err != nil {
		return nil, fmt.Errorf("list %s mail: %w", state, err)
	}
	defer rows.Close()
	var out []*RawMail
	for rows.Next() {
		r, err := scanRaw(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s mail: %w", state, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// setStates records the outcomes of one transaction's messages in one statement.
func setStates(ctx context.Context, q tickets.DB, outs []Outcome, now time.Time) error {
	if len(outs) == 0 {
		return nil
	}
	ids := make([]int64, len(outs))
	states := make([]string, len(outs))
	reasons := make([]string, len(outs))
	for i, o := range outs {
		ids[i], states[i], reasons[i] = o.RawID, o.State, o.Reason
	}
	if _, err := q.Exec(ctx, `UPDATE raw_mails r SET state = u.state, reason = u.reason, processed_at = $4, attempts = r.attempts + 1
		FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, state, reason) WHERE r.id = u.id`,
		ids, states, reasons, now); err != nil {
		return fmt.Errorf("record outcome of %d messages: %w", len(outs), err)
	}
	return nil
}

// Requeue puts quarantined messages back to pending so the Ingester runs them again (`deskd replay`).
// ids nil requeues every quarantined message that still has its bytes. It returns the requeued ids.
func Requeue(ctx context.Context, q tickets.DB, ids []int64) ([]int64, error) {
	rows, err := q.Query(ctx, `UPDATE raw_mails SET state = 'pending'
		WHERE state = 'quarantined' AND raw IS NOT NULL AND ($1::bigint[] IS NULL OR id = ANY($1))
		RETURNING id`, ids)
	if err != nil {
		return nil, fmt.Errorf("requeue quarantined mail: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("requeue quarantined mail: %w", err)
	}
	return out, nil
}

// headerMessageID extracts the Message-ID header value cheaply, without a full parse.
func headerMessageID(raw []byte) string {
	const name = "message-id:"
	lineStart := 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '\n' {
			continue
		}
		line := raw[lineStart:i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			return "" // end of header
		}
		if len(line) >= len(name) && equalFoldASCII(line[:len(name)], name) {
			v := string(line[len(name):])
			// folded continuation lines
			j := i + 1
			for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t') {
				k := j
				for k < len(raw) && raw[k] != '\n' {
					k++
				}
				v += string(raw[j:k])
				j = k + 1
			}
			return v
		}
		lineStart = i + 1
	}
	return ""
}

func equalFoldASCII(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 32
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// StoreRaws is StoreRaw for many messages; it returns the row id of each message in order, whether
// it was new or already stored. Each message it inserts gets its ID and ReceivedAt set in raws (one
// already stored keeps them zero).
//
// A chunk of new mail, the usual case, goes in with one COPY; when some of it is already stored (a
// re-fetch after a crash between the mailbox's answer and the checkpoint) the COPY fails on the
// unique (mailbox, uidvalidity, uid), its savepoint is rolled back, and every message is inserted
// with ON CONFLICT DO NOTHING in one pipelined batch instead.
func StoreRaws(ctx context.Context, tx pgx.Tx, raws []RawMail) ([]int64, error) {
	if len(raws) >= copyMinRows {
		ids, err := copyRaws(ctx, tx, raws)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "23505" { // 23505: unique_violation
			return ids, err
		}
	}
	return insertRaws(ctx, tx, raws)
}

// copyMinRows is the smallest chunk StoreRaws copies: below it the COPY's extra round trips
// (savepoint, ids, column types, release) cost more than the pipelined INSERTs they replace.
const copyMinRows = 8

// rawCopyColumns are the columns copyRaws writes; every other column keeps its default.
var rawCopyColumns = []string{"id", "mailbox", "uidvalidity", "uid", "message_id", "sha256", "size", "raw", "state",
	"reason", "received_at"}

// drawRawIDs takes $1 ids from raw_mails' sequence, and the transaction's now().
const drawRawIDs = `SELECT array(SELECT nextval(pg_get_serial_sequence('raw_mails', 'id')) FROM generate_series(1, $1)), now()`

// copyRaws inserts raws with COPY inside a savepoint. The ids are drawn from the table's sequence
// first, ascending in the order of raws as the INSERTs would have numbered them, and received_at is
// the transaction's now(), as the column's default would have set it. COPY encodes the rows into a
// reused 64 KB buffer; a batch of INSERTs builds one message of the whole chunk, regrown from 1 KB
// every time (a tenth of the poller's CPU at 16 KB a message).
func copyRaws(ctx context.Context, tx pgx.Tx, raws []RawMail) ([]int64, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("store raw mail: %w", err)
	}
	defer sp.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op; otherwise the COPY's error is returned
	var (
		ids []int64
		at  time.Time
	)
	if err := sp.QueryRow(ctx, drawRawIDs, len(raws)).Scan(&ids, &at); err != nil {
		return nil, fmt.Errorf("store raw mail: draw ids: %w", err)
	}
	slices.Sort(ids)
	_, err = sp.CopyFrom(ctx, pgx.Identifier{"raw_mails"}, rawCopyColumns, pgx.CopyFromSlice(len(raws), func(i int) ([]any, error) {
		r := &raws[i]
		return []any{ids[i], r.Mailbox, int64(r.UIDValidity), int64(r.UID), r.MessageID, r.SHA256, r.Size, r.Raw,
			r.State, r.Reason, at}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("store %d raw mails: %w", len(raws), err)
	}
	if err := sp.Commit(ctx); err != nil {
		return nil, fmt.Errorf("store raw mail: %w", err)
	}
	for i := range raws {
		raws[i].ID, raws[i].ReceivedAt = ids[i], at
	}
	return ids, nil
}

// insertRaws is StoreRaws with one INSERT ... ON CONFLICT DO NOTHING per message, pipelined.
func insertRaws(ctx context.Context, tx pgx.Tx, raws []RawMail) ([]int64, error) {
	b := &pgx.Batch{}
	for _, r := range raws {
		b.Queue(`INSERT INTO raw_mails (mailbox, uidvalidity, uid, message_id, sha256, size, raw, state, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING RETURNING id, received_at`,
			r.Mailbox, int64(r.UIDValidity), int64(r.UID), r.MessageID, r.SHA256, r.Size, r.Raw, r.State, r.Reason)
	}
	ids := make([]int64, len(raws))
	var stored []int // indexes already stored before (conflicts)
	br := tx.SendBatch(ctx, b)
	for i := range raws {
		err := br.QueryRow().Scan(&ids[i], &raws[i].ReceivedAt)
		if err == nil {
			raws[i].ID = ids[i]
		}
		if errors.Is(err, pgx.ErrNoRows) {
			stored = append(stored, i)
			continue
		}
		if err != nil {
			br.Close()
			return nil, fmt.Errorf("store raw mail %s/%d/%d: %w", raws[i].Mailbox, raws[i].UIDValidity, raws[i].UID, err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("store raw mail: %w", err)
	}
	for _, i := range stored {
		id, _, err := StoreRaw(ctx, tx, raws[i])
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}
