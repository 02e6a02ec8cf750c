ALTER TABLE agents DROP COLUMN transfer_targets;
