package speech_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// liveStandIn is what the tests need of either live stand-in.
type liveStandIn interface {
	Conns() []speechtest.LiveConn
	Finals() []speechtest.LiveFinal
	Wait(ctx context.Context, cond func([]speechtest.LiveConn, []speechtest.LiveFinal) bool) bool
}

// callerAudio is a caller's turn at 16 kHz: a little line noise, the phrase, and the
// silence after it, long enough for any endpointing.
func callerAudio(t testing.TB, phrase string) []int16 {
	t.Helper()
	speech16, err := speechtest.LoadWAV(phrase, 16000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, 16000*3/10)
	out = append(out, speech16...)
	return append(out, make([]int16, 16000*2)...)
}

// writeFrames writes pcm in 20 ms frames, as the ear does.
func writeFrames(t testing.TB, s *speech.STTStream, pcm []int16) {
	t.Helper()
	for i := 0; i < len(pcm); i += 320 {
		if err := s.Write(pcm[i:min(i+320, len(pcm))]); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// writePaced writes pcm (16 kHz) a 20 ms frame at a time at the pace a call delivers it.
// Between utterances the stream keeps a second of audio for a new socket, counted back from
// what was written: a turn written in a burst faster than the provider can say it heard
// speech would outrun that second, which a call's audio never does.
func writePaced(t testing.TB, s *speech.STTStream, pcm []int16) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(pcm); i += 320 {
		if err := s.Write(pcm[i:min(i+320, len(pcm))]); err != nil {
			t.Fatalf("write: %v", err)
		}
		<-tick.C
	}
}

// untilEnd collects events up to the first end of utterance; it fails if the stream ends
// first or the test's deadline passes.
func untilEnd(ctx context.Context, t testing.TB, s *speech.STTStream) []speech.STTEvent {
	t.Helper()
	var evs []speech.STTEvent
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				t.Fatalf("the stream ended before the utterance did: %v (events %+v)", s.Err(), evs)
			}
			evs = append(evs, ev)
			if ev.EndOfUtterance {
				return evs
			}
		case <-ctx.Done():
			t.Fatalf("no end of utterance (events %+v)", evs)
		}
	}
}

// ended waits for the stream to end by itself and returns why.
func ended(ctx context.Context, t testing.TB, s *speech.STTStream) error {
	t.Helper()
	for {
		select {
		case _, ok := <-s.Events():
			if !ok {
				return s.Err()
			}
		case <-ctx.Done():
			t.Fatal("the stream did not end")
		}
	}
}

func TestDeepgramLiveTranscribesAnUtterance(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const said = "What are your opening hours?"
	srv := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return said }, RequireKey: "dg-key"})
	stt := speech.NewDeepgramSTT(srv.URL, "dg-key", "", nil)
	s, err := stt.Open(ctx, speech.StreamOptions{Rate: 16000, Language: "en", EndpointingMS: 400})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	writeFrames(t, s, callerAudio(t, "opening_hours"))
	evs := untilEnd(ctx, t, s)
	last := evs[len(evs)-1]
	if last.Text != said || !last.Final {
		t.Errorf("end of utterance %+v, want %q final", last, said)
	}
	var started, interim bool
	for _, ev := range evs[:len(evs)-1] {
		started = started || ev.SpeechStarted
		if !ev.Final && ev.Text != "" {
			interim = true
			if !strings.HasPrefix(said, ev.Text) {
				t.Errorf("interim %q is not the start of %q", ev.Text, said)
			}
		}
	}
	if !started || !interim {
		t.Errorf("no SpeechStarted (%v) or no interim result (%v): %+v", started, interim, evs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Err() != nil {
		t.Errorf("a closed stream says %v", s.Err())
	}
	conns := srv.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d sockets", len(conns))
	}
	c := conns[0]
	q := c.Query
	for k, v := range map[string]string{"model": "nova-3", "encoding": "linear16", "sample_rate": "16000", "channels": "1",
		"interim_results": "true", "endpointing": "400", "utterance_end_ms": "1000", "vad_events": "true",
		"punctuate": "true", "smart_format": "true", "language": "en"} {
		if q.Get(k) != v {
			t.Errorf("query %s=%q, want %q", k, q.Get(k), v)
		}
	}
	if got := c.Header.Get("Authorization"); got != "Token dg-key" {
		t.Errorf("Authorization %q", got)
	}
	if !c.CloseStream {
		t.Error("Close did not send CloseStream")
	}
	if c.AudioSeconds < 2.5 {
		t.Errorf("the provider heard %.2f s", c.AudioSeconds)
	}
}

