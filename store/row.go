package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"time"

	"github.com/uptrace/bun"
)

// Row is what every tenant-owned model starts with.
type Row struct {
	ID        string    `bun:"id,pk" json:"id"`
	TenantID  string    `bun:"tenant_id,notnull" json:"tenant_id"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt time.Time `bun:"updated_at,notnull" json:"updated_at"`
}

// Base returns the row's identity and times.
func (r *Row) Base() *Row { return r }

// reference is a row that a model points at; it must exist in the same tenant.
type reference struct {
	field string // the JSON path of the pointing field, for the error
	table string
	id    string
}

// model is the behaviour the generic queries need of a tenant-owned model.
type model interface {
	Base() *Row
	idPrefix() string
	// Validate checks the model on its own (no database); a *ValidationError names the fields.
	Validate() error
}

// Model is the constraint of the generic queries: a pointer to one of the store's
// tenant-owned models (Agent, Workflow, Tool, PhoneNumber, Trunk, APIKey, User).
type Model[T any] interface {
	*T
	model
}

// preparer is a model that turns write-only input (a password) into what is stored (a hash,
// a sealed value) before it is validated and written.
type preparer interface {
	prepare(s *Store) error
}

// referrer is a model that points at other rows.
type referrer interface {
	references() []reference
}

// updateGuard is a model that looks at its stored row before an update overwrites it.
type updateGuard interface {
	beforeUpdate(ctx context.Context, tx bun.IDB) error
}

// deleteGuard is a model that refuses deletion while other rows need it in ways a foreign key
// cannot express (an ID inside a JSON list).
type deleteGuard interface {
	checkDelete(ctx context.Context, tx bun.IDB) error
}

// Page is a window of a list: limit/offset as the canonical surface pages.
type Page struct {
	Limit  int
	Offset int
}

// Create validates m, checks what it references, and inserts it with a new ID under tenantID.
func Create[T any, P Model[T]](ctx context.Context, s *Store, tenantID string, m P) error {
	r := m.Base()
	now := s.now()
	r.ID, r.TenantID, r.CreatedAt, r.UpdatedAt = newID(m.idPrefix()), tenantID, now, now
	if err := prepare(s, m); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	return s.written(m, s.inTx(ctx, func(tx bun.Tx) error {
		if err := checkReferences(ctx, tx, tenantID, m); err != nil {
			return err
		}
		return rollRow(ctx, tx, s.dialect, m, func() error {
			_, err := tx.NewInsert().Model(m).Exec(ctx)
			return err
		})
	}))
}

// Get reads one row of the tenant; another tenant's row is ErrNotFound.
func Get[T any, P Model[T]](ctx context.Context, s *Store, tenantID, id string) (P, error) {
	m := P(new(T))
	if !validID(m.idPrefix(), id) {
		return nil, ErrNotFound
	}
	stmt, err := s.getStatement(ctx, m)
	if err != nil {
		return nil, classify(err)
	}
	rows, err := stmt.QueryContext(ctx, tenantID, id)
	if err != nil {
		return nil, classify(err)
	}
	if err := s.db.ScanRows(ctx, rows, m); err != nil {
		return nil, classify(err)
	}
	if m.Base().ID == "" {
		return nil, ErrNotFound
	}
	return m, nil
}

// getStatement returns the prepared statement that reads one row of m's table by tenant
// and ID. Reading by ID is the hot path of the API (and of every call, which reads its
// agent), and a statement prepared once spares the database parsing the query each time.
func (s *Store) getStatement(ctx context.Context, m any) (*sql.Stmt, error) {
	typ := reflect.TypeOf(m)
	if st, ok := s.stmts.Load(typ); ok {
		return st.(*sql.Stmt), nil
	}
	p1, p2 := "?", "?"
	if s.dialect == Postgres {
		p1, p2 = "$1", "$2"
	}
	query := s.db.NewSelect().Model(m).Where("tenant_id = ?", bun.Safe(p1)).Where("id = ?", bun.Safe(p2)).Limit(1).String()
	st, err := s.db.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(typ, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// List reads a page of the tenant's rows, newest first, and how many there are in all.
func List[T any, P Model[T]](ctx context.Context, s *Store, tenantID string, page Page) ([]T, int, error) {
	items := make([]T, 0, page.Limit)
	total, err := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID).
		Order("created_at DESC", "id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// Update validates m and writes it over the row of the same ID in m's tenant.
func Update[T any, P Model[T]](ctx context.Context, s *Store, m P) error {
	r := m.Base()
	r.UpdatedAt = s.now()
	if err := prepare(s, m); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	return s.written(m, s.inTx(ctx, func(tx bun.Tx) error {
		if err := checkReferences(ctx, tx, r.TenantID, m); err != nil {
			return err
		}
		if g, ok := any(m).(updateGuard); ok {
			if err := g.beforeUpdate(ctx, tx); err != nil {
				return err
			}
		}
		return rollRow(ctx, tx, s.dialect, m, func() error {
			res, err := tx.NewUpdate().Model(m).ExcludeColumn("id", "tenant_id", "created_at").
				Where("id = ?", r.ID).Where("tenant_id = ?", r.TenantID).Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrNotFound
			}
			return nil
		})
	}))
}

// Delete removes one row of the tenant. A row others still need is a *ConflictError.
func Delete[T any, P Model[T]](ctx context.Context, s *Store, tenantID, id string) error {
	m := P(new(T))
	if !validID(m.idPrefix(), id) {
		return ErrNotFound
	}
	return s.written(m, s.inTx(ctx, func(tx bun.Tx) error {
		if g, ok := any(m).(deleteGuard); ok {
			m.Base().ID, m.Base().TenantID = id, tenantID
			if err := g.checkDelete(ctx, tx); err != nil {
				return err
			}
		}
		m.Base().ID = id
		return rollRow(ctx, tx, s.dialect, m, func() error {
			res, err := tx.NewDelete().Model(m).Where("id = ?", id).Where("tenant_id = ?", tenantID).Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrNotFound
			}
			return nil
		})
	}))
}

// rollRow runs write, which writes the row of m, through rollCalls when m is a call, so
// that the generic writes keep the analytics' rollups as the call writer does.
func rollRow(ctx context.Context, tx bun.Tx, d Dialect, m any, write func() error) error {
	if c, ok := m.(*Call); ok {
		return rollCalls(ctx, tx, d, []string{c.ID}, write)
	}
	return write()
}

// written tells the store's caches that a write of m committed (err == nil), and returns err.
func (s *Store) written(m any, err error) error {
	if _, ok := m.(*Trunk); ok && err == nil {
		s.trunkWrites.Add(1)
	}
	return err
}

// checkReferences makes sure every row m points at exists in the same tenant.
// CheckReferences refuses a model that points at something the tenant does not have (an
// agent or trunk of another tenant, or of none) with a *ValidationError naming the field,
// for callers that act on a model before they write it (an outbound call is dialled first).
func CheckReferences(ctx context.Context, s *Store, tenantID string, m any) error {
	return classifyRefs(checkReferences(ctx, s.db, tenantID, m))
}

func classifyRefs(err error) error {
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) {
		return err
	}
	return classify(err)
}

func checkReferences(ctx context.Context, tx bun.IDB, tenantID string, m any) error {
	r, ok := m.(referrer)
	if !ok {
		return nil
	}
	var fe fieldErrors
	for _, ref := range r.references() {
		n, err := tx.NewSelect().Table(ref.table).Where("id = ?", ref.id).Where("tenant_id = ?", tenantID).Count(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			fe.add(ref.field, "no such resource: %q", ref.id)
		}
	}
	return fe.err()
}

// inTx runs fn in a transaction and classifies what fails.
func (s *Store) inTx(ctx context.Context, fn func(tx bun.Tx) error) error {
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return fn(tx) })
	if err == nil {
		return nil
	}
	var ve *ValidationError
	var ce *ConflictError
	if errors.As(err, &ve) || errors.As(err, &ce) || errors.Is(err, ErrNotFound) {
		return err
	}
	return classify(err)
}

func prepare(s *Store, m any) error {
	if p, ok := m.(preparer); ok {
		return p.prepare(s)
	}
	return nil
}
