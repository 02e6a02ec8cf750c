-- Where an agent's model may transfer a caller: none until its operator says.
ALTER TABLE agents ADD COLUMN transfer_targets {{.JSON}} NOT NULL DEFAULT '[]';
