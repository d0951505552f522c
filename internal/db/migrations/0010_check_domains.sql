-- The one-column CHECK constraints (enumerated states and kinds, lower-case addresses) become
-- domains. A table's CHECK constraints are parsed from their stored text and planned again by every
-- INSERT or UPDATE statement that writes the table (ExecRelCheck), which cost 22 µs per statement
-- on a 4-check table here and 6% of PostgreSQL's time on the ingest path (11 checks in a ticket's
-- creating statement). A domain's constraints are parsed and planned once per connection (typcache).
-- The values allowed are the same. Clients see the base type: PostgreSQL describes a domain column
-- as its base type, text.
--
-- Each column first becomes a domain without a constraint (text to such a domain needs no table
-- rewrite), then the domain gets its constraint (ALTER DOMAIN ADD CONSTRAINT checks the stored rows).
CREATE DOMAIN lower_email AS text;
CREATE DOMAIN ticket_kind AS text;
CREATE DOMAIN ticket_status AS text;
CREATE DOMAIN ticket_priority AS text;
CREATE DOMAIN raw_mail_state AS text;
CREATE DOMAIN message_direction AS text;
CREATE DOMAIN message_visibility AS text;
CREATE DOMAIN message_class AS text;
CREATE DOMAIN actor_kind AS text;
CREATE DOMAIN participant_role AS text;
CREATE DOMAIN link_kind AS text;
CREATE DOMAIN outbox_status AS text;
CREATE DOMAIN auto_submitted AS text;

ALTER TABLE contacts DROP CONSTRAINT contacts_email_check, ALTER COLUMN email TYPE lower_email;
ALTER TABLE tickets DROP CONSTRAINT tickets_kind_check, DROP CONSTRAINT tickets_status_check,
    DROP CONSTRAINT tickets_priority_check,
    ALTER COLUMN kind TYPE ticket_kind, ALTER COLUMN status TYPE ticket_status,
    ALTER COLUMN priority TYPE ticket_priority;
ALTER TABLE raw_mails DROP CONSTRAINT raw_mails_state_check, ALTER COLUMN state TYPE raw_mail_state;
ALTER TABLE messages DROP CONSTRAINT messages_direction_check, DROP CONSTRAINT messages_visibility_check,
    DROP CONSTRAINT messages_class_check, DROP CONSTRAINT messages_author_kind_check,
    ALTER COLUMN direction TYPE message_direction, ALTER COLUMN visibility TYPE message_visibility,
    ALTER COLUMN class TYPE message_class, ALTER COLUMN author_kind TYPE actor_kind;
ALTER TABLE participants DROP CONSTRAINT participants_email_check, DROP CONSTRAINT participants_role_check,
    ALTER COLUMN email TYPE lower_email, ALTER COLUMN role TYPE participant_role;
ALTER TABLE events DROP CONSTRAINT events_actor_kind_check, ALTER COLUMN actor_kind TYPE actor_kind;
ALTER TABLE ticket_links DROP CONSTRAINT ticket_links_kind_check, ALTER COLUMN kind TYPE link_kind;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check, DROP CONSTRAINT outbox_auto_submitted_check,
    ALTER COLUMN status TYPE outbox_status, ALTER COLUMN auto_submitted TYPE auto_submitted;

ALTER DOMAIN lower_email ADD CONSTRAINT lower_email_check CHECK (VALUE = lower(VALUE));
ALTER DOMAIN ticket_kind ADD CONSTRAINT ticket_kind_check
    CHECK (VALUE IN ('incident', 'request', 'problem', 'change'));
ALTER DOMAIN ticket_status ADD CONSTRAINT ticket_status_check
    CHECK (VALUE IN ('new', 'open', 'pending', 'resolved', 'closed'));
ALTER DOMAIN ticket_priority ADD CONSTRAINT ticket_priority_check CHECK (VALUE IN ('P1', 'P2', 'P3', 'P4'));
ALTER DOMAIN raw_mail_state ADD CONSTRAINT raw_mail_state_check
    CHECK (VALUE IN ('pending', 'ingested', 'quarantined', 'duplicate', 'ignored'));
ALTER DOMAIN message_direction ADD CONSTRAINT message_direction_check CHECK (VALUE IN ('in', 'out'));
ALTER DOMAIN message_visibility ADD CONSTRAINT message_visibility_check CHECK (VALUE IN ('public', 'internal'));
ALTER DOMAIN message_class ADD CONSTRAINT message_class_check
    CHECK (VALUE IN ('normal', 'bounce', 'report', 'autoreply', 'mdn', 'list', 'loop', 'note'));
ALTER DOMAIN actor_kind ADD CONSTRAINT actor_kind_check CHECK (VALUE IN ('user', 'agent', 'rule', 'sla', 'system'));
ALTER DOMAIN participant_role ADD CONSTRAINT participant_role_check
    CHECK (VALUE IN ('requester', 'watcher', 'agent'));
ALTER DOMAIN link_kind ADD CONSTRAINT link_kind_check
    CHECK (VALUE IN ('problem_incident', 'related', 'duplicate', 'follow_up'));
ALTER DOMAIN outbox_status ADD CONSTRAINT outbox_status_check
    CHECK (VALUE IN ('pending', 'sending', 'sent', 'dead', 'suppressed'));
ALTER DOMAIN auto_submitted ADD CONSTRAINT auto_submitted_check
    CHECK (VALUE IN ('', 'auto-replied', 'auto-generated'));
