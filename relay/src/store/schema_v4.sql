-- Schema version 4: the tenant's calling policy (Teams' CsTeamsCallingPolicy):
-- whether its people may record calls, caption them, and leave or receive
-- voicemail. 1 (allowed) for every existing tenant, as before this version.
ALTER TABLE tenants ADD COLUMN allow_recording INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN allow_transcription INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN allow_voicemail INTEGER NOT NULL DEFAULT 1;
