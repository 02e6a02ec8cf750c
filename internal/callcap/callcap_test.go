package callcap

import (
	"errors"
	"sync"
	"testing"
)

func TestLimits(t *testing.T) {
	l := New(3, 2)
	a1, err := l.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := l.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if _, err := l.Acquire("a"); !errors.Is(err, ErrTenantFull) || !errors.As(err, &le) || le.Limit != 2 {
		t.Fatalf("third call of a: %v, want the tenant's limit of 2", err)
	}
	if err := l.Check("a"); !errors.Is(err, ErrTenantFull) {
		t.Fatalf("check of a: %v", err)
	}
	b1, err := l.Acquire("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire("c"); !errors.Is(err, ErrNodeFull) || !errors.As(err, &le) || le.Limit != 3 {
		t.Fatalf("fourth call: %v, want the node's limit of 3", err)
	}
	a1()
	a1() // twice gives back one slot
	if total, a := l.Active("a"); total != 2 || a != 1 {
		t.Fatalf("active %d, of a %d; want 2 and 1", total, a)
	}
	c1, err := l.Acquire("c")
	if err != nil {
		t.Fatalf("a slot given back is taken again: %v", err)
	}
	for _, r := range []func(){a2, b1, c1} {
		r()
	}
	if total, _ := l.Active(""); total != 0 || len(l.tenants) != 0 {
		t.Fatalf("active %d, tenants %v after every release", total, l.tenants)
	}
}

func TestNoLimits(t *testing.T) {
	var nilLimiter *Limiter
	for _, l := range []*Limiter{nilLimiter, New(0, 0)} {
		for range 100 {
			if _, err := l.Acquire("a"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	l := New(50, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, refused := 0, 0
	var releases []func()
	for range 200 {
		wg.Go(func() {
			r, err := l.Acquire("a")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused++
				return
			}
			held++
			releases = append(releases, r)
		})
	}
	wg.Wait()
	if held != 50 || refused != 150 {
		t.Fatalf("held %d, refused %d; want 50 and 150", held, refused)
	}
	for _, r := range releases {
		wg.Go(r)
	}
	wg.Wait()
	if total, _ := l.Active("a"); total != 0 {
		t.Fatalf("%d active after every release", total)
	}
}

// A draining limiter refuses every call, with or without limits, and the calls holding a
// slot give it back as they end.
func TestDrain(t *testing.T) {
	for _, l := range []*Limiter{New(3, 2), New(0, 0)} {
		held, err := l.Acquire("a")
		if err != nil {
			t.Fatal(err)
		}
		l.Drain()
		if !l.Draining() {
			t.Fatal("Draining is false after Drain")
		}
		_, err = l.Acquire("b")
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrDraining) || err.Error() != ErrDraining.Error() {
			t.Fatalf("Acquire while draining: %v, want ErrDraining", err)
		}
		if err := l.Check("a"); !errors.Is(err, ErrDraining) {
			t.Fatalf("Check while draining: %v", err)
		}
		held()
		if total, _ := l.Active("a"); total != 0 {
			t.Fatalf("%d calls active after the last ended", total)
		}
	}
	var none *Limiter
	none.Drain()
	if none.Draining() {
		t.Fatal("a nil limiter drains")
	}
}
