-- Schema version 3: the tenant's calling policy (Teams' CsTeamsCallingPolicy):
-- whether its people may record calls, caption them, and leave or receive
-- voicemail. True (allowed) for every existing tenant, as before this version.
-- (SQLite's version 4.) The tenants trigger counts the change.
ALTER TABLE tenants ADD COLUMN allow_recording BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE tenants ADD COLUMN allow_transcription BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE tenants ADD COLUMN allow_voicemail BOOLEAN NOT NULL DEFAULT TRUE;
