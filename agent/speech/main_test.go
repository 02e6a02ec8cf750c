package speech_test

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent/speech"
)

// TestMain fails the package if a test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx is the deadline of one test.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readAll reads audio to its end.
func readAll(t testing.TB, a speech.Audio) []int16 {
	t.Helper()
	defer a.Close()
	var out []int16
	buf := make([]int16, 1024)
	for {
		n, err := a.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read audio: %v", err)
		}
	}
}

// speechStats describes audio by what it sounds like: its length and how much of it is
// loud enough to be speech.
type speechStats struct {
	seconds float64
	rms     float64 // over the whole clip
	voiced  float64 // share of 20 ms frames above -40 dBFS
}

func describe(pcm []int16, rate int) speechStats {
	st := speechStats{seconds: float64(len(pcm)) / float64(rate)}
	if len(pcm) == 0 {
		return st
	}
	frame := rate / 50
	var total float64
	frames, loud := 0, 0
	for i := 0; i+frame <= len(pcm); i += frame {
		var e float64
		for _, s := range pcm[i : i+frame] {
			e += float64(s) * float64(s)
		}
		total += e
		frames++
		if math.Sqrt(e/float64(frame)) > 32768*0.01 {
			loud++
		}
	}
	st.rms = math.Sqrt(total / float64(frames*frame))
	st.voiced = float64(loud) / float64(max(frames, 1))
	return st
}

func sin(x float64) float64 { return math.Sin(x) }
