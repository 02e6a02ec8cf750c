package call

import (
	"testing"

	"github.com/switchboard-go/switchboard/media"
)

// The echo's 8 kHz delay line holds μ-law: what a μ-law call sent comes back bit for bit,
// and an A-law call's audio comes back within one μ-law step of what it was.
func TestDelayLineKeepsG711(t *testing.T) {
	codes := make([]byte, 256)
	for i := range codes {
		codes[i] = byte(i)
	}
	heard := make([]int16, 256)
	back := make([]int16, 256)
	line := newDelayLine(media.Rate8k, 512)

	media.DecodePCMU(heard, codes)
	line.put(256, heard)
	line.get(back, 256)
	again := make([]byte, 256)
	media.EncodePCMU(again, back)
	for i := range codes {
		if again[i] != codes[i] && heard[i] != 0 { // μ-law has two zeros, +0 and -0
			t.Fatalf("μ-law code %#02x came back as %#02x", codes[i], again[i])
		}
	}

	media.DecodePCMA(heard, codes)
	line.put(0, heard)
	line.get(back, 0)
	for i := range heard {
		d := int(heard[i]) - int(back[i])
		if d < 0 {
			d = -d
		}
		// μ-law's step is at most 1/16 of the level (and 8 near silence).
		if limit := max(8, abs(int(heard[i]))/16); d > limit {
			t.Fatalf("A-law sample %d came back as %d (off by %d, more than %d)", heard[i], back[i], d, limit)
		}
	}

	wide := newDelayLine(media.Rate16k, 320)
	in := make([]int16, 320)
	for i := range in {
		in[i] = int16(i*97 - 15000)
	}
	out := make([]int16, 320)
	wide.put(0, in)
	wide.get(out, 0)
	for i := range in {
		if in[i] != out[i] {
			t.Fatalf("16 kHz sample %d changed: %d → %d", i, in[i], out[i])
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
