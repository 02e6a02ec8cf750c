// Package media owns the audio of a call: 20 ms frames of PCM16, the codecs that carry them
// (PCMU, PCMA, Opus), resampling between the rates transports and engines use, the RTP
// session with its jitter buffer and RFC 4733 telephone events, RTCP statistics, and WAV
// recording. It knows nothing of SIP, HTTP or the database.
//
// The steady-state media path allocates nothing per frame: every stage owns its buffers,
// allocated once per stream, and writes into buffers its caller owns.
package media

import (
	"errors"
	"sync/atomic"
	"time"
)

// FrameDuration is the length of every frame on the media path.
const FrameDuration = 20 * time.Millisecond

// Sample rates the media path uses: telephone (8 kHz), wideband (16 kHz, speech engines),
// 24 kHz (some speech synthesizers) and fullband (48 kHz, Opus and WebRTC).
const (
	Rate8k  = 8000
	Rate16k = 16000
	Rate24k = 24000
	Rate48k = 48000
)

// SamplesPerFrame is how many samples a 20 ms frame holds at rate.
func SamplesPerFrame(rate int) int { return rate / 50 }

// Frame is 20 ms of mono PCM16 audio. Samples is owned by whoever allocated it; stages write
// into a frame their caller passes rather than returning new ones.
type Frame struct {
	Rate    int
	Samples []int16
}

// EventKind says what an Event is.
type EventKind uint8

const (
	// EventDTMF is a key pressed (RFC 4733 telephone-event, SIP INFO, or in-band).
	EventDTMF EventKind = iota + 1
	// EventHangup is the far end gone (BYE, closed socket, media timeout).
	EventHangup
)

// Event is something other than audio that happened on a stream.
type Event struct {
	Kind EventKind
	// Digit is the key of a DTMF event: 0-9, *, #, A-D.
	Digit    rune
	Duration time.Duration
	// Reason says why a hang-up happened ("bye", "media-timeout", …).
	Reason string
}

// Stream is the seam every transport adapts to and the agent sees alone: a duplex source
// and sink of 20 ms PCM16 frames at one sample rate, with DTMF and hang-up as events, its
// ending and why, and how its media fared. What only some transports can do is an optional
// interface beside it (Clearer, DTMFSender), which each transport that has it asserts at
// compile time.
type Stream interface {
	// SampleRate is the rate of the frames read and written.
	SampleRate() int
	// ReadFrame fills f (whose Samples has room for one frame) with the next 20 ms heard,
	// waiting for it; it returns ErrClosed once the stream ended.
	ReadFrame(f *Frame) error
	// WriteFrame sends 20 ms to the far end; the stream paces it.
	WriteFrame(f *Frame) error
	// Events delivers DTMF and hang-up; it is closed when the stream ends.
	Events() <-chan Event
	// Done is closed once the stream ended, whichever side ended it.
	Done() <-chan struct{}
	// Reason is why the stream ended (the far end's "bye", "media-timeout",
	// "peer-disconnected", …, or "closed" when Close ended it); "" while it lives.
	Reason() string
	// Quality is how the stream's media has fared so far, for the call's record.
	Quality() Quality
	// Close ends the stream; it is idempotent.
	Close() error
}

// Quality is how a stream's media fared: packets (or frames, for a transport without
// packets of its own) received, sent and lost, and the interarrival jitter and round-trip
// time where the transport measures them. Its fields are those of the call record's
// quality (store.CallQuality), which converts from it.
type Quality struct {
	PacketsReceived int64
	PacketsSent     int64
	// PacketsLost is never negative (RFC 3550's count is, with duplicates).
	PacketsLost int64
	// PacketsLate counts packets that came too late to be played (see RTPStats.Late): not
	// lost to RFC 3550, but the audio they carried never reached the call.
	PacketsLate int64
	// LossPercent is PacketsLost of those expected.
	LossPercent float64
	JitterMS    float64
	RTTMS       float64
}

// Clearer is a stream that holds our audio at the far end before it is played (a
// media-stream socket: the CPaaS buffers what we send ahead). Clear drops what the far end
// holds unplayed, on barge-in, and says how much that was.
type Clearer interface {
	Clear() time.Duration
}

// EagerReader is a stream whose reader may take each frame as soon as it has come in
// order rather than on the playout clock: a listener that decides on what it hears (a VAD,
// a live transcriber) hears the far end up to the jitter buffer's depth sooner, where even
// playout is for a listener's ear. A missing frame still waits out the buffer's depth
// before it is concealed. ReadEagerly is called by the stream's reader before it reads.
type EagerReader interface {
	ReadEagerly()
}

// DTMFSender is a stream that can play a key to the far end (RFC 4733 telephone events),
// held for d.
type DTMFSender interface {
	SendDTMF(digit rune, d time.Duration) error
}

// ErrClosed is a stream that has ended.
var ErrClosed = errors.New("media: stream closed")

// AfterDone arranges for f to run in its own goroutine once s has ended, and returns a
// function that cancels that, reporting whether it did so before f started. A stream that
// can call back when it ends (RTPSession) costs no goroutine until then; any other is
// watched by one.
func AfterDone(s Stream, f func()) (stop func() bool) {
	if a, ok := s.(interface{ AfterDone(func()) func() bool }); ok {
		return a.AfterDone(f)
	}
	var state atomic.Int32 // 0 waiting, 1 f started, 2 stopped
	stopped := make(chan struct{})
	go func() {
		select {
		case <-s.Done():
			if state.CompareAndSwap(0, 1) {
				f()
			}
		case <-stopped:
		}
	}()
	return func() bool {
		if state.CompareAndSwap(0, 2) {
			close(stopped)
			return true
		}
		return false
	}
}
