DROP TABLE webhook_deliveries;
--bun:split
ALTER TABLE phone_numbers DROP COLUMN server;
--bun:split
ALTER TABLE agents DROP COLUMN server;