// A realtime transcription session in OpenAI's GA interface (session.update of a
// transcription session), and against a server of the beta interface alone, which refuses
// that: the stream opens the socket again in the beta interface (the "OpenAI-Beta" header,
// transcription_session.update) and transcribes the same.
func TestOpenAIRealtimeTranscribesAnUtterance(t *testing.T) {
	t.Parallel()
	for _, beta := range []bool{false, true} {
		t.Run(map[bool]string{false: "ga", true: "beta"}[beta], func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			const said = "I would like to speak to someone."
			srv := speechtest.NewOpenAIRealtimeSTT(t, speechtest.LiveOptions{Say: func(int) string { return said }, RequireKey: "sk-test", BetaOnly: beta})
			stt := speech.NewOpenAIRealtimeSTT(srv.URL, "sk-test", "gpt-4o-transcribe", nil)
			s, err := stt.Open(ctx, speech.StreamOptions{Rate: 16000, Language: "en", EndpointingMS: 350})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			writeFrames(t, s, callerAudio(t, "speak_to_someone"))
			evs := untilEnd(ctx, t, s)
			if last := evs[len(evs)-1]; last.Text != said {
				t.Errorf("end of utterance %+v, want %q", last, said)
			}
			for _, ev := range evs {
				if ev.Reconnected {
					t.Errorf("the stream reported a reconnection: %+v", evs)
				}
			}
			if !evs[0].SpeechStarted {
				t.Errorf("first event %+v, want speech started", evs[0])
			}
			_ = s.Close()
			conns := srv.Conns()
			want := 1
			if beta {
				want = 2 // the GA update refused, then the beta interface
			}
			if len(conns) != want {
				t.Fatalf("%d sockets, want %d", len(conns), want)
			}
			c := conns[len(conns)-1]
			wantBeta := map[bool]string{false: "", true: "realtime=v1"}[beta]
			if c.Header.Get("Authorization") != "Bearer sk-test" || c.Header.Get("OpenAI-Beta") != wantBeta || c.Query.Get("intent") != "transcription" {
				t.Errorf("handshake %v %v", c.Header, c.Query)
			}
			type transcription struct{ Model, Language string }
			type vad struct {
				Type    string `json:"type"`
				Silence int    `json:"silence_duration_ms"`
			}
			var update struct {
				Type    string `json:"type"`
				Session struct {
					Type  string `json:"type"`
					Audio struct {
						Input struct {
							Format struct {
								Type string `json:"type"`
								Rate int    `json:"rate"`
							} `json:"format"`
							Transcription transcription `json:"transcription"`
							TurnDetection vad           `json:"turn_detection"`
						} `json:"input"`
					} `json:"audio"`
					Format        string        `json:"input_audio_format"`
					Transcription transcription `json:"input_audio_transcription"`
					TurnDetection vad           `json:"turn_detection"`
				} `json:"session"`
			}
			if err := json.Unmarshal(c.Config, &update); err != nil {
				t.Fatalf("session update %s: %v", c.Config, err)
			}
			ss := update.Session
			tr, td := ss.Audio.Input.Transcription, ss.Audio.Input.TurnDetection
			ok := update.Type == "session.update" && ss.Type == "transcription" && ss.Audio.Input.Format.Type == "audio/pcm" &&
				ss.Audio.Input.Format.Rate == 24000
			if beta {
				tr, td = ss.Transcription, ss.TurnDetection
				ok = update.Type == "transcription_session.update" && ss.Format == "pcm16"
			}
			if !ok || tr.Model != "gpt-4o-transcribe" || tr.Language != "en" || td.Type != "server_vad" || td.Silence != 350 {
				t.Errorf("session update %s", c.Config)
			}
			// 16 kHz written, 24 kHz sent: the length of the audio is kept.
			if want := float64(len(callerAudio(t, "speak_to_someone"))) / 16000; c.AudioSeconds < want-0.1 || c.AudioSeconds > want+0.1 {
				t.Errorf("the provider heard %.2f s at 24 kHz", c.AudioSeconds)
			}
		})
	}
}

