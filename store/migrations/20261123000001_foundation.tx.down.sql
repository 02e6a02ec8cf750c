DROP TABLE phone_numbers;
--bun:split
DROP TABLE trunks;
--bun:split
DROP TABLE agents;
--bun:split
DROP TABLE tools;
--bun:split
DROP TABLE workflows;
--bun:split
DROP TABLE api_keys;
--bun:split
DROP TABLE refresh_tokens;
--bun:split
DROP TABLE users;
--bun:split
DROP TABLE tenants;
