-- Schema version 2: display names, given by an admin ("Alice Example" beside
-- alice@example.test). '' is none: the address is shown alone. (SQLite's
-- version 3.) The users trigger counts the change, so relays push it.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
