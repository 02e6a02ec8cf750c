package call

import (
	"log/slog"

	"github.com/switchboard-go/switchboard/store"
)

// Logger is the logger of a call: every line carries the call's ID (call_id, Switchboard's
// own), its tenant, its agent when it has one, and the SIP Call-ID when SIP carries it, so
// that one call's lines are found by any of them.
func Logger(base *slog.Logger, rec store.Call) *slog.Logger {
	attrs := []any{"call_id", rec.ID, "tenant_id", rec.TenantID}
	if rec.AgentID != nil && *rec.AgentID != "" {
		attrs = append(attrs, "agent_id", *rec.AgentID)
	}
	if rec.SIPCallID != "" {
		attrs = append(attrs, "sip_call_id", rec.SIPCallID)
	}
	return base.With(attrs...)
}
