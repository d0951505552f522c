package mailin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"
)

// flagBatch caps the UIDs of one STORE/MOVE command and one database look-up.
const flagBatch = 1000

// moveBatch is how many processed messages a bulk fetch collects before it flags and moves them
// with one STORE and one MOVE. The server's work per command includes a pass over the folder (a
// maildir server re-reads the directory after every change to it), so a command per chunk of 100
// cost Dovecot more than the FETCH itself. Until they are moved, processed messages wait in the
// folder at most a few chunks longer; a crash leaves them to recover, like any unflagged one.
const moveBatch = 1000

// loadCheckpoint returns the last stored UID of the mailbox for uidValidity, creating the row on
// first use. A different stored UIDVALIDITY means the server renumbered the folder (RFC 3501
// §2.3.1.1): the old UIDs mean nothing now, so the checkpoint restarts at 0 and the folder is read
// again; the Ingester marks messages it already has as duplicates.
func (p *Poller) loadCheckpoint(ctx context.Context, uidValidity uint32) (uint32, error) {
	var storedUV, last int64
	err := p.pool.QueryRow(ctx, `INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid) VALUES ($1, $2, 0)
		ON CONFLICT (mailbox) DO UPDATE SET mailbox = EXCLUDED.mailbox
		RETURNING uidvalidity, last_uid`, p.mb.Name, int64(uidValidity)).Scan(&storedUV, &last)
	if err != nil {
		return 0, fmt.Errorf("load checkpoint: %w", err)
	}
	if storedUV == int64(uidValidity) {
		return uint32(last), nil
	}
	p.log.Warn("UIDVALIDITY changed: re-reading the folder from the start; messages already ingested become duplicates",
		"old_uidvalidity", storedUV, "new_uidvalidity", uidValidity, "old_last_uid", last)
	if _, err := p.pool.Exec(ctx, `UPDATE mailbox_state SET uidvalidity = $2, last_uid = 0, updated_at = now() WHERE mailbox = $1`,
		p.mb.Name, int64(uidValidity)); err != nil {
		return 0, fmt.Errorf("reset checkpoint: %w", err)
	}
	return 0, nil
}

// recover finishes what a previous run left: pending raw mail is ingested, then every message up
// to the checkpoint that is processed but still unseen (or, with a processed folder, still in the
// folder) is flagged and moved. This covers a crash between the raw commit and the ingest, and
// between the ingest and \Seen.
func (s *imapSession) recover(ctx context.Context) error {
	if _, err := s.p.ing.ProcessPending(ctx, s.p.mb.Name); err != nil {
		return fmt.Errorf("ingest pending mail: %w", err)
	}
	if s.lastUID == 0 {
		return nil
	}
	criteria := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 1, Stop: imap.UID(s.lastUID)}}}}
	if s.p.mb.ProcessedFolder == "" {
		criteria.NotFlag = []imap.Flag{imap.FlagSeen}
	}
	done := s.guard(ctx)
	data, err := s.c.UIDSearch(criteria, nil).Wait()
	done()
	if err != nil {
		return fmt.Errorf("search processed messages: %w", err)
	}
	left := data.AllUIDs()
	for len(left) > 0 {
		n := min(len(left), flagBatch)
		uids, err := s.p.processedUIDs(ctx, processedByUID, s.uidValidity, uidInts(left[:n]))
		if err != nil {
			return err
		}
		if err := s.markDone(ctx, uids); err != nil {
			return err
		}
		left = left[n:]
	}
	return nil
}

// newMessage is a UID with its RFC822.SIZE.
type newMessage struct {
	uid  imap.UID
	size int64
}

