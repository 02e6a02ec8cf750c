ALTER TABLE calls DROP COLUMN media_security;
--bun:split
ALTER TABLE trunks DROP COLUMN srtp;