// A socket that drops mid-utterance is replaced, the audio since the last final replayed,
// and the utterance transcribed whole, once.
func TestLiveSTTReconnectsWithoutLosingTheTurn(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"deepgram", "openai"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			said := []string{"Yes.", "I need help with my bill."}
			opts := speechtest.LiveOptions{Say: func(n int) string { return said[min(n, 1)] }, DropAfter: 800 * time.Millisecond}
			var srv liveStandIn
			var stt speech.StreamingSTT
			if proto == "deepgram" {
				d := speechtest.NewDeepgram(t, opts)
				srv, stt = d, speech.NewDeepgramSTT(d.URL, "", "", nil)
			} else {
				o := speechtest.NewOpenAIRealtimeSTT(t, opts)
				srv, stt = o, speech.NewOpenAIRealtimeSTT(o.URL, "", "", nil)
			}
			s, err := stt.Open(ctx, speech.StreamOptions{Rate: 16000})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			// A first utterance is made final: its audio is not replayed.
			writeFrames(t, s, callerAudio(t, "yes"))
			if evs := untilEnd(ctx, t, s); evs[len(evs)-1].Text != said[0] {
				t.Fatalf("first utterance %+v", evs[len(evs)-1])
			}
			writePaced(t, s, callerAudio(t, "bill_help"))
			evs := untilEnd(ctx, t, s)
			if last := evs[len(evs)-1]; last.Text != said[1] {
				t.Errorf("after the drop the utterance is %+v, want %q", last, said[1])
			}
			reconnected := false
			for _, ev := range evs {
				reconnected = reconnected || ev.Reconnected
			}
			conns := srv.Conns()
			if !reconnected || len(conns) != 2 || !conns[0].Dropped {
				t.Fatalf("reconnected %v, sockets %+v", reconnected, conns)
			}
			// The new socket heard the second utterance again, not the first one.
			if got, want := conns[1].AudioSeconds, float64(len(callerAudio(t, "bill_help")))/16000+1.05; got > want {
				t.Errorf("the new socket was sent %.2f s, more than the turn and a second before it (%.2f s)", got, want)
			}
			if !srv.Wait(ctx, func(_ []speechtest.LiveConn, f []speechtest.LiveFinal) bool { return len(f) == 2 }) {
				t.Errorf("finals %+v", srv.Finals())
			}
		})
	}
}

// Hostile or broken providers end the stream with a clear error, at once: a new socket
// would meet the same.
func TestLiveSTTHostileProvider(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts speechtest.LiveOptions
		key  string
		want string
	}{
		{"bad JSON", speechtest.LiveOptions{Raw: [][]byte{[]byte(`{"type":"Results",`)}}, "", "not JSON"},
		{"huge message", speechtest.LiveOptions{Raw: [][]byte{bytes.Repeat([]byte("a"), 2<<20)}}, "", "larger than"},
		{"results without a channel", speechtest.LiveOptions{Raw: [][]byte{[]byte(`{"type":"Results","channel":7}`)}}, "", "channel"},
		{"provider error", speechtest.LiveOptions{Raw: [][]byte{[]byte(`{"type":"Error","description":"Bad audio","variant":"DATA-0000"}`)}}, "", "Bad audio"},
		{"refused key", speechtest.LiveOptions{RequireKey: "right"}, "wrong", "401"},
		{"an utterance without end", speechtest.LiveOptions{Raw: [][]byte{[]byte(`{"type":"Results","is_final":true,"channel":{"alternatives":[{"transcript":"` +
			strings.Repeat("word ", 14000) + `"}]}}`)}}, "", "without an end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			srv := speechtest.NewDeepgram(t, tc.opts)
			s, err := speech.NewDeepgramSTT(srv.URL, tc.key, "", nil).Open(ctx, speech.StreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			// A refused key may end the stream before these frames are written: a write
			// after the end is ErrStreamClosed, and the end says why.
			for i := 0; i < 1600; i += 320 {
				if err := s.Write(make([]int16, 320)); err != nil && !errors.Is(err, speech.ErrStreamClosed) {
					t.Fatalf("write: %v", err)
				}
			}
			err = ended(ctx, t, s)
			var pe *speech.ProviderError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a provider error saying %q", err, tc.want)
			}
			if n := len(srv.Conns()); n > 1 {
				t.Errorf("%d sockets: a fatal failure was tried again", n)
			}
			if err := s.Write(make([]int16, 320)); !errors.Is(err, speech.ErrStreamClosed) {
				t.Errorf("write after the end: %v", err)
			}
		})
	}
}

