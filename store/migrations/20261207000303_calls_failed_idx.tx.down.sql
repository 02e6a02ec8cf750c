DROP INDEX calls_tenant_failed_idx;
