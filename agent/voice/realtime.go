package voice

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/s2s"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/store"
)

// A speech-to-speech agent's call runs through a Realtime session instead of STT, a brain
// and TTS: the ear hands every frame of the caller to the model (µ-law for a telephone
// call's 8 kHz, 24 kHz PCM for wider calls, so that nothing is resampled twice), the
// model's audio is played through the conversation's player with the usual barge-in, and
// the conversation keeps the transcript, the report and the events as for any call. Turns
// end where the model's VAD says (server_vad, semantic_vad), or where ours does
// ("switchboard": the endpointing silence of the agent's turn settings, then commit and
// response.create). When the caller barges in, playback stops, the response is cancelled
// and the model's item is truncated at the audio the caller actually heard.

// Turn detection of a speech-to-speech agent (store.TurnSettings.Detection).
const (
	// TurnDetectionSwitchboard ends the caller's turn by Switchboard's own VAD and
	// endpointing silence.
	TurnDetectionSwitchboard = "switchboard"
	// DefaultRealtimeTranscription transcribes the caller for the transcript when the agent
	// names no transcriber model.
	DefaultRealtimeTranscription = "gpt-4o-mini-transcribe"
	// realtimeDialTimeout bounds the session's handshake.
	realtimeDialTimeout = 10 * time.Second
	// uplinkBatch is the caller's audio sent per append: 40 ms keeps the model's VAD close
	// to the caller while halving the messages of 20 ms frames.
	uplinkBatch = 2
	// minTurnFrames is the speech our own endpointing takes for a turn (noise is shorter).
	minTurnFrames = 10
	// realtimeKeyPause is the pause after the caller's last key that ends what they typed
	// for the model, where no '#' ended it sooner: shorter than a menu's inter-digit wait,
	// for a caller who pressed one key to choose is answered in a second.
	realtimeKeyPause = time.Second
)

// RealtimeConfig is a speech-to-speech agent's model and how it takes the call.
type RealtimeConfig struct {
	// Session is where the model is.
	Session s2s.Config
	// Instructions, Voice and Transcription configure the session (s2s.SessionConfig);
	// FirstMessage, when set, is said first, by the model.
	Instructions  string
	FirstMessage  string
	Voice         string
	Transcription string
	// TurnDetection is s2s.TurnServerVAD (when empty), s2s.TurnSemanticVAD or
	// TurnDetectionSwitchboard.
	TurnDetection string
	// Tools are the agent's tools offered as the model's functions; nil offers none.
	Tools *agent.Toolbox
}

// NewRealtimeBrain is the brain of a speech-to-speech agent: the call's audio goes to the
// model and its audio back. It runs only over a call's conversation (Run); a text session
// cannot use it.
func NewRealtimeBrain(cfg RealtimeConfig) agent.Brain { return &realtimeBrain{cfg: cfg} }

type realtimeBrain struct{ cfg RealtimeConfig }

// ErrNotAudio is a speech-to-speech brain asked to run a conversation that has no audio.
var ErrNotAudio = errors.New("voice: a speech-to-speech model answers calls only")

func (b *realtimeBrain) Run(context.Context, agent.Conversation) error { return ErrNotAudio }

// rtAnswer is one response of the model being played.
type rtAnswer struct {
	itemID string
	audio  chan chunk
	done   chan played
	// finished is closed when the player stopped.
	finished chan struct{}
	text     strings.Builder
	received int // samples at the stream's rate
	first    bool
	closed   bool
	// turn is the caller's turn it answers; nil for the greeting and answers to tools.
	turn *rtTurn
	// firstAudio is when its first audio arrived.
	firstAudio time.Time
	result     *played
	// cancelled says its response was cancelled already (the caller pressed keys over it):
	// when its player stops, the response being made is a new one.
	cancelled bool
}

// rtKeys are the keys a speech-to-speech call's caller is typing.
type rtKeys struct {
	digits      []rune
	start, last time.Time
}

// take moves the keys pressed from the conversation, and says whether a '#' ended them.
func (k *rtKeys) take(c *conversation) (ended bool) {
	c.mu.Lock()
	pressed := c.keys
	c.keys = nil
	c.mu.Unlock()
	for _, p := range pressed {
		if k.start.IsZero() {
			k.start = p.at
		}
		k.last = p.at
		if p.digit == '#' {
			ended = true
			continue
		}
		k.digits = append(k.digits, p.digit)
	}
	return ended || len(k.digits) >= maxTypedKeys
}

