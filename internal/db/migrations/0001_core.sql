-- deskd core schema: tickets, messages, raw inbound mail, outbox, audit events.
-- Every table that must survive a restart lives here (DESIGN.md invariant 3).

-- contacts: every address deskd has seen, with delivery state.
CREATE TABLE contacts (
    email              text PRIMARY KEY CHECK (email = lower(email)),
    name               text NOT NULL DEFAULT '',
    language           text NOT NULL DEFAULT '',
    undeliverable_at   timestamptz,
    undeliverable_why  text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- Ticket numbers come from one sequence shared by all key prefixes (SD-1000, CHG-1001, ...):
-- nextval never blocks concurrent creators, and a rolled-back creation only leaves a gap.
CREATE SEQUENCE ticket_number_seq START 1000;

CREATE TABLE tickets (
    id                 bigserial PRIMARY KEY,
    prefix             text NOT NULL,
    number             bigint NOT NULL,
    key                text NOT NULL UNIQUE,
    kind               text NOT NULL CHECK (kind IN ('incident', 'request', 'problem', 'change')),
    status             text NOT NULL CHECK (status IN ('new', 'open', 'pending', 'resolved', 'closed')),
    priority           text NOT NULL CHECK (priority IN ('P1', 'P2', 'P3', 'P4')),
    queue              text NOT NULL,
    requester          text NOT NULL REFERENCES contacts (email),
    assignee           text,
    subject            text NOT NULL,
    language           text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    first_response_at  timestamptz,
    resolved_at        timestamptz,
    closed_at          timestamptz,
    UNIQUE (prefix, number)
);
CREATE INDEX tickets_status_queue_idx ON tickets (status, queue);
CREATE INDEX tickets_assignee_idx ON tickets (assignee) WHERE assignee IS NOT NULL;
CREATE INDEX tickets_requester_idx ON tickets (requester);

-- mailbox_state is the IMAP checkpoint per configured mailbox (RFC 3501 §2.3.1.1).
CREATE TABLE mailbox_state (
    mailbox      text PRIMARY KEY,
    uidvalidity  bigint NOT NULL,
    last_uid     bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- raw_mails holds every accepted inbound message, stored before anything else can fail.
CREATE TABLE raw_mails (
    id                 bigserial PRIMARY KEY,
    mailbox            text NOT NULL,
    uidvalidity        bigint NOT NULL,
    uid                bigint NOT NULL,
    message_id         text NOT NULL DEFAULT '',
    sha256             bytea NOT NULL,
    size               bigint NOT NULL,
    raw                bytea,                      -- NULL only when oversize (quarantined, size recorded)
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'ingested', 'quarantined', 'duplicate', 'ignored')),
    reason             text NOT NULL DEFAULT '',
    attempts           int NOT NULL DEFAULT 0,
    received_at        timestamptz NOT NULL DEFAULT now(),
    processed_at       timestamptz,
    UNIQUE (mailbox, uidvalidity, uid)
);
CREATE INDEX raw_mails_pending_idx ON raw_mails (id) WHERE state = 'pending';
CREATE INDEX raw_mails_quarantined_idx ON raw_mails (id) WHERE state = 'quarantined';
CREATE INDEX raw_mails_message_id_idx ON raw_mails (message_id) WHERE message_id <> '';  -- duplicate check

CREATE TABLE messages (
    id             bigserial PRIMARY KEY,
    ticket_id      bigint NOT NULL REFERENCES tickets (id),
    raw_mail_id    bigint UNIQUE REFERENCES raw_mails (id),   -- one raw mail is ingested at most once
    direction      text NOT NULL CHECK (direction IN ('in', 'out')),
    visibility     text NOT NULL CHECK (visibility IN ('public', 'internal')),
    class          text NOT NULL DEFAULT 'normal'
                   CHECK (class IN ('normal', 'bounce', 'report', 'autoreply', 'mdn', 'list', 'loop', 'note')),
    author_kind    text NOT NULL CHECK (author_kind IN ('user', 'agent', 'rule', 'sla', 'system')),
    author         text NOT NULL DEFAULT '',
    message_id     text NOT NULL,          -- as written, without angle brackets; compared lower-cased
    in_reply_to    text NOT NULL DEFAULT '',
    refs           text[] NOT NULL DEFAULT '{}',
    from_addr      text NOT NULL DEFAULT '',
    from_name      text NOT NULL DEFAULT '',
    to_addrs       text[] NOT NULL DEFAULT '{}',
    cc_addrs       text[] NOT NULL DEFAULT '{}',
    subject        text NOT NULL DEFAULT '',
    body_text      text NOT NULL DEFAULT '',
    visible_text   text NOT NULL DEFAULT '',
    body_html      text NOT NULL DEFAULT '',
    thread_reason  text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL
);
CREATE INDEX messages_ticket_idx ON messages (ticket_id, id);
CREATE INDEX messages_message_id_idx ON messages (lower(message_id));

