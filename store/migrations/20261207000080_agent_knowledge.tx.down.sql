ALTER TABLE agents DROP COLUMN knowledge;
