-- Every outbox row is written once and updated twice by the sender (claimed, then sent). The
-- updates change indexed columns, so each new row version is entered in every index of the table:
-- per mail, that was 3 x 7 btree entries, half of all index writes of an ingest. Two indexes go:
--  * one (ticket_id, created_at) index serves both the ticket's mail look-ups and the per-ticket rate
--    count (the count filters a ticket's few rows on auto_submitted and status);
--  * the global flood guard's count over the last hour, read at most every 2 s, scans a BRIN index on
--    created_at (rows arrive in created_at order), which costs nothing to maintain.
DROP INDEX outbox_ticket_idx;
DROP INDEX outbox_rate_ticket_idx;
DROP INDEX outbox_rate_global_idx;
CREATE INDEX outbox_ticket_idx ON outbox (ticket_id, created_at);
CREATE INDEX outbox_created_brin ON outbox USING brin (created_at);
-- outbox_rate is a ledger for rate counts, not a child of outbox: its foreign key made every entry
-- lock (and WAL-log a lock on) the outbox row it counts.
ALTER TABLE outbox_rate DROP CONSTRAINT outbox_rate_outbox_id_fkey;
