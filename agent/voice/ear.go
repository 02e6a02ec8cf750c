package voice

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
)

// The ear reads the caller's audio frame by frame for the whole call, whatever the brain
// is doing: it resamples each frame to 16 kHz, runs the VAD, and keeps the caller's
// utterances as segments (with a pre-roll so the first syllable reaches STT whole) until
// the conversation consumes or drops them. It also feeds a voicemail recording when one
// runs. The conversation reads its state under mu; after each frame it kicks the
// conversation, which re-evaluates whatever it waits for.

const (
	prerollFrames = 15                                    // 300 ms of audio kept before an onset
	segmentCap    = 60 * vadRate                          // a segment longer than a minute is cut
	segmentClose  = 3 * time.Second / media.FrameDuration // silence after which the ear closes a segment
	maxSegments   = 4                                     // segments kept unconsumed; older ones are dropped
	readerStalled = 6 * media.FrameDuration               // a read this late lost frames (media's readMaxLag, plus the frame)
)

// segment is one utterance of the caller as the ear heard it.
type segment struct {
	id    uint64
	start time.Time // the onset, dated back to the first frame above the noise
	// lastVoiced is when the last speech frame was read; span counts frames from the onset
	// to it, silent the frames of silence since.
	lastVoiced time.Time
	span       int
	silent     int
	voiced     int // speech frames in all
	pcm        []int16
	// overlapped says it began while the agent was speaking; bargeIn that it interrupted
	// the agent (and was no backchannel), so it is the next input whatever it says.
	overlapped bool
	bargeIn    bool
	closed     bool
	// due is when the frame was read with which the speech lasted long enough to interrupt.
	due time.Time
	// text is a transcript the conversation already made of it, valid while voiced is
	// still textVoiced.
	text       string
	textVoiced int
	textOK     bool
	sttMS      float64
	sttDone    time.Time
}

func (s *segment) speechMS() float64 { return float64(s.span) * 20 }

// recording is a voicemail being captured, at the stream's rate.
type recording struct {
	samples []int16
	max     int
	spoke   bool
	silent  int // frames of silence since the caller last spoke
}

type ear struct {
	stream media.Stream
	rs     *media.Resampler
	vad    *vad
	frame  media.Frame
	buf16  []int16
	ring   []int16 // the last prerollFrames frames of 16 kHz audio, oldest first
	ringN  int
	// playing says whether the agent is speaking, for segments' overlapped flag.
	playing func() bool
	kick    func()
	// minSpan is the speech, in frames, that may interrupt the agent.
	minSpan int
	// stt, when set, is the live transcriber every frame is written to.
	stt *speech.STTStream
	// tap, when set, is given every frame heard at the stream's rate, before the VAD: a
	// speech-to-speech model hears the caller through it. The frame is the ear's own: a
	// tap copies what it keeps.
	tap atomic.Pointer[func([]int16)]

	mu     sync.Mutex
	segs   []*segment
	open   *segment
	nextID uint64
	rec    *recording
	free   [][]int16
}

func newEar(stream media.Stream, playing func() bool, kick func()) (*ear, error) {
	if e, ok := stream.(media.EagerReader); ok {
		// The VAD and the transcriber decide on each frame as it comes: the jitter
		// buffer's depth is for a listener's ear, and the caller's last word would reach
		// the turn-taking that much later.
		e.ReadEagerly()
	}
	rate := stream.SampleRate()
	e := &ear{
		stream:  stream,
		vad:     newVAD(),
		frame:   media.Frame{Rate: rate, Samples: make([]int16, media.SamplesPerFrame(rate))},
		buf16:   make([]int16, vadFrame),
		ring:    make([]int16, prerollFrames*vadFrame),
		playing: playing,
		kick:    kick,
	}
	if rate != vadRate {
		rs, err := media.NewResampler(rate, vadRate)
		if err != nil {
			return nil, err
		}
		e.rs = rs
	}
	return e, nil
}

// run reads frames until the stream ends.
func (e *ear) run() error {
	last := time.Now()
	for {
		if err := e.stream.ReadFrame(&e.frame); err != nil {
			if errors.Is(err, media.ErrClosed) {
				return nil
			}
			return err
		}
		now := time.Now()
		if gap := now.Sub(last); gap > readerStalled {
			// The stream restarts its clock for a reader this late: the frames of the
			// gap are gone. A recording keeps its length with silence instead.
			e.padRecording(int(gap/media.FrameDuration) - 1)
		}
		last = now
		e.hear(now)
	}
}

