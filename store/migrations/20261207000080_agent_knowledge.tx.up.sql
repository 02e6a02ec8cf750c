-- How an agent's model uses its knowledge bases; '{}' reads as the defaults (mode auto).
ALTER TABLE agents ADD COLUMN knowledge {{.JSON}} NOT NULL DEFAULT '{}';
