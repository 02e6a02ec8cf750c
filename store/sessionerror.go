package store

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// SessionError is one thing that went wrong in a session: its model failing an answer, or a
// tool's webhook failing. The analytics error log lists them with the calls' errors. They
// are taken from the messages a turn stores, in the same transaction (sessionErrors), so a
// session's errors are exactly what its history shows.
type SessionError struct {
	bun.BaseModel `bun:"table:session_errors"`

	ID        string    `bun:"id,pk"`
	TenantID  string    `bun:"tenant_id,notnull"`
	SessionID string    `bun:"session_id,notnull"`
	AgentID   *string   `bun:"agent_id"`
	Stage     string    `bun:"stage,notnull"`
	Message   string    `bun:"message,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// sessionErrors are the errors the messages of one append show: an answer that failed
// (Error; stage brain) and each tool result that is an error (stage tool, the tool named),
// the first maxCallErrors of them. The session's agent is read in tx only when there are any.
func sessionErrors(ctx context.Context, tx bun.IDB, a *SessionAppend) ([]SessionError, error) {
	var out []SessionError
	add := func(m *SessionMessage, stage, msg string) {
		if len(out) < maxCallErrors {
			out = append(out, SessionError{ID: newID("ser_"), TenantID: a.TenantID, SessionID: a.SessionID, Stage: stage,
				Message: cleanString(truncateUTF8(msg, maxErrorMessage)), CreatedAt: m.CreatedAt.UTC()})
		}
	}
	for _, m := range a.Messages {
		if m.Role != RoleAssistant {
			continue
		}
		for _, p := range m.Parts {
			if p.Type == PartToolResult && p.IsError {
				add(m, ErrorStageTool, p.ToolName+": "+p.Result)
			}
		}
		if m.Status == MessageFailed && m.Error != "" {
			add(m, ErrorStageBrain, m.Error)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	var agentID *string
	if a.New != nil {
		agentID = a.New.AgentID
	} else if err := tx.NewSelect().Model((*Session)(nil)).Column("agent_id").Where("id = ?", a.SessionID).Scan(ctx, &agentID); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].AgentID = agentID
	}
	return out, nil
}
