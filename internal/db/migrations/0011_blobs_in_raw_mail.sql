-- An attachment of received mail is not copied into blobs: its content already is in the raw mail
-- it came with (base64 or quoted-printable), which deskd never deletes. Such a blob row names the raw
-- mail and the attachment's position in it (raw_part, 1-based, in parse order) instead of holding
-- data, and is decoded from there when read (tickets.Store.AttachmentData, checked against sha256).
-- Copying it cost the ingest a second write of every attachment: 98 of the 255 MB of out-of-line
-- values that `deskd bench --messages 10000` writes, and a sixth of PostgreSQL's CPU went to TOAST.
ALTER TABLE blobs ALTER COLUMN data DROP NOT NULL,
    ADD COLUMN raw_mail_id bigint REFERENCES raw_mails (id),
    ADD COLUMN raw_part int,
    ADD CONSTRAINT blobs_data_or_raw_part CHECK ((data IS NULL) = (raw_mail_id IS NOT NULL AND raw_part > 0));