CREATE TABLE participants (
    ticket_id  bigint NOT NULL REFERENCES tickets (id),
    email      text NOT NULL CHECK (email = lower(email)),
    role       text NOT NULL CHECK (role IN ('requester', 'watcher', 'agent')),
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, email, role)
);
CREATE INDEX participants_email_idx ON participants (email);

-- blobs stores attachment content once per SHA-256.
CREATE TABLE blobs (
    sha256   bytea PRIMARY KEY,
    size     bigint NOT NULL,
    data     bytea NOT NULL
);

CREATE TABLE attachments (
    id            bigserial PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages (id),
    sha256        bytea NOT NULL REFERENCES blobs (sha256),
    filename      text NOT NULL DEFAULT '',
    content_type  text NOT NULL DEFAULT 'application/octet-stream',
    content_id    text NOT NULL DEFAULT '',
    inline        boolean NOT NULL DEFAULT false,
    size          bigint NOT NULL
);
CREATE INDEX attachments_message_idx ON attachments (message_id);

-- events is the append-only audit log of every ticket change.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    at          timestamptz NOT NULL,
    actor_kind  text NOT NULL CHECK (actor_kind IN ('user', 'agent', 'rule', 'sla', 'system')),
    actor       text NOT NULL DEFAULT '',
    kind        text NOT NULL,
    before      text NOT NULL DEFAULT '',
    after       text NOT NULL DEFAULT '',
    why         text NOT NULL DEFAULT '',
    message_id  bigint REFERENCES messages (id)
);
CREATE INDEX events_ticket_idx ON events (ticket_id, id);
CREATE RULE events_no_update AS ON UPDATE TO events DO INSTEAD NOTHING;
CREATE RULE events_no_delete AS ON DELETE TO events DO INSTEAD NOTHING;

CREATE TABLE ticket_links (
    from_ticket  bigint NOT NULL REFERENCES tickets (id),
    to_ticket    bigint NOT NULL REFERENCES tickets (id),
    kind         text NOT NULL CHECK (kind IN ('problem_incident', 'related', 'duplicate', 'follow_up')),
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (from_ticket, to_ticket, kind),
    CHECK (from_ticket <> to_ticket)
);
CREATE INDEX ticket_links_to_idx ON ticket_links (to_ticket);

-- outbox holds every outbound mail, written in the transaction of the change that causes it
-- (DESIGN.md invariant 2) and drained by mailout with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    ticket_id        bigint REFERENCES tickets (id),
    kind             text NOT NULL,             -- template name: ack, agent_new, reply, status, ...
    message_id       text NOT NULL,             -- canonical Message-ID, fixed at enqueue so retries reuse it
    mail_from        text NOT NULL,             -- SMTP envelope sender
    rcpt_to          text[] NOT NULL,
    raw              bytea NOT NULL,            -- the rendered RFC 5322 message
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'suppressed')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    deadline         timestamptz NOT NULL,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_ticket_idx ON outbox (ticket_id);
CREATE INDEX outbox_message_id_idx ON outbox (message_id);  -- threading replies to mail still in the outbox

-- Mail bytes are stored out of line without compression: pglz on every rendered or received message
-- costs more CPU on the ingest path than the disk it saves (attachments are mostly compressed already).
ALTER TABLE raw_mails ALTER COLUMN raw SET STORAGE EXTERNAL;
ALTER TABLE outbox ALTER COLUMN raw SET STORAGE EXTERNAL;
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