// maxTypedKeys ends what a caller types without a '#' or a pause.
const maxTypedKeys = 32

// keysTyped gives what the caller typed to the model as a message of theirs and asks it to
// answer; cur, the model's answer, is cut off if it is playing, as when the caller speaks
// over it. The transcript has the keys as a turn of the caller's, as on any call.
func (rc *realtimeCall) keysTyped(ctx context.Context, k *rtKeys, cur *rtAnswer) error {
	c := rc.c
	digits := string(k.digits)
	start, end := k.start, k.last
	*k = rtKeys{}
	if digits == "" {
		digits = "#"
	}
	c.keysTurn(digits, start, end)
	if cur != nil && cur.result == nil {
		cur.cancelled = true // cancelled here: when its player stops, the response is a new one
		c.interrupt.Store(true)
		c.wake()
	}
	if rc.responding {
		if err := rc.sess.CancelResponse(ctx); err != nil {
			return err
		}
		rc.responding = false
	}
	if err := rc.sess.UserText(ctx, "The caller pressed these keys on the telephone keypad: "+spaced(digits)); err != nil {
		return err
	}
	return rc.sess.CreateResponse(ctx, "")
}

// spaced writes digits one by one ("1 2 #"), as keys and not a number.
func spaced(digits string) string {
	var b strings.Builder
	for i, d := range digits {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(d)
	}
	return b.String()
}

// rtTurn is a caller's turn: when the caller last spoke and when the turn was declared over.
type rtTurn struct {
	lastVoiced, ended time.Time
}

// realtimeCall is the state of one call through a session, owned by runAudio's loop.
type realtimeCall struct {
	b      *realtimeBrain
	c      *conversation
	sess   *s2s.Session
	format s2s.Format
	up     *media.Resampler // stream rate → 24 kHz, nil for µ-law
	down   *media.Resampler // 24 kHz → stream rate, nil for µ-law
	ours   bool             // our turn detection

	// responding says a response is being made (response.created to response.done): only
	// then is there one to cancel. The loop's own.
	responding bool

	// heard tells the loop that our endpointing ended a caller's turn (it keeps the call
	// from going idle).
	heard chan struct{}

	mu        sync.Mutex
	committed uint64 // the last ear segment our endpointing committed
	turn      *rtTurn
}

