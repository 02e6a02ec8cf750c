-- SRTP on SIP calls: each trunk says whether its media is encrypted ("off", "offer",
-- "required"), and each call's record says how its media was carried ("srtp", "none").
ALTER TABLE trunks ADD COLUMN srtp TEXT NOT NULL DEFAULT 'off';
--bun:split
ALTER TABLE calls ADD COLUMN media_security TEXT NOT NULL DEFAULT '';
