-- A message's visible text (its new text, quoted history stripped) is NULL when it is the whole
-- text: most mail quotes nothing, and storing, compressing and logging the same body twice was a
-- fifth of the bytes each new ticket wrote. Readers take coalesce(visible_text, body_text).
ALTER TABLE messages ALTER COLUMN visible_text DROP NOT NULL, ALTER COLUMN visible_text DROP DEFAULT;
UPDATE messages SET visible_text = NULL WHERE visible_text = body_text;
