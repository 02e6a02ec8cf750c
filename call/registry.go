package call

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// Live is a live call as the node's registry holds it, whatever carries it: what the API
// steers.
type Live interface {
	ID() string
	TenantID() string
	// Record is the call's record as the node holds it: the newest (the store's copy is
	// written behind it).
	Record() store.Call
	// Done is closed once the call ended and the store holds its final record.
	Done() <-chan struct{}
	// HangUp ends the call with reason and returns once its record is final, or ctx ends.
	HangUp(ctx context.Context, reason Reason)
	// Transfer hands the far end to another party (a number or a SIP URI); a transport
	// that cannot refuses with ErrNoTransfer.
	Transfer(ctx context.Context, to string) error
}

// Registry is the node's registry of live calls, of every transport: the API finds a call
// in it to hang it up or transfer it, it bounds the node's calls and each tenant's, and the
// node waits on it for its calls to end when it stops. A nil *Registry bounds nothing and
// holds nothing. It is safe for concurrent use.
type Registry struct {
	limits *callcap.Limiter
	// measure counts the calls' lives for /metrics (nil: nothing is counted).
	measure *metrics.Calls
	// tracer makes each call's span (nil: calls are not traced).
	tracer trace.Tracer
	// tenants holds tenants to their limits across the cluster (nil: none; LimitTenants).
	tenants *tenantLimits

	mu   sync.Mutex
	live map[string]Live
	// emptied is closed (and replaced) whenever a call leaves, so that Drain wakes.
	emptied chan struct{}
}

// NewRegistry returns a registry whose calls limits bounds (nil: no limit).
func NewRegistry(limits *callcap.Limiter) *Registry {
	return &Registry{limits: limits, live: map[string]Live{}, emptied: make(chan struct{})}
}

// Measure has the node's calls counted by m (the node's /metrics); set before any call.
func (r *Registry) Measure(m *metrics.Calls) {
	if r != nil {
		r.measure = m
	}
}

// Trace has each call traced by t, a span from its start to its end with its turns below
// (nil: none); set before any call.
func (r *Registry) Trace(t *telemetry.Tracing) {
	if r != nil {
		r.tracer = t.Tracer()
	}
}

// callTracer is what makes the calls' spans, or nil.
func (r *Registry) callTracer() trace.Tracer {
	if r == nil {
		return nil
	}
	return r.tracer
}

// metrics is what counts the calls, or nil.
func (r *Registry) metrics() *metrics.Calls {
	if r == nil {
		return nil
	}
	return r.measure
}

// Acquire takes a place for a call of the tenant within the node's and the tenant's limits,
// or refuses it with a *callcap.LimitError. The call gives it back with release.
func (r *Registry) Acquire(tenantID string) (release func(), err error) {
	if r == nil {
		return func() {}, nil
	}
	local, err := r.limits.Acquire(tenantID)
	if err != nil || r.tenants == nil {
		return local, err
	}
	free, err := r.tenants.take(tenantID)
	if err != nil {
		local()
		return nil, err
	}
	return sync.OnceFunc(func() { free(); local() }), nil
}

// Check says whether Acquire would take a place for the tenant now, without taking one.
func (r *Registry) Check(tenantID string) error {
	if r == nil {
		return nil
	}
	if err := r.limits.Check(tenantID); err != nil || r.tenants == nil {
		return err
	}
	return r.tenants.check(tenantID)
}

// Add registers a live call.
func (r *Registry) Add(c Live) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live[c.ID()] = c
}

// Remove takes an ended call out; another call of the same ID is left.
func (r *Registry) Remove(c Live) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[c.ID()] == c {
		delete(r.live, c.ID())
		close(r.emptied)
		r.emptied = make(chan struct{})
	}
}

// Get is the tenant's live call of that ID, or nil: another tenant's call is not found.
func (r *Registry) Get(tenantID, id string) Live {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.live[id]
	if c == nil || c.TenantID() != tenantID {
		return nil
	}
	return c
}

// Open is how many calls are live.
func (r *Registry) Open() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// StopTaking makes the node refuse new calls, whatever carries them (callcap.ErrDraining:
// SIP answers 503 with Retry-After and its OPTIONS 503, so that a proxy's dispatcher sends
// elsewhere; the API 503): the node is draining. The calls it carries go on.
func (r *Registry) StopTaking() {
	if r != nil {
		r.limits.Drain()
	}
}

// Draining reports whether the node stopped taking calls (StopTaking).
func (r *Registry) Draining() bool { return r != nil && r.limits.Draining() }

// Drain waits until no call is live, or ctx ends. It admits nothing itself: StopTaking
// first, then the node drains what is left.
func (r *Registry) Drain(ctx context.Context) error {
	if r == nil {
		return nil
	}
	for {
		r.mu.Lock()
		n, ch := len(r.live), r.emptied
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// DrainWithin stops the node taking calls (StopTaking) and lets those it carries end on
// their own for up to timeout, or until ctx ends (an impatient operator's second signal);
// it returns how many are left, for the node to end. A timeout of 0 waits for none.
func (r *Registry) DrainWithin(ctx context.Context, timeout time.Duration, log *slog.Logger) int {
	r.StopTaking()
	open := r.Open()
	if timeout <= 0 || open == 0 {
		return open
	}
	log.Info("draining: taking no new calls, waiting for those up to end", "calls", open, "timeout", timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if r.Drain(ctx) == nil {
		log.Info("drained: every call ended")
		return 0
	}
	left := r.Open()
	log.Warn("drain over: ending the calls left", "calls", left)
	return left
}

// LiveRecord is the record of c while it lives, as the node holds it. Once it has ended,
// the store's copy is the one to read: LiveRecord waits until the store holds the final
// record (or ctx ends) and reports false, so that a reader never sees the end from memory
// and then a store that has not caught up.
func LiveRecord(ctx context.Context, c Live) (store.Call, bool) {
	rec := c.Record()
	if rec.EndedAt == nil {
		return rec, true
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	return store.Call{}, false
}
