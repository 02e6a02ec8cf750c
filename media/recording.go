package media

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// recordingLag is how many frames of what Switchboard sent wait to be paired with what was
// heard in the same tick. A transport whose reads stall (a media-stream socket whose
// caller sends nothing) would otherwise lose them: past this many, the oldest is written
// against silence.
const recordingLag = 8

// Recording writes both sides of a call to a WAV file as the call goes: what was heard
// (the caller) and what was sent (the agent or destination), in stereo (caller left,
// Switchboard right) or mixed to mono. Each frame heard is written with the oldest frame
// sent that is not yet written, or silence, so the two sides stay in step on the reader's
// 20 ms clock. It is safe for concurrent use: a call's reader and writer are different
// goroutines.
type Recording struct {
	mu       sync.Mutex
	w        *WAVWriter
	channels int
	frameLen int
	ring     []int16 // recordingLag frames of what was sent, oldest at head
	head, n  int
	silence  []int16
	mix      []int16
	frames   int64 // frames written
	err      error
}

// NewRecording starts a recording of frames at rate on w: channels 2 for stereo, 1 for a
// mono mix.
func NewRecording(w io.WriteSeeker, rate, channels int) (*Recording, error) {
	ww, err := NewWAVWriter(w, rate, channels)
	if err != nil {
		return nil, err
	}
	fl := SamplesPerFrame(rate)
	return &Recording{w: ww, channels: channels, frameLen: fl,
		ring: make([]int16, recordingLag*fl), silence: make([]int16, fl), mix: make([]int16, fl)}, nil
}

// Heard records one frame heard, with the frame sent in the same tick (silence if none).
func (r *Recording) Heard(samples []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	right := r.silence
	if r.n > 0 {
		right = r.ring[r.head*r.frameLen : (r.head+1)*r.frameLen]
		r.head = (r.head + 1) % recordingLag
		r.n--
	}
	r.write(samples, right)
}

// Sent keeps a frame sent for the next frame heard; when the reader is recordingLag frames
// behind, the oldest is written now against silence.
func (r *Recording) Sent(samples []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == recordingLag {
		r.write(r.silence, r.ring[r.head*r.frameLen:(r.head+1)*r.frameLen])
		r.head = (r.head + 1) % recordingLag
		r.n--
	}
	slot := (r.head + r.n) % recordingLag
	dst := r.ring[slot*r.frameLen : (slot+1)*r.frameLen]
	clear(dst)
	copy(dst, samples)
	r.n++
}

// write writes one tick; r.mu is held. A write that fails stops the recording: the file
// keeps what was written before.
func (r *Recording) write(left, right []int16) {
	if r.err != nil {
		return
	}
	if r.channels == 2 {
		r.err = r.w.WriteStereo(left, right)
	} else {
		n := max(len(left), len(right))
		if cap(r.mix) < n {
			r.mix = make([]int16, n)
		}
		mix := r.mix[:n]
		for i := range mix {
			var s int32
			if i < len(left) {
				s = int32(left[i])
			}
			if i < len(right) {
				s += int32(right[i])
			}
			mix[i] = int16(max(-32768, min(32767, s)))
		}
		r.err = r.w.Write(mix)
	}
	if r.err == nil {
		r.frames++
	}
}

// Duration is how much of the call was written so far.
func (r *Recording) Duration() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Duration(r.frames) * FrameDuration
}

// Close writes the frames sent that are still waiting, against silence, and finishes the
// file (its header's sizes). It is idempotent; it returns the first error of the
// recording.
func (r *Recording) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ; r.n > 0; r.n-- {
		r.write(r.silence, r.ring[r.head*r.frameLen:(r.head+1)*r.frameLen])
		r.head = (r.head + 1) % recordingLag
	}
	err := r.w.Close()
	if r.err != nil {
		return fmt.Errorf("media: recording: %w", r.err)
	}
	return err
}

// Recorded is s with what it reads and writes recorded on r. It keeps the optional
// interface s has (Clearer) so that what talks on the call sees the same stream.
func Recorded(s Stream, r *Recording) Stream {
	rs := recordedStream{Stream: s, rec: r}
	if c, ok := s.(Clearer); ok {
		return recordedClearer{rs, c}
	}
	return rs
}

type recordedStream struct {
	Stream
	rec *Recording
}

// ReadEagerly passes the reader's wish on to a stream that can read eagerly.
func (s recordedStream) ReadEagerly() {
	if e, ok := s.Stream.(EagerReader); ok {
		e.ReadEagerly()
	}
}

func (s recordedStream) ReadFrame(f *Frame) error {
	if err := s.Stream.ReadFrame(f); err != nil {
		return err
	}
	s.rec.Heard(f.Samples)
	return nil
}

func (s recordedStream) WriteFrame(f *Frame) error {
	if err := s.Stream.WriteFrame(f); err != nil {
		return err
	}
	s.rec.Sent(f.Samples)
	return nil
}

type recordedClearer struct {
	recordedStream
	c Clearer
}

func (s recordedClearer) Clear() time.Duration { return s.c.Clear() }
