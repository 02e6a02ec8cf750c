DROP INDEX session_errors_session_idx;
--bun:split
DROP INDEX session_errors_tenant_idx;
--bun:split
DROP TABLE session_errors;
