-- A tenant's prepaid balance in US dollars, drawn down by what its model usage costs (the
-- gateway's usage records and the answers of sessions). NULL is no balance kept: the tenant
-- is not limited by one, as every tenant made before balances existed.
ALTER TABLE tenants ADD COLUMN balance_usd DOUBLE PRECISION;
