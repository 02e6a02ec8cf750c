ALTER TABLE tenants DROP COLUMN balance_usd;