//nolint:contextcheck // Hangup drains the line's tail on its own context, as every brain's hang-up does
func (b *realtimeBrain) runAudio(ctx context.Context, c *conversation) error {
	rc := &realtimeCall{b: b, c: c, format: s2s.FormatFor(c.rate), ours: b.cfg.TurnDetection == TurnDetectionSwitchboard,
		heard: make(chan struct{}, 1)}
	var err error
	if rc.format == s2s.FormatPCM {
		if rc.up, err = media.NewResampler(c.rate, rc.format.Rate()); err == nil {
			rc.down, err = media.NewResampler(rc.format.Rate(), c.rate)
		}
		if err != nil {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, realtimeDialTimeout)
	rc.sess, err = s2s.Dial(dctx, b.cfg.Session)
	cancel()
	if err == nil {
		err = rc.sess.Update(ctx, rc.sessionConfig())
	}
	if err != nil {
		if rc.sess != nil {
			_ = rc.sess.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("the speech-to-speech model cannot be reached", "error", err)
		c.publish(EventError, ErrorEvent{Stage: "brain", Error: err.Error()})
		_, _ = c.say(ctx, agent.DefaultErrorGoodbye, sayOptions{noBargeIn: true, internal: true})
		c.Hangup(string(call.ReasonAgentError))
		return nil
	}
	c.speechStops = true
	return rc.loop(ctx)
}

func (rc *realtimeCall) sessionConfig() s2s.SessionConfig {
	cfg := rc.b.cfg
	sc := s2s.SessionConfig{Instructions: cfg.Instructions, Voice: cfg.Voice, Format: rc.format,
		TurnDetection: cfg.TurnDetection, Transcription: cfg.Transcription}
	switch sc.TurnDetection {
	case "":
		sc.TurnDetection = s2s.TurnServerVAD
	case TurnDetectionSwitchboard:
		sc.TurnDetection = s2s.TurnNone
	}
	if sc.Transcription == "" {
		sc.Transcription = DefaultRealtimeTranscription
	}
	if cfg.Tools != nil {
		for _, t := range cfg.Tools.Tools() {
			sc.Tools = append(sc.Tools, s2s.Tool{Name: t.Name, Description: t.Description, Parameters: t.Parameters})
		}
	}
	return sc
}

// loop is the call's owner: it reads the model's events, plays its answers, runs its
// tools, and ends when the call or the session does.
//
//nolint:contextcheck // Hangup drains the line's tail on its own context, as every brain's hang-up does
func (rc *realtimeCall) loop(ctx context.Context) error {
	c := rc.c
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = rc.sess.Close()
		c.ear.tap.Store(nil)
		wg.Wait()
	}()

	events := make(chan s2s.Event, 256)
	readErr := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(events)
		for {
			ev, err := rc.sess.Next(ctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
		}
	}()
	frames := make(chan []int16, 50)
	tap := func(pcm []int16) {
		select {
		case frames <- append([]int16(nil), pcm...):
		default: // a stalled socket loses the caller's audio, never the ear's pace
		}
	}
	c.ear.tap.Store(&tap)
	go func() {
		defer wg.Done()
		rc.uplink(ctx, frames)
	}()

	if first := strings.TrimSpace(rc.b.cfg.FirstMessage); first != "" {
		if err := rc.sess.CreateResponse(ctx, "Greet the caller by saying exactly this: "+first); err != nil {
			return rc.failed(err)
		}
	}

	var cur *rtAnswer
	var calls []llm.ToolCall
	var toolsDone chan error
	greeting := rc.b.cfg.FirstMessage != ""
	finish := func(a *rtAnswer) {
		if a != nil && !a.closed {
			a.closed = true
			a.audio <- chunk{end: true}
			close(a.audio)
		}
	}
	// However the loop ends, the answer playing is closed, so that its player's drain ends.
	defer func() { finish(cur) }()
	// Keys the caller pressed, gathered until a '#' or a pause, go to the model as text.
	var keys rtKeys
	keyPause := time.NewTimer(time.Hour)
	keyPause.Stop()
	defer keyPause.Stop()
	// A caller who says nothing for the agent's idle limit, while the model says nothing
	// either, is hung up on (idle-timeout), as on any call.
	idle := time.NewTimer(c.idle)
	defer idle.Stop()
	for {
		var playerDone chan played
		if cur != nil && cur.result == nil {
			playerDone = cur.done
		}
		select {
		case <-ctx.Done():
			finish(cur)
			return ctx.Err()
		case <-idle.C:
			if playerDone != nil || toolsDone != nil || rc.responding {
				idle.Reset(c.idle)
				continue
			}
			c.log.Info("the caller said nothing for the idle limit", "idle", c.idle)
			c.Hangup(string(call.ReasonIdleTimeout))
			return agent.ErrHangup
		case <-rc.heard:
			idle.Reset(c.idle)
		case <-c.keyed:
			idle.Reset(c.idle)
			if keys.take(c) {
				keyPause.Stop()
				if err := rc.keysTyped(ctx, &keys, cur); err != nil {
					return rc.failed(err)
				}
			} else if len(keys.digits) > 0 {
				keyPause.Reset(realtimeKeyPause)
			}
		case <-keyPause.C:
			if len(keys.digits) > 0 {
				idle.Reset(c.idle)
				if err := rc.keysTyped(ctx, &keys, cur); err != nil {
					return rc.failed(err)
				}
			}
		case p := <-playerDone:
			cur.result = &p
			rc.answered(ctx, cur)
			idle.Reset(c.idle)
		case err := <-toolsDone:
			toolsDone = nil
			if err != nil {
				return err
			}
		case ev, ok := <-events:
			if !ok {
				finish(cur)
				err := <-readErr
				if c.check(ctx) != nil {
					return nil
				}
				if cur != nil && cur.result == nil {
					// What the model said before the session broke is heard before the apology.
					cur.result = ptr(<-cur.done)
					rc.answered(ctx, cur)
				}
				return rc.failed(err)
			}
			switch ev.Type {
			case s2s.EventSpeechStarted, s2s.EventSpeechStopped, s2s.EventResponseCreated:
				idle.Reset(c.idle)
			}
			switch ev.Type {
			case s2s.EventSpeechStarted:
				if cur != nil && cur.result == nil {
					c.interrupt.Store(true)
					c.wake()
				}
			case s2s.EventResponseCreated:
				rc.responding = true
			case s2s.EventSpeechStopped:
				rc.endTurn()
			case s2s.EventInputTranscript:
				if t := strings.TrimSpace(ev.Transcript); t != "" {
					now := time.Now()
					turn := Turn{Role: "user", Text: t, Start: now, End: now}
					if tt := rc.lastTurn(); tt != nil {
						turn.End = tt.lastVoiced
						turn.Start = tt.lastVoiced
					}
					c.addTurn(turn)
					c.publish(EventTranscript, turn)
				}
			case s2s.EventAudioDelta:
				if cur == nil || cur.itemID != ev.ItemID {
					finish(cur)
					if cur != nil && cur.result == nil {
						cur.result = ptr(<-cur.done)
						rc.answered(ctx, cur)
					}
					cur = rc.startAnswer(ctx, &wg, ev.ItemID, greeting)
					greeting = false
				}
				if !cur.closed && cur.result == nil {
					samples := rc.decode(ev.Audio)
					cur.received += len(samples)
					if cur.firstAudio.IsZero() {
						cur.firstAudio = time.Now()
					}
					ch := chunk{samples: samples, start: !cur.first}
					cur.first = true
					select {
					case cur.audio <- ch:
					case p := <-cur.done:
						cur.result = &p
						rc.answered(ctx, cur)
					}
				}
			case s2s.EventTranscriptDelta:
				if cur != nil && cur.itemID == ev.ItemID {
					cur.text.WriteString(ev.Text)
				}
			case s2s.EventTranscriptDone:
				if cur != nil && cur.itemID == ev.ItemID && ev.Transcript != "" {
					cur.text.Reset()
					cur.text.WriteString(ev.Transcript)
				}
			case s2s.EventAudioDone:
				if cur != nil && cur.itemID == ev.ItemID {
					finish(cur)
				}
			case s2s.EventFunctionCallDone:
				calls = append(calls, llm.ToolCall{ID: ev.CallID, Name: ev.Name, Arguments: ev.Arguments})
			case s2s.EventResponseDone:
				rc.responding = false
				finish(cur)
				c.Usage(llm.Usage{InputTokens: ev.Usage.InputTokens, OutputTokens: ev.Usage.OutputTokens})
				if len(calls) > 0 && ev.Status == "completed" && toolsDone == nil {
					toolsDone = make(chan error, 1)
					run, wait := calls, cur
					wg.Add(1)
					go func() {
						defer wg.Done()
						toolsDone <- rc.runTools(ctx, run, wait)
					}()
				}
				calls = nil
			case s2s.EventError:
				if ev.Err != nil {
					c.log.Warn("the speech-to-speech model reported an error", "error", ev.Err)
					c.publish(EventError, ErrorEvent{Stage: "brain", Error: ev.Err.Error()})
				}
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// failed ends a call whose session broke: the caller hears an apology in the fallback voice.
//
//nolint:contextcheck // Hangup drains the line's tail on its own context, as every brain's hang-up does
func (rc *realtimeCall) failed(err error) error {
	c := rc.c
	if c.check(c.brainCtx) != nil {
		return nil
	}
	c.log.Warn("the speech-to-speech session failed", "error", err)
	c.publish(EventError, ErrorEvent{Stage: "brain", Error: err.Error()})
	_, _ = c.say(c.brainCtx, agent.DefaultErrorGoodbye, sayOptions{noBargeIn: true, internal: true})
	c.Hangup(string(call.ReasonAgentError))
	return nil
}

// startAnswer starts playing a new item of the model.
func (rc *realtimeCall) startAnswer(ctx context.Context, wg *sync.WaitGroup, itemID string, greeting bool) *rtAnswer {
	c := rc.c
	a := &rtAnswer{itemID: itemID, audio: make(chan chunk, 1024), done: make(chan played, 1), finished: make(chan struct{})}
	if !greeting {
		rc.mu.Lock()
		a.turn, rc.turn = rc.turn, nil
		rc.mu.Unlock()
	}
	bargeIn := c.cfg.Turn.Interruptions && (!greeting || c.cfg.BargeInDuringFirstMessage)
	c.interrupt.Store(false)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p, err := c.play(ctx, a.audio, bargeIn, sayOptions{})
		if err != nil && !errors.Is(err, agent.ErrHangup) && ctx.Err() == nil {
			c.log.Warn("playing the model's answer failed", "error", err)
		}
		// The rest of the answer is dropped, so that the loop never blocks on it.
		go func() {
			for range a.audio {
			}
		}()
		a.done <- p
		close(a.finished)
	}()
	return a
}

// answered records an answer that finished playing: the transcript, its latency, and, when
// the caller interrupted it, the truncation of the model's item at what was heard.
func (rc *realtimeCall) answered(ctx context.Context, a *rtAnswer) {
	c := rc.c
	p := *a.result
	text := strings.TrimSpace(a.text.String())
	heardMS := p.samples * 1000 / c.rate
	if p.spoken.Interrupted {
		if a.received > 0 {
			text = wordsPrefix(text, min(1, float64(p.samples)/float64(a.received)))
		}
		if rc.responding && !a.cancelled {
			if err := rc.sess.CancelResponse(ctx); err != nil {
				c.log.Debug("response.cancel not sent", "error", err)
			}
		}
		if err := rc.sess.Truncate(ctx, a.itemID, heardMS); err != nil {
			c.log.Debug("conversation.item.truncate not sent", "error", err)
		}
		c.mu.Lock()
		c.report.Interruptions++
		c.mu.Unlock()
	}
	end := time.Now()
	turn := Turn{Role: "assistant", Text: text, Start: p.firstFrame, End: end, Interrupted: p.spoken.Interrupted}
	if p.firstFrame.IsZero() {
		turn.Start = end
	}
	if t := a.turn; t != nil && !p.firstFrame.IsZero() {
		m := &TurnMetrics{
			EndOfSpeechMS:     msSince(t.lastVoiced, t.ended),
			BrainFirstTokenMS: msSince(t.ended, a.firstAudio),
			VoiceToVoiceMS:    msSince(t.lastVoiced, p.firstFrame),
		}
		turn.Metrics = m
		c.publish(EventMetrics, *m)
		c.cfg.Turns.Observe(metrics.Turn{VoiceToVoiceMS: m.VoiceToVoiceMS, EndOfSpeechMS: m.EndOfSpeechMS, ModelFirstTokenMS: m.BrainFirstTokenMS})
	}
	if text != "" || p.spoken.Interrupted {
		c.addTurn(turn)
		c.publish(EventAgentSpeech, turn)
	}
}

// runTools runs the model's function calls once the answer that made them has played, gives
// it their results and asks it to go on. A tool that ended the call ends the loop.
//
//nolint:contextcheck // Hangup drains the line's tail on its own context, as every brain's hang-up does
func (rc *realtimeCall) runTools(ctx context.Context, calls []llm.ToolCall, playing *rtAnswer) error {
	if playing != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-playing.finished:
		}
	}
	tools := rc.b.cfg.Tools
	for _, tc := range calls {
		out := "Error: there is no tool named " + tc.Name
		if tools != nil {
			res, ended, err := tools.Run(ctx, rc.c, tc)
			if err != nil {
				return err
			}
			if ended {
				return agent.ErrHangup
			}
			out = res
		}
		if err := rc.sess.FunctionOutput(ctx, tc.ID, out); err != nil {
			return rc.failed(err)
		}
	}
	if err := rc.sess.CreateResponse(ctx, ""); err != nil {
		return rc.failed(err)
	}
	return nil
}

// endTurn notes that the caller's turn is over (the model's VAD or ours said so), for the
// latency of the answer to it.
func (rc *realtimeCall) endTurn() {
	now := time.Now()
	t := &rtTurn{lastVoiced: now, ended: now}
	e := rc.c.ear
	e.mu.Lock()
	if n := len(e.segs); n > 0 {
		t.lastVoiced = e.segs[n-1].lastVoiced
	}
	e.mu.Unlock()
	rc.mu.Lock()
	rc.turn = t
	rc.mu.Unlock()
	rc.c.mu.Lock()
	rc.c.report.Turns++
	rc.c.mu.Unlock()
}

func (rc *realtimeCall) lastTurn() *rtTurn {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.turn
}

// uplink sends the caller's audio to the model as the ear hears it and, with our own turn
// detection, ends the caller's turns.
func (rc *realtimeCall) uplink(ctx context.Context, frames <-chan []int16) {
	var batch []int16
	var out []byte
	var up []int16
	n := 0
	for {
		var f []int16
		select {
		case <-ctx.Done():
			return
		case f = <-frames:
		}
		if rc.up != nil {
			need := rc.up.OutLen(len(f))
			if cap(up) < need {
				up = make([]int16, need)
			}
			m, _ := rc.up.Resample(up[:need], f)
			f = up[:m]
		}
		batch = append(batch, f...)
		if n++; n < uplinkBatch {
			continue
		}
		n = 0
		if rc.format == s2s.FormatPCMU {
			out = append(out[:0], make([]byte, len(batch))...)
			media.EncodePCMU(out, batch)
		} else {
			out = out[:0]
			for _, v := range batch {
				out = binary.LittleEndian.AppendUint16(out, uint16(v))
			}
		}
		batch = batch[:0]
		if err := rc.sess.AppendAudio(ctx, out); err != nil {
			return
		}
		if rc.ours {
			rc.endpoint(ctx)
		}
	}
}

// endpoint ends the caller's turn by our VAD: a segment of speech followed by the agent's
// endpointing silence is committed and answered.
func (rc *realtimeCall) endpoint(ctx context.Context) {
	e := rc.c.ear
	e.mu.Lock()
	var s *segment
	if n := len(e.segs); n > 0 {
		s = e.segs[n-1]
	}
	due := s != nil && s.id != rc.committed && s.voiced >= minTurnFrames &&
		time.Duration(s.silent)*media.FrameDuration >= rc.c.endpointing
	if due {
		rc.committed = s.id
	}
	e.mu.Unlock()
	if !due {
		return
	}
	rc.endTurn()
	select {
	case rc.heard <- struct{}{}:
	default:
	}
	if err := rc.sess.Commit(ctx); err != nil {
		return
	}
	if err := rc.sess.CreateResponse(ctx, ""); err != nil {
		rc.c.log.Debug("response.create not sent", "error", err)
	}
}

// decode turns the model's audio into samples at the stream's rate.
func (rc *realtimeCall) decode(audio []byte) []int16 {
	if rc.format == s2s.FormatPCMU {
		out := make([]int16, len(audio))
		media.DecodePCMU(out, audio)
		return out
	}
	pcm := make([]int16, len(audio)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(audio[2*i:]))
	}
	if rc.down == nil {
		return pcm
	}
	out := make([]int16, rc.down.OutLen(len(pcm)))
	m, _ := rc.down.Resample(out, pcm)
	return out[:m]
}

// realtimeBrain is the brain of an agent whose model is a speech-to-speech model. Its
// voice is the agent's when the agent's voice names the model's provider ("openai" with
// "marin"), else the model's default; the caller is transcribed by the agent's transcriber
// model when that names the same provider, else by DefaultRealtimeTranscription.
func (r *Runtime) realtimeBrain(ag *store.Agent, session s2s.Config, tools []*store.Tool, log *slog.Logger) agent.Brain {
	prov, _, _ := strings.Cut(ag.Model, "/")
	cfg := RealtimeConfig{Session: session, Instructions: ag.Instructions, FirstMessage: ag.FirstMessage,
		TurnDetection: ag.Turn.Detection,
		Tools:         agent.NewToolbox(agent.LLMBrainConfig{Agent: ag, Tools: tools, Webhooks: r.cfg.Webhooks, Knowledge: r.cfg.Knowledge, Logger: log})}
	if vp, _, _ := strings.Cut(ag.Voice.Provider, "/"); vp == prov {
		cfg.Voice = ag.Voice.Voice
	}
	if tp, _, _ := strings.Cut(ag.Transcriber.Provider, "/"); tp == prov {
		cfg.Transcription = ag.Transcriber.Model
	}
	return NewRealtimeBrain(cfg)
}