// padRecording adds frames of silence to a running recording.
func (e *ear) padRecording(frames int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec := e.rec
	if rec == nil || frames <= 0 {
		return
	}
	n := min(frames*len(e.frame.Samples), rec.max-len(rec.samples))
	if n > 0 {
		rec.samples = append(rec.samples, make([]int16, n)...)
		rec.silent += frames
	}
}

// hear processes the frame in e.frame, read at now.
func (e *ear) hear(now time.Time) {
	pcm := e.frame.Samples
	if tap := e.tap.Load(); tap != nil {
		(*tap)(pcm)
	}
	if e.rs != nil {
		n, err := e.rs.Resample(e.buf16, pcm)
		if err != nil {
			return
		}
		pcm = e.buf16[:n]
	}
	r := e.vad.Process(pcm)
	if e.stt != nil {
		// A stream that ended takes no more; the conversation heard why from its events.
		_ = e.stt.Write(pcm)
	}

	e.mu.Lock()
	if rec := e.rec; rec != nil {
		if len(rec.samples)+len(e.frame.Samples) <= rec.max {
			rec.samples = append(rec.samples, e.frame.Samples...)
		}
		if r.Speech {
			rec.spoke, rec.silent = true, 0
		} else {
			rec.silent++
		}
	}
	if s := e.open; s != nil {
		switch {
		case r.Speech:
			s.span += s.silent + 1
			s.silent = 0
			s.voiced++
			s.lastVoiced = now
			if s.due.IsZero() && s.span >= e.minSpan {
				s.due = now
			}
		default:
			s.silent++
		}
		if len(s.pcm)+len(pcm) <= segmentCap {
			s.pcm = append(s.pcm, pcm...)
		}
		if int64(s.silent) >= int64(segmentClose) || len(s.pcm)+len(pcm) > segmentCap {
			s.closed = true
			e.open = nil
		}
	} else if r.Start {
		e.startSegment(now, r.OnsetFrames, pcm)
	}
	e.mu.Unlock()

	// The pre-roll ring keeps the last frames whatever happens.
	copy(e.ring, e.ring[vadFrame:])
	copy(e.ring[len(e.ring)-vadFrame:], pcm)
	e.ringN = min(e.ringN+1, prerollFrames)
	e.kick()
}

// startSegment opens a segment for speech that began onset frames ago (this one included).
// The caller holds mu.
func (e *ear) startSegment(now time.Time, onset int, pcm []int16) {
	if len(e.segs) >= maxSegments {
		e.release(e.segs[0])
		e.segs = e.segs[1:]
	}
	var buf []int16
	if n := len(e.free); n > 0 {
		buf, e.free = e.free[n-1][:0], e.free[:n-1]
	}
	pre := e.ring[len(e.ring)-e.ringN*vadFrame:]
	buf = append(buf, pre...)
	buf = append(buf, pcm...)
	e.nextID++
	s := &segment{
		id:         e.nextID,
		start:      now.Add(-time.Duration(onset-1) * media.FrameDuration),
		lastVoiced: now,
		span:       onset,
		voiced:     onset,
		pcm:        buf,
		overlapped: e.playing(),
	}
	e.segs = append(e.segs, s)
	e.open = s
}

// release returns a segment's buffer for reuse. The caller holds mu.
func (e *ear) release(s *segment) {
	if s == e.open {
		e.open = nil
	}
	if cap(s.pcm) > 0 && len(e.free) < 2 {
		e.free = append(e.free, s.pcm[:0])
	}
	s.pcm = nil
	s.closed = true
}

// first returns the oldest segment not yet consumed, or nil.
func (e *ear) first() *segment {
	if len(e.segs) == 0 {
		return nil
	}
	return e.segs[0]
}

// consume removes s from the queue (it was a turn, or dropped). The caller holds mu.
func (e *ear) consume(s *segment) {
	for i, x := range e.segs {
		if x == s {
			e.segs = append(e.segs[:i], e.segs[i+1:]...)
			break
		}
	}
	e.release(s)
}

// dropAll forgets every segment (after a recording, whose speech is the message).
func (e *ear) dropAll() {
	for _, s := range e.segs {
		e.release(s)
	}
	e.segs = e.segs[:0]
}

// snapshot copies a segment's audio up to its last voiced frame plus a little silence,
// for transcription. The caller holds mu.
func (e *ear) snapshot(s *segment) []int16 {
	keep := len(s.pcm) - max(0, s.silent-10)*vadFrame
	keep = max(0, min(keep, len(s.pcm)))
	out := make([]int16, keep)
	copy(out, s.pcm[:keep])
	return out
}
