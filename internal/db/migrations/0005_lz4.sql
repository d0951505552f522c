-- Rendered outbound mail is mostly text and halves under lz4 (6.4 KB -> 3 KB in the bench's mix), so
-- each row needs half the TOAST chunks it did stored raw; the message bodies use lz4 instead of pglz,
-- which cost several times the CPU per byte on the ingest path. Received mail (raw_mails.raw) stays
-- uncompressed: attachments are mostly compressed already, and lz4 saved 6% of its bytes.
-- A server built without lz4 keeps the previous settings (the mail is the same either way).
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN raw SET STORAGE EXTENDED, ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE messages ALTER COLUMN body_text SET COMPRESSION lz4,
        ALTER COLUMN visible_text SET COMPRESSION lz4, ALTER COLUMN body_html SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this PostgreSQL build; keeping the default compression';
END;
$$;
