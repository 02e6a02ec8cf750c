package call

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/store"
)

type liveCall struct{ id, tenant string }

func (l *liveCall) ID() string                                { return l.id }
func (l *liveCall) TenantID() string                          { return l.tenant }
func (l *liveCall) Record() store.Call                        { return store.Call{} }
func (l *liveCall) Done() <-chan struct{}                     { return nil }
func (l *liveCall) HangUp(ctx context.Context, reason Reason) {}
func (l *liveCall) Transfer(ctx context.Context, to string) error {
	return ErrNoTransfer
}

// TestRegistry: a live call is found by its tenant only, the limits hold, and Drain
// returns once the last call left.
func TestRegistry(t *testing.T) {
	r := NewRegistry(callcap.New(2, 1))
	release, err := r.Acquire("ten_a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire("ten_a"); !errors.Is(err, callcap.ErrTenantFull) {
		t.Errorf("second call of a tenant at its limit: %v", err)
	}
	a := &liveCall{"call_a", "ten_a"}
	r.Add(a)
	if r.Get("ten_a", "call_a") != a || r.Get("ten_b", "call_a") != nil || r.Open() != 1 {
		t.Fatal("a live call is found by its tenant only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(ctx) }()
	r.Remove(&liveCall{"call_a", "ten_a"}) // another call of the same ID stays
	if r.Open() != 1 {
		t.Fatal("a call was removed by another of its ID")
	}
	r.Remove(a)
	release()
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	var nilReg *Registry
	if nilReg.Get("ten_a", "x") != nil || nilReg.Open() != 0 || nilReg.Drain(ctx) != nil || nilReg.Check(ctx, "ten_a") != nil {
		t.Error("a nil registry is not empty")
	}
}

// TestRegistryReleaseWithTenantLimits: with the tenants' limits across the cluster on, a
// call's place is given back, and the node's place with it, without the release waiting on
// itself (a release that called itself left every ending call's teardown stuck).
func TestRegistryReleaseWithTenantLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "switchboard.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := NewRegistry(callcap.New(1, 0))
	r.LimitTenants(st, "node-a")
	release, err := r.Acquire("ten_a")
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() { release(); release(); close(released) }()
	select {
	case <-released:
	case <-ctx.Done():
		t.Fatal("releasing a call's place did not return")
	}
	if again, err := r.Acquire("ten_a"); err != nil {
		t.Errorf("the node's one place was not given back: %v", err)
	} else {
		again()
	}
}
