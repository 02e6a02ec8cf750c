package voice

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/media"
)

// recordBrain records one message with opts and hands it over.
func recordBrain(opts agent.RecordOptions, out chan<- agent.Recording) brainFunc {
	return func(ctx context.Context, c agent.Conversation) error {
		rec, err := c.Record(ctx, opts)
		out <- rec
		if err != nil {
			return err
		}
		c.Hangup("done")
		return nil
	}
}

func decodeRecording(t *testing.T, rec agent.Recording) *media.WAV {
	t.Helper()
	w, err := media.ReadWAV(bytes.NewReader(rec.WAV))
	if err != nil {
		t.Fatal(err)
	}
	if w.Channels != 1 || w.Rate != media.Rate8k {
		t.Fatalf("recording is %d channels at %d Hz", w.Channels, w.Rate)
	}
	if got := time.Duration(len(w.Samples)) * time.Second / time.Duration(w.Rate); got != rec.Duration {
		t.Errorf("WAV holds %v, Duration says %v", got, rec.Duration)
	}
	return w
}

// toneHz estimates the frequency of a pure tone by its zero crossings.
func toneHz(pcm []int16, rate int) float64 {
	n := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i] >= 0) != (pcm[i-1] >= 0) {
			n++
		}
	}
	return float64(n) / 2 / (float64(len(pcm)) / float64(rate))
}

func TestRecordUntilSilence(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	out := make(chan agent.Recording, 1)
	wait := r.run(testCtx(t, 60*time.Second), recordBrain(agent.RecordOptions{Beep: true, Silence: time.Second, MaxDuration: 20 * time.Second}, out))
	start := time.Now()
	// The beep: 300 ms of 440 Hz.
	if _, ok := r.caller.waitSpeech(start, 200*time.Millisecond, 10*time.Second); !ok {
		t.Fatal("no beep")
	}
	if _, ok := r.caller.waitQuiet(start, 100*time.Millisecond, 10*time.Second); !ok {
		t.Fatal("the beep did not end")
	}
	msg := fixture(t, "hello")
	began := time.Now()
	r.caller.say(msg)
	rec := <-out
	wait()
	w := decodeRecording(t, rec)
	// From the beep's end: the message, then a second of silence; a little latency either side.
	lead := began.Sub(start)
	want := float64(len(msg))/8000 + 1
	got := rec.Duration.Seconds()
	t.Logf("recording of %.2f s, message %.2f s + 1 s silence (beep and lead %v)", got, want-1, lead.Round(time.Millisecond))
	if got < want-0.4 || got > want+1.0 {
		t.Errorf("recording of %.2f s, want about %.2f", got, want)
	}
	if share := speechShare(w.Samples, w.Rate); share < 0.4 {
		t.Errorf("speech in %.0f%% of the recording", share*100)
	}
	var beep []int16
	for _, h := range r.caller.heardSince(start) {
		if h.at.Before(began) && h.level > speechDB {
			beep = append(beep, h.pcm...)
		}
	}
	if d := float64(len(beep)) / 8000; d < 0.2 || d > 0.4 {
		t.Errorf("beep of %.2f s, want 0.3", d)
	}
	if hz := toneHz(beep, 8000); math.Abs(hz-440) > 15 {
		t.Errorf("beep at %.0f Hz, want 440", hz)
	}
}

func TestRecordStopsOnKey(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	out := make(chan agent.Recording, 1)
	wait := r.run(testCtx(t, 60*time.Second), recordBrain(agent.RecordOptions{StopOnDTMF: true, Silence: 10 * time.Second, MaxDuration: 30 * time.Second}, out))
	r.listening()
	r.caller.say(fixture(t, "question"))
	if err := r.caller.sess.SendDTMF('#', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	rec := <-out
	wait()
	decodeRecording(t, rec)
	// The message is about 3.3 s; a caller on a busy machine drops the frames it could not
	// send in time (as a real phone's pacer does), so the floor leaves room for that. What
	// matters is that the key, not the silence or the limit, ended it.
	if d := rec.Duration.Seconds(); d < 2 || d > 5 {
		t.Errorf("recording of %.2f s, want the message until the key (~3.3 s)", d)
	}
}

func TestRecordMaxDuration(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	out := make(chan agent.Recording, 1)
	wait := r.run(testCtx(t, 60*time.Second), recordBrain(agent.RecordOptions{MaxDuration: 2 * time.Second}, out))
	r.listening()
	r.caller.sayAsync(append(fixture(t, "wait"), fixture(t, "hello")...))
	rec := <-out
	wait()
	decodeRecording(t, rec)
	if d := rec.Duration.Seconds(); math.Abs(d-2) > 0.05 {
		t.Errorf("recording of %.2f s, want 2", d)
	}
}