// A socket with no audio to send (the media stalled) is kept open with KeepAlive.
func TestDeepgramKeepAlive(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := speechtest.NewDeepgram(t, speechtest.LiveOptions{})
	s, err := speech.NewDeepgramSTT(srv.URL, "", "", nil).Open(ctx, speech.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	writeFrames(t, s, make([]int16, 1600))
	if !srv.Wait(ctx, func(c []speechtest.LiveConn, _ []speechtest.LiveFinal) bool {
		return len(c) == 1 && c[0].KeepAlives > 0
	}) {
		t.Fatalf("no KeepAlive: %+v", srv.Conns())
	}
	_ = s.Close()
	if c := srv.Conns(); len(c) != 1 || !c[0].CloseStream {
		t.Errorf("sockets %+v", c)
	}
}

// A provider that takes the connection and never answers the handshake does not hold up
// Close: a call's teardown never waits on it.
func TestLiveSTTCloseDuringAStalledHandshake(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		select {
		case c := <-accepted:
			_ = c.Close()
		default:
		}
	})
	s, err := speech.NewDeepgramSTT("http://"+ln.Addr().String()+"/v1", "", "", nil).Open(testCtx(t), speech.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFrames(t, s, make([]int16, 320))
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	accepted <- conn // closed at the end
	closed := make(chan struct{})
	go func() { _ = s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited on the handshake")
	}
}

func TestRegistryStreamingSTT(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "sk"}
	reg, err := speech.FromEnv(func(k string) string { return env[k] }, speech.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		provider, model string
		want            string
	}{
		{"deepgram", "", "*speech.DeepgramSTT"},
		{"deepgram/nova-2", "", "*speech.DeepgramSTT"},
		{"openai", "gpt-4o-transcribe", "*speech.OpenAIRealtimeSTT"},
		{"openai/realtime:whisper-1", "", "*speech.OpenAIRealtimeSTT"},
		{"openai", "whisper-1", "<nil>"},
		{"nobody", "", "<nil>"},
	} {
		s, err := reg.StreamingSTT(tc.provider, tc.model)
		if err != nil {
			t.Errorf("%s %s: %v", tc.provider, tc.model, err)
			continue
		}
		if got := typeName(s); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.provider, tc.model, got, tc.want)
		}
	}
	if d, _ := reg.StreamingSTT("deepgram/nova-2", ""); d.(*speech.DeepgramSTT).Model() != "nova-2" {
		t.Error("the model of deepgram/nova-2 is not nova-2")
	}
	// Transcriber gives the one an agent hears with.
	if stt, live, err := reg.Transcriber("deepgram", ""); err != nil || stt != nil || live == nil {
		t.Errorf("Transcriber(deepgram): %v %v %v", stt, live, err)
	}
	if stt, live, err := reg.Transcriber("openai", "whisper-1"); err != nil || stt == nil || live != nil {
		t.Errorf("Transcriber(openai, whisper-1): %v %v %v", stt, live, err)
	}
	if _, _, err := reg.Transcriber("nobody", ""); !errors.Is(err, speech.ErrNotConfigured) {
		t.Errorf("Transcriber(nobody): %v", err)
	}
	// Without its key, the error says what to set.
	bare, err := speech.FromEnv(func(string) string { return "" }, speech.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.StreamingSTT("deepgram", ""); !errors.Is(err, speech.ErrNotConfigured) || !strings.Contains(err.Error(), "DEEPGRAM_API_KEY") {
		t.Errorf("deepgram without a key: %v", err)
	}
	// A speech provider is no model provider.
	models, err := llm.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := models.Resolve("deepgram/nova-3"); err == nil {
		t.Error("deepgram/nova-3 resolved as a chat model")
	}
}

func typeName(v any) string {
	if v == nil {
		return "<nil>"
	}
	switch v.(type) {
	case *speech.DeepgramSTT:
		return "*speech.DeepgramSTT"
	case *speech.OpenAIRealtimeSTT:
		return "*speech.OpenAIRealtimeSTT"
	}
	return "other"
}
