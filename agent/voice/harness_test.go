package voice

import (
	"context"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// TestMain fails the package if a conversation leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The tests run conversations over a real RTP session on loopback: the agent's line is one
// media.RTPSession, the caller another, talking PCMU to each other like a phone call. The
// caller writes espeak-ng speech (testdata) and listens to the agent by its frames' energy.
// STT and TTS are speechtest's stand-in of OpenAI's audio API over real HTTP, whose voice is
// espeak-ng.

var specPCMU = media.CodecSpec{Name: "PCMU", PayloadType: 0, ClockRate: 8000, Channels: 1}

func udpConn(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// sessionPair returns the agent's and the caller's RTP sessions at rate.
func sessionPair(t testing.TB, rate int) (agentSide, callerSide *media.RTPSession) {
	t.Helper()
	ca, cb := udpConn(t), udpConn(t)
	var err error
	agentSide, err = media.NewRTPSession(media.RTPConfig{Conn: ca, Remote: addrOf(cb), Codec: specPCMU, EventPT: 101, Rate: rate, MediaTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	callerSide, err = media.NewRTPSession(media.RTPConfig{Conn: cb, Remote: addrOf(ca), Codec: specPCMU, EventPT: 101, Rate: rate, MediaTimeout: -1})
	if err != nil {
		_ = agentSide.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agentSide.Close()
		_ = callerSide.Close()
	})
	return agentSide, callerSide
}

// published is an event a conversation published on its line.
type published struct {
	typ  string
	data any
	at   time.Time
}

// testLine is the agent's side of the call: the RTP session, and a record of what the
// conversation did to the call.
type testLine struct {
	sess *media.RTPSession
	// stream, when set, is the stream the conversation gets instead of sess (a wrapper).
	stream media.Stream

	mu        sync.Mutex
	hangup    string
	transfers []string
	dtmf      string
	events    []published
}

func (l *testLine) Stream() media.Stream {
	if l.stream != nil {
		return l.stream
	}
	return l.sess
}

func (l *testLine) Hangup(reason string) {
	l.mu.Lock()
	if l.hangup == "" {
		l.hangup = reason
	}
	l.mu.Unlock()
	l.sess.Hangup(reason)
}

func (l *testLine) Transfer(_ context.Context, to string) error {
	l.mu.Lock()
	l.transfers = append(l.transfers, to)
	l.mu.Unlock()
	return nil
}

func (l *testLine) SendDTMF(digits string) error {
	l.mu.Lock()
	l.dtmf += digits
	l.mu.Unlock()
	return nil
}

func (l *testLine) Publish(typ string, data any) {
	l.mu.Lock()
	l.events = append(l.events, published{typ: typ, data: data, at: time.Now()})
	l.mu.Unlock()
}

func (l *testLine) hungUp() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hangup
}

// eventsOf returns the events of type typ so far.
func (l *testLine) eventsOf(typ string) []published {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []published
	for _, e := range l.events {
		if e.typ == typ {
			out = append(out, e)
		}
	}
	return out
}

// heardFrame is one frame the caller received from the agent.
type heardFrame struct {
	at    time.Time
	level float64 // dBFS
	pcm   []int16
}

// caller is the far end: it writes a frame every 20 ms (speech queued by say, otherwise
// the line's faint noise) and records the level of every frame it hears.
type caller struct {
	t    testing.TB
	sess *media.RTPSession
	rate int

	mu     sync.Mutex
	queue  []int16
	spoken []spokenSpan // when each say went out
	heard  []heardFrame
	noise  *noise
	wg     sync.WaitGroup
	done   chan struct{}
}

type spokenSpan struct{ start, end time.Time }

// speechDB is the level above which a heard frame counts as the agent speaking.
const speechDB = -45.0

func newCaller(t testing.TB, sess *media.RTPSession) *caller {
	c := &caller{t: t, sess: sess, rate: sess.SampleRate(), done: make(chan struct{}),
		noise: newNoise(42, sess.SampleRate(), -60, false)}
	c.wg.Add(2)
	go c.write()
	go c.read()
	t.Cleanup(c.stop)
	return c
}

func (c *caller) stop() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	_ = c.sess.Close()
	c.wg.Wait()
}

func (c *caller) write() {
	defer c.wg.Done()
	f := media.Frame{Rate: c.rate, Samples: make([]int16, media.SamplesPerFrame(c.rate))}
	for {
		select {
		case <-c.done:
			return
		default:
		}
		c.mu.Lock()
		n := copy(f.Samples, c.queue)
		c.queue = c.queue[n:]
		clear(f.Samples[n:])
		c.noise.add(f.Samples)
		if n > 0 && len(c.spoken) > 0 {
			c.spoken[len(c.spoken)-1].end = time.Now()
		}
		c.mu.Unlock()
		if err := c.sess.WriteFrame(&f); err != nil {
			return
		}
	}
}

func (c *caller) read() {
	defer c.wg.Done()
	f := media.Frame{Samples: make([]int16, media.SamplesPerFrame(c.rate))}
	for {
		if err := c.sess.ReadFrame(&f); err != nil {
			return
		}
		l := levelDB(f.Samples)
		c.mu.Lock()
		c.heard = append(c.heard, heardFrame{at: time.Now(), level: l, pcm: append([]int16(nil), f.Samples...)})
		c.mu.Unlock()
	}
}

// say queues pcm (8 kHz, resampled to the line's rate) and returns when it was sent.
func (c *caller) say(pcm []int16) {
	if c.rate != media.Rate8k {
		pcm = resampleAll(c.t, pcm, media.Rate8k, c.rate)
	}
	c.mu.Lock()
	c.queue = append(c.queue, pcm...)
	c.spoken = append(c.spoken, spokenSpan{start: time.Now()})
	c.mu.Unlock()
	for {
		c.mu.Lock()
		left := len(c.queue)
		c.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-c.done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sayAsync queues pcm and returns at once.
func (c *caller) sayAsync(pcm []int16) {
	c.mu.Lock()
	c.queue = append(c.queue, pcm...)
	c.spoken = append(c.spoken, spokenSpan{start: time.Now()})
	c.mu.Unlock()
}

// heardSince returns the frames heard after t.
func (c *caller) heardSince(t time.Time) []heardFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []heardFrame
	for _, h := range c.heard {
		if h.at.After(t) {
			out = append(out, h)
		}
	}
	return out
}

// waitSpeech waits until the agent has been heard speaking (frames above speechDB) for
// at least d after since, and returns when that speech began.
func (c *caller) waitSpeech(since time.Time, d, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		loud := 0
		var first time.Time
		for _, h := range c.heardSince(since) {
			if h.level > speechDB {
				if first.IsZero() {
					first = h.at
				}
				loud++
			}
		}
		if first.IsZero() || time.Duration(loud)*media.FrameDuration < d {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return first, true
	}
	return time.Time{}, false
}

// waitQuiet waits until the agent has been silent for d, and returns when its last
// loud frame was heard.
func (c *caller) waitQuiet(since time.Time, d, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var last time.Time
		for _, h := range c.heardSince(since) {
			if h.level > speechDB {
				last = h.at
			}
		}
		if !last.IsZero() && time.Since(last) >= d {
			return last, true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// loudFrames counts the frames above speechDB heard between a and b.
func (c *caller) loudFrames(a, b time.Time) int {
	n := 0
	for _, h := range c.heardSince(a) {
		if h.at.Before(b) && h.level > speechDB {
			n++
		}
	}
	return n
}

// brainFunc is a brain written in a test.
type brainFunc func(ctx context.Context, c agent.Conversation) error

func (f brainFunc) Run(ctx context.Context, c agent.Conversation) error { return f(ctx, c) }

// rig is one call: the line, the caller, the speech stand-in and the config.
type rig struct {
	t      testing.TB
	line   *testLine
	caller *caller
	srv    *speechtest.Server
	cfg    Config
	// saying is what the caller is saying: the stand-in STT's transcript of any audio.
	saying atomic.Pointer[string]
	// started is closed when the conversation has started its brain (run).
	started chan struct{}
}

// says sets the transcript of what the caller says next.
func (r *rig) says(text string) { r.saying.Store(&text) }

func newRig(t testing.TB, rate int) *rig {
	t.Helper()
	a, b := sessionPair(t, rate)
	srv := speechtest.NewOpenAI(t)
	r := &rig{
		t:       t,
		line:    &testLine{sess: a},
		caller:  newCaller(t, b),
		srv:     srv,
		started: make(chan struct{}),
		cfg: Config{
			STT:   speech.NewOpenAISTT(srv.URL, "", "", nil),
			TTS:   speech.NewOpenAITTS(srv.URL, "", "", nil),
			Voice: "alloy",
			Turn:  store.TurnSettings{EndpointingMS: 600, Interruptions: true, MinInterruptionMS: 250},
		},
	}
	r.says("")
	srv.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: *r.saying.Load()}
	})
	return r
}

// run runs brain on the rig's call in the background; wait returns its Result.
func (r *rig) run(ctx context.Context, brain agent.Brain) (wait func() Result) {
	done := make(chan Result, 1)
	var once sync.Once
	started := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		once.Do(func() { close(r.started) })
		return brain.Run(ctx, c)
	})
	go func() { done <- Run(ctx, r.line, started, r.cfg) }()
	return func() Result {
		select {
		case res := <-done:
			return res
		case <-time.After(60 * time.Second):
			r.t.Fatal("conversation did not end")
			return Result{}
		}
	}
}

