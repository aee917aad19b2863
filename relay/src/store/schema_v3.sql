-- Schema version 3: display names, given by an admin ("Alice Example" beside
-- alice@example.test). '' is none: the address is shown alone.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