// fetchNew stores, ingests and flags every message above the checkpoint, chunk by chunk. The next
// chunk is fetched and stored while the current one is ingested (the IMAP connection and the
// database work at once), and a chunk is flagged while the next one is ingested.
// Every step is durable before the next depends on it, so the overlap changes nothing on a crash.
func (s *imapSession) fetchNew(ctx context.Context) error {
	select { // an EXISTS from now on means another round
	case <-s.exists:
	default:
	}
	msgs, err := s.listNew(ctx)
	if err != nil {
		return err
	}
	var (
		prev      *ingestRun
		prevBytes int64
		held      []imap.UID // processed, to be flagged and moved with the next batch
	)
	for len(msgs) > 0 {
		n, bytes := 0, int64(0)
		for n < len(msgs) && n < chunkMessages {
			size := msgs[n].size
			if size > s.p.o.MaxMessageBytes {
				size = 0 // not fetched
			}
			if n > 0 && bytes+size > chunkBytes {
				break
			}
			bytes += size
			n++
		}
		if prev != nil && prevBytes+bytes > overlapBytes {
			// Large mail is not overlapped: one chunk's bytes in memory at a time (each message is
			// held several times over while it is fetched, stored, parsed and its attachments
			// written) keeps memory bounded.
			err := s.finish(ctx, prev, held)
			if prev, held = nil, nil; err != nil {
				return err
			}
		}
		ids, fresh, err := s.storeNew(ctx, msgs[:n])
		var flag []imap.UID
		if prev != nil {
			<-prev.done // never leave an ingest running behind a failed session
			if err == nil {
				flag, err = s.settle(ctx, prev)
			}
		}
		if err != nil {
			return err
		}
		// This chunk's ingest runs while the previous ones are flagged: the database and the IMAP
		// connection work at once again.
		prev = s.startIngest(ctx, ids, fresh)
		if held = append(held, flag...); len(held) >= s.moveBatch() {
			if err := s.flagAsync(ctx, held); err != nil {
				<-prev.done
				return err
			}
			held = nil
		}
		msgs, prevBytes = msgs[n:], bytes
	}
	if prev == nil { // no new mail: every round of the loop leaves a chunk ingesting
		return nil
	}
	return s.finish(ctx, prev, held)
}

// finish waits for a chunk's ingest and flags what it processed, with held (processed earlier),
// after any background flagging of the round has ended.
func (s *imapSession) finish(ctx context.Context, r *ingestRun, held []imap.UID) error {
	<-r.done
	flag, err := s.settle(ctx, r)
	if err != nil {
		return err
	}
	if err := s.waitFlagging(); err != nil {
		return err
	}
	if s.flagger != nil { // it served this backlog; an idle second connection would only time out
		s.flagger.close(ctx)
		s.flagger = nil
	}
	return s.markDone(ctx, append(held, flag...))
}

func (s *imapSession) moveBatch() int {
	if s.p.o.moveBatch > 0 {
		return s.p.o.moveBatch
	}
	return moveBatch
}

// flagAsync flags and moves uids on a second connection to the folder while this one goes on
// fetching the backlog: a maildir server re-reads the folder for each STORE and MOVE (80 ms for
// 1,000 messages in a folder of 10,000), and on this connection the next chunk's FETCH would wait for
// them, and the ingest for that chunk. One flagging runs at a time; its error ends the session like
// any other (the messages are ingested; reconcile flags them on the next). When the second
// connection cannot be opened, uids are flagged here.
func (s *imapSession) flagAsync(ctx context.Context, uids []imap.UID) error {
	if err := s.waitFlagging(); err != nil {
		return err
	}
	if s.flagger == nil && !s.noFlagger {
		f, err := s.p.connect(ctx)
		if err == nil {
			if err = f.openFolder(ctx); err != nil {
				f.close(ctx)
			} else if f.uidValidity != s.uidValidity {
				f.close(ctx)
				err = fmt.Errorf("UIDVALIDITY %d on the second connection, %d on the first", f.uidValidity, s.uidValidity)
			}
		}
		if err != nil {
			s.p.log.Warn("flagging processed mail on the fetching connection", "reason", err)
			s.noFlagger = true
		} else {
			s.flagger = f
		}
	}
	if s.flagger == nil {
		return s.markDone(ctx, uids)
	}
	done := make(chan struct{})
	s.flagging = done
	go func() {
		defer close(done)
		s.flagErr = s.flagger.markDone(ctx, uids)
	}()
	return nil
}

