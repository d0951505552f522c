-- A message records how many attachments it has, written with the message row (its attachments are
-- inserted in the same transaction). Listing a ticket's messages then reads the attachments table
-- only for the messages that have some: most tickets have none, and every reply's notification
-- lists its ticket's messages. Until the table's first ANALYZE the planner reads a young desk's
-- attachments by sequential scan, so that look-up grew with the desk's history.
ALTER TABLE messages ADD COLUMN attachment_count int NOT NULL DEFAULT 0;
UPDATE messages m SET attachment_count = a.n
FROM (SELECT message_id, count(*) AS n FROM attachments GROUP BY message_id) a
WHERE m.id = a.message_id;
