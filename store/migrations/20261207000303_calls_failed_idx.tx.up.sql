-- The error log reads a tenant's failed calls of a range: this index holds only them, so
-- that a week of a million calls reads its failures (a fifth or less) and not every call.
-- Its condition is the error log's word for word (failureReasons in store/analytics.go, in
-- that order): a query uses a partial index only when it asks for what the index holds.
CREATE INDEX calls_tenant_failed_idx ON calls (tenant_id, created_at)
    WHERE status = 'failed' OR ended_reason IN ('error', 'agent-error', 'media-timeout', 'restart', 'node-lost', 'ice-failed', 'no-ack', 'provider-not-configured');