// waitFlagging waits for the background flagging, if one runs, and returns its error.
func (s *imapSession) waitFlagging() error {
	if s.flagging == nil {
		return nil
	}
	<-s.flagging
	s.flagging = nil
	if err := s.flagErr; err != nil {
		s.flagErr = nil
		return fmt.Errorf("flag processed mail: %w", err)
	}
	return nil
}

// ingestRun is the ingest of one stored chunk, running while the next chunk is fetched.
type ingestRun struct {
	ids     []int64 // the chunk's raw mail
	started time.Time
	done    chan struct{}
	outs    []Outcome
	err     error
}

// startIngest ingests the pending mail up to the chunk's last raw mail, so the ingest never takes
// along the next chunk, which is stored meanwhile and flagged with its own.
func (s *imapSession) startIngest(ctx context.Context, ids []int64, fresh map[int64]*RawMail) *ingestRun {
	r := &ingestRun{ids: ids, started: time.Now(), done: make(chan struct{})}
	upTo := int64(-1) // a chunk of only vanished messages: nothing new to ingest
	if len(ids) > 0 {
		upTo = slices.Max(ids)
	}
	go func() {
		defer close(r.done)
		if upTo > 0 {
			r.outs, r.err = s.p.ing.processPendingUpTo(ctx, s.p.mb.Name, upTo, fresh)
		}
	}()
	return r
}

// settle returns the UIDs to flag (and move) for a chunk whose ingest is done: what it processed.
// They are looked up before the next chunk's ingest starts, so mail this ingest left pending (to be
// retried) is flagged by the ingest that finishes it, never by two.
func (s *imapSession) settle(ctx context.Context, r *ingestRun) ([]imap.UID, error) {
	if r.err != nil {
		return nil, fmt.Errorf("ingest: %w", r.err)
	}
	s.p.failpoint(FailAfterCommit)
	s.p.log.Debug("chunk ingested", "messages", len(r.ids), "ingest", time.Since(r.started))
	ids := r.ids
	for _, o := range r.outs {
		ids = append(ids, o.RawID)
	}
	return s.p.processedUIDs(ctx, processedByID, s.uidValidity, ids)
}

// listNew returns the UIDs above the checkpoint with their sizes, in UID order. The answer is
// streamed and only UID and size are kept (16 bytes a message), so even a first run over a huge
// folder stays small.
func (s *imapSession) listNew(ctx context.Context) ([]newMessage, error) {
	defer s.guard(ctx)()
	// "last+1:*" includes the highest UID even when it is not above last (RFC 3501 §6.4.8), so
	// the answer is filtered.
	set := imap.UIDSet{{Start: imap.UID(s.lastUID + 1), Stop: 0}}
	cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true})
	var out []newMessage
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		b, err := msg.Collect()
		if err != nil {
			cmd.Close()
			return nil, fmt.Errorf("fetch new uids: %w", err)
		}
		if uint32(b.UID) > s.lastUID {
			out = append(out, newMessage{uid: b.UID, size: b.RFC822Size})
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("fetch new uids: %w", err)
	}
	slices.SortFunc(out, func(a, b newMessage) int { return cmp.Compare(a.uid, b.uid) })
	return out, nil
}

