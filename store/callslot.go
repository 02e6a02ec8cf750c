package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/uptrace/bun"
)

// CallSlot is a place a live call holds against its tenant's limit across the cluster
// (Tenant.MaxCalls): taken on the node that carries the call as it starts, given back as
// it ends, and given back for a node that stops or is lost.
type CallSlot struct {
	bun.BaseModel `bun:"table:call_slots"`

	ID        string    `bun:"id,pk"`
	TenantID  string    `bun:"tenant_id,notnull"`
	Node      string    `bun:"node,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// ErrTenantCallsFull is a call refused because its tenant holds its limit of calls across
// the cluster.
var ErrTenantCallsFull = errors.New("store: the tenant holds its limit of concurrent calls")

// TakeCallSlot takes a place for a call of the tenant on node, unless the tenant holds limit
// places already (ErrTenantCallsFull); it returns the place's ID, for FreeCallSlot. The
// count and the taking are one transaction, and on PostgreSQL the tenant's takings are
// serialized by a transaction lock, so that two nodes cannot both take the last place.
func TakeCallSlot(ctx context.Context, s *Store, tenantID, node string, limit int) (string, error) {
	slot := &CallSlot{ID: newID("slt_"), TenantID: tenantID, Node: node, CreatedAt: s.now()}
	err := s.db.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext(?))", "call_slots:"+tenantID); err != nil {
				return err
			}
		}
		n, err := tx.NewSelect().Model((*CallSlot)(nil)).Where("tenant_id = ?", tenantID).Count(ctx)
		if err != nil {
			return err
		}
		if n >= int64(limit) {
			return ErrTenantCallsFull
		}
		_, err = tx.NewInsert().Model(slot).Exec(ctx)
		return err
	})
	if errors.Is(err, ErrTenantCallsFull) {
		return "", err
	}
	if err != nil {
		return "", classify(err)
	}
	return slot.ID, nil
}

// FreeCallSlot gives a place back.
func FreeCallSlot(ctx context.Context, s *Store, id string) error {
	_, err := s.db.NewDelete().Model((*CallSlot)(nil)).Where("id = ?", id).Exec(ctx)
	return classify(err)
}

// FreeNodeCallSlots gives back every place a node's calls hold: the node stopped, restarted
// or was lost, and its calls were ended.
func FreeNodeCallSlots(ctx context.Context, s *Store, node string) error {
	_, err := s.db.NewDelete().Model((*CallSlot)(nil)).Where("node = ?", node).Exec(ctx)
	return classify(err)
}

// CountCallSlots is how many places the tenant's live calls hold across the cluster.
func CountCallSlots(ctx context.Context, s *Store, tenantID string) (int, error) {
	n, err := s.db.NewSelect().Model((*CallSlot)(nil)).Where("tenant_id = ?", tenantID).Count(ctx)
	return int(n), classify(err)
}
