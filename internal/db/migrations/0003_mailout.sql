-- mailout: what the sender's lease scan, the rate limits and the loop breaker need beyond 0001.

-- auto_submitted is the RFC 3834 §5 Auto-Submitted value of the mail ('' for human-authored mail).
-- Rate limits count automated mail only.
ALTER TABLE outbox ADD COLUMN auto_submitted text NOT NULL DEFAULT ''
    CHECK (auto_submitted IN ('', 'auto-replied', 'auto-generated'));

-- The claim scan takes due pending rows and 'sending' rows whose lease (next_attempt_at) expired
-- after a crashed sender; one partial index serves both, so the pending-only one goes.
DROP INDEX outbox_due_idx;
CREATE INDEX outbox_claim_idx ON outbox (next_attempt_at) WHERE status IN ('pending', 'sending');

-- Rate-limit counts: automated, not suppressed, in the last hour; per recipient, per ticket, global.
-- Per-recipient rate counting: one row per recipient of each automated, unsuppressed mail, so the
-- count for one address in the last hour is a short btree range scan (a GIN index on rcpt_to made
-- every count scan the GIN pending list under heavy insert load).
CREATE TABLE outbox_rate (
    outbox_id   bigint NOT NULL REFERENCES outbox (id),
    email       text NOT NULL,
    ticket_id   bigint,
    created_at  timestamptz NOT NULL
);
CREATE INDEX outbox_rate_email_idx ON outbox_rate (email, created_at);
CREATE INDEX outbox_rate_ticket_idx ON outbox (ticket_id, created_at)
    WHERE auto_submitted <> '' AND status <> 'suppressed';
CREATE INDEX outbox_rate_global_idx ON outbox (created_at)
    WHERE auto_submitted <> '' AND status <> 'suppressed';

-- mail_breakers holds the loop circuit breaker per ticket: while tripped_at is within the cool-down,
-- automated mail about the ticket is suppressed. INSERT .. ON CONFLICT decides who trips it, so the
-- queue's agents are told once per trip.
CREATE TABLE mail_breakers (
    ticket_id   bigint PRIMARY KEY REFERENCES tickets (id),
    tripped_at  timestamptz NOT NULL,
    why         text NOT NULL
);
