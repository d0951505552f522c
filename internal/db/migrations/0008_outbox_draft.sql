-- Mail caused by a ticket change may be written as a draft instead of rendered bytes: the template
-- name and the typed view it is rendered from (JSON, composed by the notifier), plus the headers the
-- transaction fixed (Message-ID, Date, recipients, threading). The sender renders it just before
-- delivery, so the ingest transaction no longer runs the templates and the MIME writer, and stores a
-- third of the bytes. Exactly one of raw and draft is set.
ALTER TABLE outbox ALTER COLUMN raw DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN draft bytea;
ALTER TABLE outbox ADD CONSTRAINT outbox_raw_or_draft CHECK ((raw IS NULL) <> (draft IS NULL));
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN draft SET STORAGE EXTENDED, ALTER COLUMN draft SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this PostgreSQL build; keeping the default compression';
END;
$$;
