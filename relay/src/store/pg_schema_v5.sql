-- Schema version 5: the short-lived rows of the cluster configuration (several
-- relay nodes on one database, with a message bus between them): which nodes
-- live (a lease each), which devices are connected to which node, the calls in
-- progress and who is busy in one. PostgreSQL is the one arbiter of the races
-- between nodes: each is decided by one conditional write on these rows (see
-- relay/src/cluster.rs). Every deadline is compared with the database's clock.
--
-- UNLOGGED: not written to the WAL, so a crash of PostgreSQL empties them. That
-- equals a restart of every relay, which the browsers' `resume` repairs; a
-- relay with no bus never writes them.
CREATE UNLOGGED TABLE cluster_nodes (
    id TEXT PRIMARY KEY,
    -- Past this, the node is dead: it may not renew, and any node reaps it.
    lease_until TIMESTAMPTZ NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE UNLOGGED TABLE cluster_devices (
    node TEXT NOT NULL REFERENCES cluster_nodes (id) ON DELETE CASCADE,
    -- The node's number for the connection (unique on that node).
    device BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    -- The session's token hash (as in `sessions`), for signing a session out
    -- on every node.
    session_hash TEXT NOT NULL,
    PRIMARY KEY (node, device)
);
CREATE INDEX cluster_devices_user ON cluster_devices (user_name);

CREATE UNLOGGED TABLE cluster_calls (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL CHECK (callee <> caller),
    state TEXT NOT NULL CHECK (state IN ('ringing', 'answered')),
    -- The node whose hub carries the call (where it was placed): every
    -- message of the call goes through it.
    home_node TEXT NOT NULL,
    -- Where each side's bound device is; NULL while that side's node is gone
    -- and the call waits for it to come back (`grace_until`). The callee's is
    -- NULL until the call is answered.
    caller_node TEXT,
    caller_device BIGINT,
    callee_node TEXT,
    callee_device BIGINT,
    ring_until TIMESTAMPTZ NOT NULL,
    -- Set when the home died with the call answered: until then, the first
    -- node one of its people resumes through takes it over (`home_node`).
    grace_until TIMESTAMPTZ,
    placed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- A user is busy while a row names them: taken for both people of a call in
-- one transaction, in the order of their names, so that two calls crossing
-- each other cannot both take them and cannot wait on each other.
CREATE UNLOGGED TABLE cluster_busy (
    user_name TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES cluster_calls (id) ON DELETE CASCADE
);
CREATE INDEX cluster_busy_call ON cluster_busy (call_id);

-- The key call ids are made with (`hub::CallKey`), one for every node, so that
-- any node can check a `resume` of a call another node set up. Logged: it
-- must outlive a crash, or resumes after one fail.
CREATE TABLE cluster_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BYTEA NOT NULL CHECK (length(key) = 32)
);

-- Sign-in attempts, counted across the nodes (each node counting its own would
-- let a guesser spread over N nodes try N times as often). Keys as in
-- auth::LoginLimiter; rows older than its window are deleted as attempts come.
CREATE UNLOGGED TABLE cluster_signins (
    key TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cluster_signins_key ON cluster_signins (key, at);
CREATE INDEX cluster_signins_at ON cluster_signins (at);
CREATE SEQUENCE cluster_signin_attempts;
