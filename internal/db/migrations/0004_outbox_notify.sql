-- Wake the outbox sender at commit time instead of at its next poll: every statement that inserts
-- outbox rows sends one notification on channel deskd_outbox (delivered when the transaction
-- commits; identical notifications of one transaction are folded into one). The sender still polls
-- as a fallback, so a lost notification only delays mail, never loses it.
CREATE FUNCTION deskd_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('deskd_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION deskd_outbox_notify();