// storeNew fetches the chunk's bodies (BODY.PEEK[] leaves \Seen alone, RFC 3501 §6.4.5) and stores
// them with the advanced checkpoint in one transaction; it returns their raw mail ids and, by id,
// the pending ones it inserted, for the ingest to use without reading them back.
func (s *imapSession) storeNew(ctx context.Context, chunk []newMessage) ([]int64, map[int64]*RawMail, error) {
	start := time.Now()
	var want imap.UIDSet
	for _, m := range chunk {
		if m.size <= s.p.o.MaxMessageBytes {
			want.AddNum(m.uid)
		}
	}
	bodies := map[imap.UID][]byte{}
	if len(want) > 0 {
		section := &imap.FetchItemBodySection{Peek: true}
		done := s.guard(ctx)
		bufs, err := s.c.Fetch(want, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		done()
		if err != nil {
			return nil, nil, fmt.Errorf("fetch messages %s: %w", want, err)
		}
		for _, b := range bufs {
			if raw := b.FindBodySection(section); raw != nil {
				bodies[b.UID] = raw
			}
		}
	}
	raws := make([]RawMail, 0, len(chunk))
	for _, m := range chunk {
		if m.size > s.p.o.MaxMessageBytes {
			raws = append(raws, NewRaw(s.p.mb.Name, s.uidValidity, uint32(m.uid), nil, m.size, s.p.o.MaxMessageBytes))
			s.p.log.Warn("message over the size cap left in the mailbox", "uid", m.uid, "size", m.size)
			continue
		}
		raw, ok := bodies[m.uid]
		if !ok { // expunged by someone else since it was listed; its UID is never reused
			s.p.log.Info("message vanished before it was fetched", "uid", m.uid)
			continue
		}
		raws = append(raws, NewRaw(s.p.mb.Name, s.uidValidity, uint32(m.uid), raw, int64(len(raw)), s.p.o.MaxMessageBytes))
	}
	upTo := uint32(chunk[len(chunk)-1].uid)
	stored := time.Now()
	// Parse while the chunk is written, unless it is large: then the parse waits for the write's
	// buffers to be freed, so a 25 MB attachment is not held decoded and encoded at once.
	parsed := func() {}
	if total := chunkSize(raws); total <= overlapBytes {
		parsed = s.p.ing.prepareAhead(raws)
	}
	ids, err := s.p.storeChunk(ctx, s.uidValidity, raws, upTo)
	parsed()
	if err != nil {
		return nil, nil, err
	}
	fresh := make(map[int64]*RawMail, len(raws))
	for i := range raws {
		if r := &raws[i]; r.ID != 0 && !r.ReceivedAt.IsZero() && r.State == StatePending && r.Raw != nil {
			fresh[r.ID] = r
		}
	}
	s.lastUID = upTo
	s.p.log.Debug("chunk stored", "messages", len(chunk), "up_to_uid", upTo, "fetch", stored.Sub(start), "store", time.Since(stored))
	s.p.failpoint(FailAfterStore)
	return ids, fresh, nil
}

// chunkSize is the raw bytes of raws.
func chunkSize(raws []RawMail) int64 {
	var n int64
	for i := range raws {
		n += int64(len(raws[i].Raw))
	}
	return n
}

// storeChunk stores raws and advances the checkpoint to upTo in one transaction: once it commits,
// the messages are safe and will never be fetched again under this UIDVALIDITY.
func (p *Poller) storeChunk(ctx context.Context, uidValidity uint32, raws []RawMail, upTo uint32) ([]int64, error) {
	var ids []int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		if ids, err = StoreRaws(ctx, tx, raws); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE mailbox_state SET last_uid = GREATEST(last_uid, $3), updated_at = now()
			WHERE mailbox = $1 AND uidvalidity = $2`, p.mb.Name, int64(uidValidity), int64(upTo))
		if err != nil {
			return fmt.Errorf("advance checkpoint: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("advance checkpoint: mailbox_state of %s is not at UIDVALIDITY %d", p.mb.Name, uidValidity)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %d messages up to uid %d: %w", len(raws), upTo, err)
	}
	return ids, nil
}

// The look-ups of processedUIDs: $1 the keys, $2 the mailbox, $3 the UIDVALIDITY.
const (
	processedByUID = `SELECT uid FROM raw_mails
		WHERE mailbox = $2 AND uidvalidity = $3 AND uid = ANY($1) AND state <> 'pending' AND raw IS NOT NULL
		ORDER BY uid`
	// By raw mail id only the primary key may narrow it: with "mailbox = $2" the planner, on
	// statistics that lag a bulk load, walked the mailbox's whole (mailbox, uidvalidity, uid) index
	// testing every row against the array (10 ms a chunk at 10,000 rows). IS NOT DISTINCT FROM is
	// not indexable, so mailbox and UIDVALIDITY are only checked on the rows the ids find.
	processedByID = `SELECT uid FROM raw_mails
		WHERE id = ANY($1) AND (mailbox, uidvalidity) IS NOT DISTINCT FROM ($2, $3)
		  AND state <> 'pending' AND raw IS NOT NULL
		ORDER BY uid`
)

// processedUIDs returns, in UID order, the UIDs under uidValidity of this mailbox's raw mail found
// by query (processedByUID or processedByID) for keys, that is done with (not pending) and was
// fetched (oversize mail stays unseen).
func (p *Poller) processedUIDs(ctx context.Context, query string, uidValidity uint32, keys []int64) ([]imap.UID, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, query, keys, p.mb.Name, int64(uidValidity))
	if err != nil {
		return nil, fmt.Errorf("look up processed messages: %w", err)
	}
	uids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (imap.UID, error) {
		var u int64
		err := r.Scan(&u)
		return imap.UID(u), err
	})
	if err != nil {
		return nil, fmt.Errorf("look up processed messages: %w", err)
	}
	return uids, nil
}

// markDone sets \Seen on processed messages and moves them to the processed folder when one is
// configured: MOVE (RFC 6851), or UID COPY + \Deleted + UID EXPUNGE (RFC 4315) of exactly those
// UIDs, or a plain EXPUNGE on a server without UIDPLUS. Every step is idempotent.
func (s *imapSession) markDone(ctx context.Context, uids []imap.UID) error {
	for len(uids) > 0 {
		n := min(len(uids), flagBatch)
		set := imap.UIDSetNum(uids[:n]...)
		uids = uids[n:]
		s.p.failpoint(FailBeforeSeen)
		if err := s.flagAndMove(ctx, set); err != nil {
			return err
		}
	}
	return nil
}

func (s *imapSession) flagAndMove(ctx context.Context, set imap.UIDSet) error {
	defer s.guard(ctx)()
	seen := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
	if err := s.c.Store(set, seen, nil).Close(); err != nil {
		return fmt.Errorf("store \\Seen on %s: %w", set, err)
	}
	dest := s.p.mb.ProcessedFolder
	if dest == "" {
		return nil
	}
	if s.canMove && !s.p.o.DisableMove {
		if _, err := s.c.Move(set, dest).Wait(); err != nil {
			return fmt.Errorf("move %s to %s: %w", set, dest, err)
		}
		return nil
	}
	if _, err := s.c.Copy(set, dest).Wait(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", set, dest, err)
	}
	deleted := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := s.c.Store(set, deleted, nil).Close(); err != nil {
		return fmt.Errorf("store \\Deleted on %s: %w", set, err)
	}
	var expunge *imapclient.ExpungeCommand
	if s.canUIDPlus {
		expunge = s.c.UIDExpunge(set)
	} else {
		expunge = s.c.Expunge() // RFC 3501 §6.4.3: also removes others' \Deleted messages
	}
	if err := expunge.Close(); err != nil {
		return fmt.Errorf("expunge %s: %w", set, err)
	}
	return nil
}

func uidInts(uids []imap.UID) []int64 {
	out := make([]int64, len(uids))
	for i, u := range uids {
		out[i] = int64(u)
	}
	return out
}
