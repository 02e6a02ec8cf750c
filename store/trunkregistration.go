package store

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"
)

// The statuses of a trunk's outbound registration.
const (
	RegistrationPending    = "pending"
	RegistrationRegistered = "registered"
	RegistrationFailed     = "failed"
)

// TrunkRegistration is the state of a trunk's outbound registration (register: true): what
// its registrar last said, and which node registers it. Nodes sharing a database register
// each trunk once: the node whose lease is current holds it (ClaimTrunkRegistration).
type TrunkRegistration struct {
	bun.BaseModel `bun:"table:trunk_registrations"`

	TrunkID  string `bun:"trunk_id,pk" json:"-"`
	TenantID string `bun:"tenant_id,notnull" json:"-"`
	// Node is the node that registers the trunk; empty while none does.
	Node       string    `bun:"node,nullzero" json:"node,omitempty"`
	LeaseUntil time.Time `bun:"lease_until,notnull" json:"-"`
	// Status is pending (not registered yet, or no node holds it), registered or failed;
	// Reason says why it is not registered.
	Status string `bun:"status,notnull" json:"status"`
	Reason string `bun:"reason,notnull" json:"reason,omitempty"`
	// ExpiresAt is when the registrar's grant lapses unless it is refreshed.
	ExpiresAt *time.Time `bun:"expires_at" json:"expires_at"`
	// UpdatedAt is when a node last stored the state; absent while none has.
	UpdatedAt time.Time `bun:"updated_at,notnull" json:"updated_at,omitzero"`
}

// RegisteringTrunks returns the trunks of every tenant that register with their provider
// (outbound.register), oldest first.
func RegisteringTrunks(ctx context.Context, s *Store) ([]Trunk, error) {
	cond := "json_extract(outbound, '$.register') = 1"
	if s.dialect == Postgres {
		cond = "(outbound->>'register')::boolean"
	}
	out := []Trunk{}
	if err := s.db.NewSelect().Model(&out).Where(cond).Order("created_at", "id").Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// ClaimTrunkRegistration gives the registration of the trunk to node until now+lease, and
// reports whether node holds it: when no node does, when node already does (the lease is
// renewed), or when the holder's lease has lapsed (a node that died).
func ClaimTrunkRegistration(ctx context.Context, s *Store, t *Trunk, node string, lease time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.NewUpdate().Model((*TrunkRegistration)(nil)).
		Set("node = ?", node).Set("lease_until = ?", now.Add(lease)).
		Where("trunk_id = ?", t.ID).
		WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
			return q.Where("node = ?", node).WhereOr("node IS NULL").WhereOr("lease_until < ?", now)
		}).Exec(ctx)
	if err != nil {
		return false, classify(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	r := &TrunkRegistration{TrunkID: t.ID, TenantID: t.TenantID, Node: node, LeaseUntil: now.Add(lease),
		Status: RegistrationPending, UpdatedAt: now}
	res, err = s.db.NewInsert().Model(r).On("CONFLICT (trunk_id) DO NOTHING").Exec(ctx)
	if err != nil {
		// The trunk was deleted meanwhile (its foreign key refuses the row): not held.
		if ce := (*ConflictError)(nil); errors.As(classify(err), &ce) {
			return false, nil
		}
		return false, classify(err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// SetTrunkRegistration records what the trunk's registrar said, if node still holds its
// registration.
func SetTrunkRegistration(ctx context.Context, s *Store, trunkID, node, status, reason string, expiresAt *time.Time) error {
	_, err := s.db.NewUpdate().Model((*TrunkRegistration)(nil)).
		Set("status = ?", status).Set("reason = ?", reason).Set("expires_at = ?", expiresAt).Set("updated_at = ?", s.now()).
		Where("trunk_id = ?", trunkID).Where("node = ?", node).Exec(ctx)
	return classify(err)
}

// ReleaseTrunkRegistration hands the trunk's registration back, pending with reason, if node
// holds it: another node may take it at once.
func ReleaseTrunkRegistration(ctx context.Context, s *Store, trunkID, node, reason string) error {
	now := s.now()
	_, err := s.db.NewUpdate().Model((*TrunkRegistration)(nil)).
		Set("node = NULL").Set("lease_until = ?", now).Set("status = ?", RegistrationPending).
		Set("reason = ?", reason).Set("expires_at = NULL").Set("updated_at = ?", now).
		Where("trunk_id = ?", trunkID).Where("node = ?", node).Exec(ctx)
	return classify(err)
}

// TrunkRegistrations reads the registrations of the tenant's trunks of those IDs, by trunk ID.
func TrunkRegistrations(ctx context.Context, s *Store, tenantID string, trunkIDs []string) (map[string]*TrunkRegistration, error) {
	out := map[string]*TrunkRegistration{}
	if len(trunkIDs) == 0 {
		return out, nil
	}
	var rows []TrunkRegistration
	if err := s.db.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID).Where("trunk_id IN (?)", bun.List(trunkIDs)).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	for i := range rows {
		out[rows[i].TrunkID] = &rows[i]
	}
	return out, nil
}

// ShowRegistration fills the trunk's Registration from regs (TrunkRegistrations): nil for a
// trunk that does not register, pending for one no node has taken up yet.
func (t *Trunk) ShowRegistration(regs map[string]*TrunkRegistration) {
	t.Registration = nil
	if !t.Outbound.Register {
		return
	}
	if r := regs[t.ID]; r != nil {
		t.Registration = r
		return
	}
	t.Registration = &TrunkRegistration{TrunkID: t.ID, TenantID: t.TenantID, Status: RegistrationPending,
		Reason: "no node has taken up the registration yet"}
}

// TrunkPhoneNumber is the tenant's oldest phone number carried by the trunk: where a call
// on the trunk's registration goes when it names none of the tenant's numbers.
func TrunkPhoneNumber(ctx context.Context, s *Store, tenantID, trunkID string) (*PhoneNumber, error) {
	p := new(PhoneNumber)
	err := s.db.NewSelect().Model(p).Where("tenant_id = ?", tenantID).Where("trunk_id = ?", trunkID).
		Where("number_key IS NOT NULL").Order("created_at", "id").Limit(1).Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return p, nil
}
