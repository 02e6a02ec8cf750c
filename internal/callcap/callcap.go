// Package callcap bounds the calls a node carries at once, whatever brings them (SIP, WebRTC,
// media-stream sockets): all of them together, so that a node refuses a call rather than
// degrade every call it has, and each tenant's, so that one tenant cannot take a shared
// node's every slot.
package callcap

import (
	"errors"
	"fmt"
	"sync"
)

var (
	// ErrNodeFull is a call refused because the node carries its limit of calls.
	ErrNodeFull = errors.New("this node is at its limit of concurrent calls")
	// ErrTenantFull is a call refused because its tenant has its limit of calls on the node.
	ErrTenantFull = errors.New("the tenant is at its limit of concurrent calls")
	// ErrDraining is a call refused because the node is draining: it is stopping and lets
	// the calls it carries end, taking no new ones (another node takes them).
	ErrDraining = errors.New("this node is draining: it takes no new calls")
)

// LimitError is a refused call: Unwrap gives ErrNodeFull, ErrTenantFull or ErrDraining,
// Limit the limit that was reached (0 for ErrDraining).
type LimitError struct {
	Err   error
	Limit int
	// Cluster says the limit is the tenant's across every node (store.Tenant.MaxCalls),
	// not this node's.
	Cluster bool
}

func (e *LimitError) Error() string {
	if e.Limit == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (%d)", e.Err, e.Limit)
}

// Unwrap gives ErrNodeFull, ErrTenantFull or ErrDraining.
func (e *LimitError) Unwrap() error { return e.Err }

// Limiter counts a node's calls. A nil Limiter, or a limit of zero, bounds nothing. It is
// safe for concurrent use.
type Limiter struct {
	max, perTenant int

	mu       sync.Mutex
	total    int
	tenants  map[string]int
	draining bool
}

// New returns a limiter of max calls in all and perTenant calls of any one tenant; zero is
// no limit.
func New(max, perTenant int) *Limiter {
	return &Limiter{max: max, perTenant: perTenant, tenants: map[string]int{}}
}

// Acquire takes a slot for a call of the tenant, or refuses it with a *LimitError. The call
// gives the slot back with release, once; later calls of release do nothing.
func (l *Limiter) Acquire(tenantID string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return nil, &LimitError{Err: ErrDraining}
	}
	if l.max > 0 && l.total >= l.max {
		return nil, &LimitError{Err: ErrNodeFull, Limit: l.max}
	}
	if l.perTenant > 0 && l.tenants[tenantID] >= l.perTenant {
		return nil, &LimitError{Err: ErrTenantFull, Limit: l.perTenant}
	}
	l.total++
	l.tenants[tenantID]++
	var once sync.Once
	return func() { once.Do(func() { l.release(tenantID) }) }, nil
}

// Check says whether Acquire would take a slot for the tenant now (a *LimitError if not),
// without taking one: for refusing early what would be refused later.
func (l *Limiter) Check(tenantID string) error {
	release, err := l.Acquire(tenantID)
	if err == nil {
		release()
	}
	return err
}

func (l *Limiter) release(tenantID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.tenants[tenantID]--; l.tenants[tenantID] <= 0 {
		delete(l.tenants, tenantID)
	}
}

// Active is the number of calls holding a slot: all of them, and the tenant's.
func (l *Limiter) Active(tenantID string) (total, tenant int) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.tenants[tenantID]
}

// Drain makes the limiter refuse every call from now on (ErrDraining): the node is stopping
// and lets the calls it carries end. The calls holding a slot keep it.
func (l *Limiter) Drain() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
}

// Draining reports whether Drain was called.
func (l *Limiter) Draining() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining
}
