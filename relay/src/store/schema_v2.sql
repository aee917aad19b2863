-- Schema version 2: the call history (one row per person per call; see
-- relay/src/hub/history.rs). A user's rows go with the user.
CREATE TABLE call_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    peer TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
    outcome TEXT NOT NULL
        CHECK (outcome IN ('answered', 'missed', 'declined', 'not-answered', 'refused')),
    -- NULL: refused before the call had a mode.
    mode TEXT CHECK (mode IN ('e2ee', 'standard')),
    at INTEGER NOT NULL,
    duration_secs INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX call_history_by_user ON call_history (user, id);
