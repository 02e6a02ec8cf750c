package store

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"
)

// DefaultTenantSlug names the tenant the first start creates. It owns what the server sets up
// by itself, and its admin keys operate the server: they alone may manage other tenants.
const DefaultTenantSlug = "default"

// Tenant is one customer of a Switchboard server; everything else belongs to exactly one.
type Tenant struct {
	bun.BaseModel `bun:"table:tenants"`

	ID        string         `bun:"id,pk" json:"id"`
	Slug      string         `bun:"slug,notnull" json:"slug"`
	Name      string         `bun:"name,notnull" json:"name"`
	Metadata  map[string]any `bun:"metadata,type:json" json:"metadata"`
	CreatedAt time.Time      `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt time.Time      `bun:"updated_at,notnull" json:"updated_at"`
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
	return fe.err()
}

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
	res, err := s.db.NewUpdate().Model(t).ExcludeColumn("id", "created_at").Where("id = ?", t.ID).Exec(ctx)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
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
