package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

const prefixDeployment = "dep_"

// maxDeploymentLabel bounds a deployment's label.
const maxDeploymentLabel = 200

// Deployment is a published, immutable version of an agent: the agent as it was when it was
// deployed (instructions, model, settings) and the tools it could call then. Runners
// (Amarsia's /v1/runner/{id}) answer with this snapshot, so that editing the agent later
// changes no deployment. Only its label may be given; nothing of it is ever updated.
type Deployment struct {
	bun.BaseModel `bun:"table:deployments"`
	Row

	AgentID string `bun:"agent_id,notnull" json:"agent_id"`
	// Version counts the agent's deployments from 1.
	Version int    `bun:"version,notnull" json:"version"`
	Label   string `bun:"label,notnull" json:"label"`
	// Agent and Tools are the snapshot the deployment answers with.
	Agent Agent  `bun:"agent,type:json,notnull" json:"agent"`
	Tools []Tool `bun:"tools,type:json,notnull" json:"tools"`
}

func (*Deployment) idPrefix() string { return prefixDeployment }

// Validate checks the deployment's own fields.
func (d *Deployment) Validate() error {
	var fe fieldErrors
	if len([]rune(d.Label)) > maxDeploymentLabel {
		fe.add("label", "must be at most %d characters", maxDeploymentLabel)
	}
	return fe.err()
}

// ValidDeploymentID reports whether s looks like a deployment ID.
func ValidDeploymentID(s string) bool { return validID(prefixDeployment, s) }

// ValidAgentID reports whether s looks like an agent ID.
func ValidAgentID(s string) bool { return validID(prefixAgent, s) }

// Deploy publishes the tenant's agent as a new deployment labelled label: a snapshot of the
// agent and of its tools, with the next version number of the agent, written in one
// transaction. An agent that is not the tenant's is ErrNotFound. Deployments of one agent
// made at the same instant take turns on the agent's row; should two still take one
// number, the unique (agent, version) index refuses the later, which takes the next.
func Deploy(ctx context.Context, s *Store, tenantID, agentID, label string) (*Deployment, error) {
	if err := (&Deployment{Label: label}).Validate(); err != nil {
		return nil, err
	}
	if !validID(prefixAgent, agentID) {
		return nil, ErrNotFound
	}
	var ce *ConflictError
	for attempt := 0; ; attempt++ {
		d, err := deploy(ctx, s, tenantID, agentID, label)
		if !errors.As(err, &ce) || attempt == 4 {
			return d, err
		}
	}
}

func deploy(ctx context.Context, s *Store, tenantID, agentID, label string) (*Deployment, error) {
	d := &Deployment{AgentID: agentID, Label: label, Tools: []Tool{}}
	now := s.now()
	d.ID, d.TenantID, d.CreatedAt, d.UpdatedAt = newID(prefixDeployment), tenantID, now, now
	err := s.inTx(ctx, func(tx bun.Tx) error {
		q := tx.NewSelect().Model(&d.Agent).Where("id = ?", agentID).Where("tenant_id = ?", tenantID).Limit(1)
		if s.dialect == Postgres {
			// Deployments of one agent take turns from here, so that each reads the last
			// version its predecessor wrote. (SQLite's transactions take turns already.)
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			return classify(err)
		}
		for _, id := range d.Agent.ToolIDs {
			var t Tool
			err := tx.NewSelect().Model(&t).Where("id = ?", id).Where("tenant_id = ?", tenantID).Limit(1).Scan(ctx)
			if err != nil {
				return fmt.Errorf("store: the agent's tool %s: %w", id, classify(err))
			}
			d.Tools = append(d.Tools, t)
		}
		var last int
		if err := tx.NewSelect().Table("deployments").ColumnExpr("COALESCE(MAX(version), 0)").
			Where("agent_id = ?", agentID).Scan(ctx, &last); err != nil {
			return err
		}
		d.Version = last + 1
		_, err := tx.NewInsert().Model(d).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ListDeployments reads a page of the tenant's deployments, of one agent when agentID is not
// empty, newest first, and how many there are.
func ListDeployments(ctx context.Context, s *Store, tenantID, agentID string, page Page) ([]Deployment, int, error) {
	items := make([]Deployment, 0, page.Limit)
	q := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID)
	if agentID != "" {
		q = q.Where("agent_id = ?", agentID)
	}
	total, err := q.Order("created_at DESC", "id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}
