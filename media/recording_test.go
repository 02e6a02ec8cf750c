package media

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// TestRecording records a call's two sides on the reader's clock: stereo keeps the caller's
// 440 Hz on the left and the agent's 1 kHz on the right, in step; mono mixes them; frames
// sent while nothing is heard (a socket whose caller went quiet) are written against
// silence rather than lost, and those still waiting at Close are written too.
func TestRecording(t *testing.T) {
	t.Parallel()
	const rate, frames = Rate8k, 50
	spf := SamplesPerFrame(rate)
	run := func(channels int, quietTail int) *WAV {
		t.Helper()
		var f memFile
		r, err := NewRecording(&f, rate, channels)
		if err != nil {
			t.Fatal(err)
		}
		for i := range frames {
			r.Sent(testTone(1000, rate, spf, i*spf, 6000))
			r.Heard(testTone(440, rate, spf, i*spf, 6000))
		}
		// The caller stops sending; the agent goes on for quietTail frames.
		for i := range quietTail {
			r.Sent(testTone(1000, rate, spf, (frames+i)*spf, 6000))
		}
		if got := r.Duration(); got != time.Duration(frames+max(0, quietTail-recordingLag))*FrameDuration {
			t.Errorf("Duration before Close: %v", got)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		w, err := ReadWAV(bytes.NewReader(f.b))
		if err != nil || w.Channels != channels || w.Rate != rate {
			t.Fatalf("ReadWAV: %+v %v", w, err)
		}
		return w
	}

	w := run(2, 20)
	left, right := w.Channel(0), w.Channel(1)
	if len(left) != (frames+20)*spf {
		t.Fatalf("%d samples a channel, want %d", len(left), (frames+20)*spf)
	}
	if f := zeroCrossFreq(left[:frames*spf], rate); math.Abs(f-440) > 5 {
		t.Errorf("left channel at %.0f Hz, want the caller's 440", f)
	}
	if f := zeroCrossFreq(right, rate); math.Abs(f-1000) > 5 {
		t.Errorf("right channel at %.0f Hz, want the agent's 1000 (every frame sent, the quiet tail too)", f)
	}
	if l := rms(left[frames*spf:]); l != 0 {
		t.Errorf("left channel while the caller sent nothing: level %.0f, want silence", l)
	}

	mono := run(1, 0).Samples
	if len(mono) != frames*spf {
		t.Fatalf("mono: %d samples, want %d", len(mono), frames*spf)
	}
	// Both tones are in the mix: its level is that of two tones of 6000, not one.
	if l := rms(mono); l < 5500 || l > 6500 {
		t.Errorf("mono level %.0f, want about %.0f (two tones mixed)", l, 6000.0)
	}
}

// TestRecordedStream: a recorded stream keeps the Clearer of the stream it records.
func TestRecordedStream(t *testing.T) {
	t.Parallel()
	var f memFile
	r, err := NewRecording(&f, Rate8k, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Recorded(clearerStream{}, r).(Clearer); !ok {
		t.Error("a recorded Clearer is not a Clearer")
	}
	if _, ok := Recorded(plainStream{}, r).(Clearer); ok {
		t.Error("a recorded plain stream became a Clearer")
	}
}

type plainStream struct{ Stream }

type clearerStream struct{ Stream }

func (clearerStream) Clear() time.Duration { return 0 }

// discardFile is a WriteSeeker that keeps nothing: the cost of recording without the disk's.
type discardFile struct{}

func (discardFile) Write(p []byte) (int, error)               { return len(p), nil }
func (discardFile) Seek(off int64, whence int) (int64, error) { return 0, nil }

// TestRecordingAllocs: recording a call's frames, both ways, allocates nothing per frame,
// in stereo and in mono.
func TestRecordingAllocs(t *testing.T) {
	for _, channels := range []int{2, 1} {
		r, err := NewRecording(discardFile{}, Rate16k, channels)
		if err != nil {
			t.Fatal(err)
		}
		frame := testTone(440, Rate16k, SamplesPerFrame(Rate16k), 0, 6000)
		if n := testing.AllocsPerRun(200, func() { r.Sent(frame); r.Heard(frame) }); n != 0 {
			t.Errorf("%d channels: %.1f allocations a frame, want 0", channels, n)
		}
	}
}

// BenchmarkRecording is the cost of recording one 20 ms tick of a 16 kHz call, both sides.
func BenchmarkRecording(b *testing.B) {
	for _, channels := range []int{2, 1} {
		b.Run(map[int]string{1: "mono", 2: "stereo"}[channels], func(b *testing.B) {
			r, err := NewRecording(discardFile{}, Rate16k, channels)
			if err != nil {
				b.Fatal(err)
			}
			frame := testTone(440, Rate16k, SamplesPerFrame(Rate16k), 0, 6000)
			b.ReportAllocs()
			for b.Loop() {
				r.Sent(frame)
				r.Heard(frame)
			}
		})
	}
}
