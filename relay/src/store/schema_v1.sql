-- Shieldcall store, schema version 1 (SQLite). Applied once, in one transaction.

-- A counter bumped by triggers on every change that can alter what a signed-in
-- user sees (policies, assignments, switches, groups, tenants). The relay polls it,
-- so changes made by the CLI in another process reach open sessions.
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    changes INTEGER NOT NULL
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
    admin INTEGER NOT NULL DEFAULT 0,
    -- NULL: the user never touched the switch; the policy's default applies.
    e2ee_switch INTEGER
);

CREATE TABLE groups (
    domain TEXT NOT NULL REFERENCES tenants (domain),
    name TEXT NOT NULL,
    PRIMARY KEY (domain, name)
);

CREATE TABLE members (
    domain TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    PRIMARY KEY (domain, group_name, user),
    FOREIGN KEY (domain, group_name) REFERENCES groups (domain, name) ON DELETE CASCADE
);

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
    rank INTEGER,
    policy TEXT NOT NULL,
    PRIMARY KEY (domain, kind, target),
    FOREIGN KEY (domain, policy) REFERENCES policies (domain, identity) ON DELETE CASCADE
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    domain TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX audit_by_domain ON audit (domain, id);

CREATE TRIGGER tenants_ins AFTER INSERT ON tenants BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER tenants_upd AFTER UPDATE ON tenants BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER users_ins AFTER INSERT ON users BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER users_upd AFTER UPDATE ON users BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER users_del AFTER DELETE ON users BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER groups_del AFTER DELETE ON groups BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER members_ins AFTER INSERT ON members BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER members_del AFTER DELETE ON members BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER policies_ins AFTER INSERT ON policies BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER policies_upd AFTER UPDATE ON policies BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER policies_del AFTER DELETE ON policies BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER assignments_ins AFTER INSERT ON assignments BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER assignments_upd AFTER UPDATE ON assignments BEGIN UPDATE meta SET changes = changes + 1; END;
CREATE TRIGGER assignments_del AFTER DELETE ON assignments BEGIN UPDATE meta SET changes = changes + 1; END;