// listening waits until the conversation has started its brain, by when it takes the
// caller's keys and audio, and then until the agent's line has received 200 ms more of the
// caller's line, so that the conversation has heard the line's noise before the caller
// speaks, as on a real call.
func (r *rig) listening() {
	r.t.Helper()
	select {
	case <-r.started:
	case <-time.After(20 * time.Second):
		r.t.Fatal("the conversation did not start")
	}
	from := r.line.sess.Stats().PacketsReceived
	for deadline := time.Now().Add(20 * time.Second); r.line.sess.Stats().PacketsReceived < from+10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("the agent's line received nothing from the caller")
		}
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// speechShare is the share of a signal's 20 ms frames above speechDB.
func speechShare(pcm []int16, rate int) float64 {
	frame := rate / 50
	loud, n := 0, 0
	for i := 0; i+frame <= len(pcm); i += frame {
		n++
		if levelDB(pcm[i:i+frame]) > speechDB {
			loud++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(loud) / float64(n)
}

var _ = math.Abs

// stallMeter measures how long this process was kept from running: a goroutine that asks
// to wake every few milliseconds notes by how much each wake-up was late. On a busy
// machine the conversation's goroutines are held up as long, and a test that judges
// timing heard by the caller allows for it, as a real jitter buffer rides out a stall.
type stallMeter struct {
	mu     sync.Mutex
	stalls []stall
	stop   chan struct{}
	done   chan struct{}
}

type stall struct {
	at   time.Time
	late time.Duration
}

func newStallMeter(t testing.TB) *stallMeter {
	m := &stallMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		const tick = 5 * time.Millisecond
		last := time.Now()
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(tick):
			}
			now := time.Now()
			if late := now.Sub(last) - tick; late > tick {
				m.mu.Lock()
				m.stalls = append(m.stalls, stall{at: now, late: late})
				m.mu.Unlock()
			}
			last = now
		}
	}()
	t.Cleanup(func() {
		close(m.stop)
		<-m.done
	})
	return m
}

// since is the time the process was held up after t.
func (m *stallMeter) since(t time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d time.Duration
	for _, s := range m.stalls {
		if s.at.After(t) {
			d += s.late
		}
	}
	return d
}
