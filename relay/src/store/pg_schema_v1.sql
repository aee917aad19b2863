-- Shieldcall store on PostgreSQL, schema version 1: the SQLite schema's versions 1
-- and 2 in one (PostgreSQL started later). Applied once, in one transaction, under
-- the migration lock (see postgres.rs). The SQLite schema's column `user` is
-- `user_name` here: USER is a reserved word in PostgreSQL.

-- A counter bumped by triggers on every change that can alter what a signed-in
-- user sees (policies, assignments, switches, groups, tenants). The relay polls it,
-- so changes made by the CLI reach open sessions. One row per change, as on SQLite.
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    changes BIGINT NOT NULL
);
INSERT INTO meta (id, changes) VALUES (1, 0);

CREATE TABLE tenants (
    domain TEXT PRIMARY KEY,
    external_access TEXT NOT NULL DEFAULT 'allow-all'
        CHECK (external_access IN ('allow-all', 'allow-list', 'block')),
    -- Comma-separated domains for 'allow-list'.
    allowed_domains TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    domain TEXT NOT NULL REFERENCES tenants (domain),
    password_hash TEXT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    -- NULL: the user never touched the switch; the policy's default applies.
    e2ee_switch BOOLEAN
);

CREATE TABLE groups (
    domain TEXT NOT NULL REFERENCES tenants (domain),
    name TEXT NOT NULL,
    PRIMARY KEY (domain, name)
);

CREATE TABLE members (
    domain TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    PRIMARY KEY (domain, group_name, user_name),
    FOREIGN KEY (domain, group_name) REFERENCES groups (domain, name) ON DELETE CASCADE
);
CREATE INDEX members_by_user ON members (user_name);

CREATE TABLE policies (
    domain TEXT NOT NULL REFERENCES tenants (domain),
    identity TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    calling_e2ee TEXT NOT NULL,
    PRIMARY KEY (domain, identity)
);

CREATE TABLE assignments (
    domain TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'group', 'global')),
    -- User or group name; '' for 'global'.
    target TEXT NOT NULL,
    rank BIGINT,
    policy TEXT NOT NULL,
    PRIMARY KEY (domain, kind, target),
    FOREIGN KEY (domain, policy) REFERENCES policies (domain, identity) ON DELETE CASCADE
);

CREATE TABLE sessions (
    -- Insertion order, to end a user's oldest sessions first (SQLite's rowid).
    id BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);

CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    domain TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX audit_by_domain ON audit (domain, id);

CREATE TABLE call_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    peer TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
    outcome TEXT NOT NULL
        CHECK (outcome IN ('answered', 'missed', 'declined', 'not-answered', 'refused')),
    -- NULL: refused before the call had a mode.
    mode TEXT CHECK (mode IN ('e2ee', 'standard')),
    at BIGINT NOT NULL,
    duration_secs BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX call_history_by_user ON call_history (user_name, id);

CREATE FUNCTION shieldcall_bump_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meta SET changes = changes + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

-- Row-level, as SQLite's triggers: one change per row written.
CREATE TRIGGER tenants_changes AFTER INSERT OR UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION shieldcall_bump_changes();
CREATE TRIGGER users_changes AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION shieldcall_bump_changes();
CREATE TRIGGER groups_changes AFTER DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION shieldcall_bump_changes();
CREATE TRIGGER members_changes AFTER INSERT OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION shieldcall_bump_changes();
CREATE TRIGGER policies_changes AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION shieldcall_bump_changes();
CREATE TRIGGER assignments_changes AFTER INSERT OR UPDATE OR DELETE ON assignments
    FOR EACH ROW EXECUTE FUNCTION shieldcall_bump_changes();
