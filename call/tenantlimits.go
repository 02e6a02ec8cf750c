package call

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/store"
)

// A tenant's limit of concurrent calls (store.Tenant.MaxCalls) holds across every node of
// the cluster: each call takes a place in the store's call_slots as it starts, on the node
// that carries it, and gives it back as it ends (store.TakeCallSlot serializes the tenant's
// takings across nodes). The node's own per-tenant limit (callcap) still holds besides.

// tenantLimitTTL is how long a node keeps a tenant's limit before reading it again: an
// operator's change takes effect within it.
const tenantLimitTTL = 5 * time.Second

// slotTimeout bounds the database's part in taking or giving back a place.
const slotTimeout = 3 * time.Second

// LimitTenants holds each tenant with a limit of its own (store.Tenant.MaxCalls) to it
// across the cluster, node being this node's name in the places its calls hold.
func (r *Registry) LimitTenants(st *store.Store, node string) {
	if r != nil && st != nil {
		r.tenants = &tenantLimits{st: st, node: node, cached: map[string]cachedLimit{}}
	}
}

type tenantLimits struct {
	st   *store.Store
	node string

	mu     sync.Mutex
	cached map[string]cachedLimit
	// taking serializes this node's takings: SQLite has one writer, and a taking whose
	// read went stale would be refused rather than wait; PostgreSQL's lock serializes the
	// nodes.
	taking sync.Mutex
}

type cachedLimit struct {
	limit int
	at    time.Time
}

// limit is the tenant's limit across the cluster (0: none), as read at most tenantLimitTTL
// ago. A tenant that cannot be read has none here: the node's own limits still hold.
func (t *tenantLimits) limit(ctx context.Context, tenantID string) int {
	t.mu.Lock()
	c, ok := t.cached[tenantID]
	t.mu.Unlock()
	if ok && time.Since(c.at) < tenantLimitTTL {
		return c.limit
	}
	ten, err := t.st.Tenant(ctx, tenantID)
	if err != nil {
		return c.limit
	}
	t.mu.Lock()
	t.cached[tenantID] = cachedLimit{limit: ten.MaxCalls, at: time.Now()}
	t.mu.Unlock()
	return ten.MaxCalls
}

// take takes a place for a call of the tenant, or refuses it with a *callcap.LimitError
// (ErrTenantFull, Cluster); free gives the place back.
func (t *tenantLimits) take(tenantID string) (free func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
	defer cancel()
	limit := t.limit(ctx, tenantID)
	if limit <= 0 {
		return func() {}, nil
	}
	t.taking.Lock()
	id, err := store.TakeCallSlot(ctx, t.st, tenantID, t.node, limit)
	t.taking.Unlock()
	if errors.Is(err, store.ErrTenantCallsFull) {
		return nil, &callcap.LimitError{Err: callcap.ErrTenantFull, Limit: limit, Cluster: true}
	}
	if err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
		defer cancel()
		_ = store.FreeCallSlot(ctx, t.st, id) // a place not given back is given back with its node
	}, nil
}

// check says whether take would refuse a call of the tenant now, without taking a place.
func (t *tenantLimits) check(tenantID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
	defer cancel()
	limit := t.limit(ctx, tenantID)
	if limit <= 0 {
		return nil
	}
	n, err := store.CountCallSlots(ctx, t.st, tenantID)
	if err != nil || n < limit {
		return nil // the taking, later, decides
	}
	return &callcap.LimitError{Err: callcap.ErrTenantFull, Limit: limit, Cluster: true}
}
