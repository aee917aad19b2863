-- Schema version 4: every counted change also sends a notification on channel
-- `shieldcall_changes`, delivered when its transaction commits (PostgreSQL
-- folds a transaction's identical notifications into one). Relays LISTEN on
-- it and reload at once what the CLI or another process changed; their poll of
-- the counter stays, as the safety net for a notification lost while a
-- listening connection was down.
CREATE OR REPLACE FUNCTION shieldcall_bump_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meta SET changes = changes + 1 WHERE id = 1;
    PERFORM pg_notify('shieldcall_changes', '');
    RETURN NULL;
END;
$$;
