package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/uptrace/bun"
)

// DefaultTenantSlug names the tenant the first start creates. It owns what the server sets up
// by itself, and its admin keys operate the server: they alone may manage other tenants.
const DefaultTenantSlug = "default"

// Tenant is one customer of a Switchboard server; everything else belongs to exactly one.
type Tenant struct {
	bun.BaseModel `bun:"table:tenants"`

	ID       string         `bun:"id,pk" json:"id"`
	Slug     string         `bun:"slug,notnull" json:"slug"`
	Name     string         `bun:"name,notnull" json:"name"`
	Metadata map[string]any `bun:"metadata,type:json" json:"metadata"`
	// BalanceUSD is the tenant's prepaid balance, drawn down by what its model usage costs;
	// nil keeps none, and the tenant is not limited by one. Only SetTenantBalance and the
	// usage that draws it down write it, so that an update of the tenant's name cannot put
	// back a balance that usage had spent meanwhile.
	BalanceUSD *float64 `bun:"balance_usd" json:"balance_usd"`
	// MaxCalls bounds the tenant's concurrent calls across every node of the cluster, SIP,
	// WebRTC and media streams together (0: only each node's per-tenant limit). Operators
	// set it.
	MaxCalls  int       `bun:"max_calls,notnull" json:"max_calls"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt time.Time `bun:"updated_at,notnull" json:"updated_at"`
}

// Validate checks the tenant's slug and name.
func (t *Tenant) Validate() error {
	var fe fieldErrors
	if !reSlug.MatchString(t.Slug) {
		fe.add("slug", "must be 1 to 63 lower-case letters, digits or hyphens, starting with a letter or digit")
	}
	fe.requireName("name", t.Name)
	if t.Metadata == nil {
		t.Metadata = map[string]any{}
	}
	fe.metadata("metadata", t.Metadata)
	if t.MaxCalls < 0 || t.MaxCalls > MaxTenantCalls {
		fe.add("max_calls", "must be between 0 (no limit of its own) and %d", MaxTenantCalls)
	}
	return fe.err()
}

// MaxTenantCalls bounds the limit of concurrent calls an operator may give a tenant.
const MaxTenantCalls = 1_000_000

// CreateTenant validates and inserts a tenant with a new ID.
func (s *Store) CreateTenant(ctx context.Context, t *Tenant) error {
	now := s.now()
	t.ID, t.CreatedAt, t.UpdatedAt = newID(prefixTenant), now, now
	if err := t.Validate(); err != nil {
		return err
	}
	_, err := s.db.NewInsert().Model(t).Exec(ctx)
	return classify(err)
}

// Tenant reads a tenant by ID.
func (s *Store) Tenant(ctx context.Context, id string) (*Tenant, error) {
	if !validID(prefixTenant, id) {
		return nil, ErrNotFound
	}
	t := new(Tenant)
	if err := s.db.NewSelect().Model(t).Where("id = ?", id).Limit(1).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return t, nil
}

// TenantBySlug reads a tenant by its slug.
func (s *Store) TenantBySlug(ctx context.Context, slug string) (*Tenant, error) {
	t := new(Tenant)
	if err := s.db.NewSelect().Model(t).Where("slug = ?", slug).Limit(1).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return t, nil
}

// EnsureTenant returns the tenant of that slug, creating it (named after the slug) if there is
// none. Two callers racing to create it both end with the same tenant.
func (s *Store) EnsureTenant(ctx context.Context, slug string) (*Tenant, error) {
	t, err := s.TenantBySlug(ctx, slug)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return t, err
	}
	t = &Tenant{Slug: slug, Name: slug}
	err = s.CreateTenant(ctx, t)
	var ce *ConflictError
	if errors.As(err, &ce) {
		return s.TenantBySlug(ctx, slug)
	}
	return t, err
}

// ListTenants reads a page of all tenants, newest first.
func (s *Store) ListTenants(ctx context.Context, page Page) ([]Tenant, int, error) {
	items := make([]Tenant, 0, page.Limit)
	total, err := s.db.NewSelect().Model(&items).Order("created_at DESC", "id DESC").
		Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// UpdateTenant validates t and writes it over the tenant of the same ID.
func (s *Store) UpdateTenant(ctx context.Context, t *Tenant) error {
	t.UpdatedAt = s.now()
	if err := t.Validate(); err != nil {
		return err
	}
	res, err := s.db.NewUpdate().Model(t).ExcludeColumn("id", "created_at", "balance_usd").Where("id = ?", t.ID).Exec(ctx)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// MaxBalanceUSD bounds the balance an operator may set.
const MaxBalanceUSD = 1e9

// SetTenantBalance sets the tenant's balance to usd, or keeps none when usd is nil, and
// returns the tenant as it now is.
func (s *Store) SetTenantBalance(ctx context.Context, id string, usd *float64) (*Tenant, error) {
	if usd != nil && (math.IsNaN(*usd) || *usd < 0 || *usd > MaxBalanceUSD) {
		return nil, &ValidationError{Fields: []FieldError{{Field: "balance_usd", Message: fmt.Sprintf("must be null or between 0 and %g", float64(MaxBalanceUSD))}}}
	}
	if !validID(prefixTenant, id) {
		return nil, ErrNotFound
	}
	res, err := s.db.NewUpdate().Table("tenants").Set("balance_usd = ?", usd).Set("updated_at = ?", s.now()).
		Where("id = ?", id).Exec(ctx)
	if err != nil {
		return nil, classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return s.Tenant(ctx, id)
}

// DrawTenantBalance takes usd off the tenant's balance, when it keeps one. The balance may
// end below zero: the request that spends it is answered in full, and the next is refused.
func (s *Store) DrawTenantBalance(ctx context.Context, tenantID string, usd float64) error {
	_, err := drawBalance(ctx, s.db, tenantID, usd)
	return err
}

func drawBalance(ctx context.Context, db bun.IDB, tenantID string, usd float64) (int64, error) {
	if !(usd > 0) {
		return 0, nil
	}
	res, err := db.NewUpdate().Table("tenants").Set("balance_usd = balance_usd - ?", usd).
		Where("id = ?", tenantID).Where("balance_usd IS NOT NULL").Exec(ctx)
	if err != nil {
		return 0, classify(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteTenant removes a tenant and, by cascade, everything it owns. The default tenant
// cannot be deleted.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	t, err := s.Tenant(ctx, id)
	if err != nil {
		return err
	}
	if t.Slug == DefaultTenantSlug {
		return &ConflictError{Field: "id", Message: "the default tenant operates the server and cannot be deleted"}
	}
	return s.written((*Trunk)(nil), s.inTx(ctx, func(tx bun.Tx) error {
		// Rows that point at each other inside the tenant go first, so the cascade from
		// tenants never trips a restricting foreign key.
		for _, table := range []string{"phone_numbers", "agents", "trunks", "tools", "workflows"} {
			if _, err := tx.NewDelete().Table(table).Where("tenant_id = ?", id).Exec(ctx); err != nil {
				return err
			}
		}
		_, err := tx.NewDelete().Model((*Tenant)(nil)).Where("id = ?", id).Exec(ctx)
		return err
	}))
}
