DROP TABLE usage_records;
--bun:split
ALTER TABLE api_keys DROP COLUMN token_limit;
--bun:split
ALTER TABLE api_keys DROP COLUMN budget_usd;
