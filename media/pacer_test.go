package media

import (
	"errors"
	"testing"
	"time"
)

// The clock both transports pace with: a reader that stalls starts over, a writer that
// stalls resumes in phase with the frames it missed counted, a telephone event starts on
// the clock.
func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	f := FrameDuration

	r := NewPacer()
	for i := range 3 {
		if got := r.ReadSlot(t0, 5*f); !got.Equal(t0.Add(time.Duration(i) * f)) {
			t.Fatalf("read slot %d at %v, want %v", i, got.Sub(t0), time.Duration(i)*f)
		}
	}
	// Within the lag the reader is owed its slot; past it the clock starts over at now.
	if got := r.ReadSlot(t0.Add(7*f), 5*f); !got.Equal(t0.Add(3 * f)) {
		t.Errorf("read slot within the lag at %v, want %v", got.Sub(t0), 3*f)
	}
	late := t0.Add(20*f + 3*time.Millisecond)
	if got := r.ReadSlot(late, 5*f); !got.Equal(late) {
		t.Errorf("read slot after a stall at %v, want now (%v)", got.Sub(t0), late.Sub(t0))
	}

	w := NewPacer()
	if slot, skipped, first := w.WriteSlot(t0, 3*f); !slot.Equal(t0) || skipped != 0 || !first {
		t.Fatalf("first write slot %v, %d skipped, first %v", slot.Sub(t0), skipped, first)
	}
	if slot, skipped, first := w.WriteSlot(t0, 3*f); !slot.Equal(t0.Add(f)) || skipped != 0 || first {
		t.Fatalf("second write slot %v, %d skipped, first %v", slot.Sub(t0), skipped, first)
	}
	// A writer 10 frames and a bit behind: the 10 missed slots are skipped, in phase.
	slot, skipped, _ := w.WriteSlot(t0.Add(12*f+5*time.Millisecond), 3*f)
	if skipped != 10 || !slot.Equal(t0.Add(12*f)) {
		t.Errorf("write slot after a stall at %v with %d skipped, want %v with 10", slot.Sub(t0), skipped, 12*f)
	}
	if k := w.SkipTo(t0.Add(15*f + time.Millisecond)); k != 3 || !w.Next().Equal(t0.Add(16*f)) {
		t.Errorf("SkipTo skipped %d to %v, want 3 to %v", k, w.Next().Sub(t0), 16*f)
	}
	if k := w.SkipTo(t0); k != 0 {
		t.Errorf("SkipTo into the past skipped %d", k)
	}
}

func TestPacerWaitEnds(t *testing.T) {
	p := NewPacer()
	done := make(chan struct{})
	if err := p.Wait(time.Now().Add(-time.Second), done); err != nil {
		t.Fatalf("a slot past: %v", err)
	}
	close(done)
	if err := p.Wait(time.Now().Add(time.Hour), done); !errors.Is(err, ErrClosed) {
		t.Fatalf("a stream that ended: %v, want ErrClosed", err)
	}
}
