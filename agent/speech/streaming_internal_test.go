package speech

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/coder/websocket"
)

// unreachable is a provider whose socket never opens until the test lets it fail, so that
// nothing but Write runs while a test counts allocations.
type unreachable struct {
	rateHz  int
	release chan struct{}
}

func (u *unreachable) dial(ctx context.Context) (*websocket.Conn, error) {
	<-u.release
	return nil, &fatalError{&ProviderError{Op: "transcribe", Err: errors.New("released")}}
}
func (u *unreachable) rate() int { return u.rateHz }
func (u *unreachable) audio(dst []byte, _ []int16) (websocket.MessageType, []byte) {
	return websocket.MessageBinary, dst
}
func (u *unreachable) keepAlive() []byte   { return nil }
func (u *unreachable) closeStream() []byte { return nil }
func (u *unreachable) parse([]byte, *utterance) ([]STTEvent, float64, bool, error) {
	return nil, -1, false, nil
}

// Writing a frame costs no allocation, resampled or not: the ear writes 50 a second for
// every call.
func TestLiveSTTWriteDoesNotAllocate(t *testing.T) {
	for _, providerRate := range []int{16000, openAIRealtimeRate} {
		u := &unreachable{rateHz: providerRate, release: make(chan struct{})}
		s, err := openStream(context.Background(), u, 16000, false)
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]int16, 320)
		_ = s.Write(frame) // the resampler's buffer is made once
		if n := testing.AllocsPerRun(500, func() { _ = s.Write(frame) }); n != 0 {
			t.Errorf("to %d Hz: %.1f allocations a frame", providerRate, n)
		}
		// Beyond the ring's length the oldest audio goes, and Write still does not wait.
		for range ReplaySeconds * 50 * 2 {
			_ = s.Write(frame)
		}
		s.mu.Lock()
		kept := s.end - s.start
		s.mu.Unlock()
		if kept != int64(len(s.ring)) {
			t.Errorf("to %d Hz: the ring keeps %d samples, want %d", providerRate, kept, len(s.ring))
		}
		close(u.release)
		_ = s.Close()
	}
}

// BenchmarkLiveSTTWrite is the cost of a 20 ms frame written to a live transcriber at
// 16 kHz (Deepgram), and resampled to OpenAI's 24 kHz.
func BenchmarkLiveSTTWrite(b *testing.B) {
	for _, rate := range []int{16000, openAIRealtimeRate} {
		b.Run(fmt.Sprint(rate), func(b *testing.B) { benchWrite(b, rate) })
	}
}

func benchWrite(b *testing.B, rate int) {
	u := &unreachable{rateHz: rate, release: make(chan struct{})}
	s, err := openStream(context.Background(), u, 16000, false)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { close(u.release); _ = s.Close() }()
	frame := make([]int16, 320)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Write(frame)
	}
}

// The live resampler keeps a tone's pitch and level across frames, and the audio's length.
func TestLinearResamplerKeepsTheTone(t *testing.T) {
	r, err := newLinearResampler(16000, 24000)
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	for f := range 50 { // one second in 20 ms frames
		frame := make([]int16, 320)
		for i := range frame {
			frame[i] = int16(10000 * math.Sin(2*math.Pi*1000*float64(f*320+i)/16000))
		}
		out = r.resample(out, frame)
	}
	if len(out) < 23990 || len(out) > 24010 {
		t.Fatalf("%d samples from one second, want 24,000", len(out))
	}
	crossings, peak := 0, 0.0
	for i := 1; i < len(out); i++ {
		if (out[i-1] < 0) != (out[i] < 0) {
			crossings++
		}
		peak = max(peak, math.Abs(float64(out[i])))
	}
	if crossings < 1990 || crossings > 2010 || peak < 9500 || peak > 10001 {
		t.Errorf("%d zero crossings (want 2,000: 1 kHz), peak %.0f (want 10,000)", crossings, peak)
	}
}

// The providers' messages are parsed without a panic whatever they hold, and an error is
// a provider error.
func FuzzLiveSTTParse(f *testing.F) {
	for _, seed := range []string{
		`{"type":"Results","channel_index":[0,1],"duration":1.2,"start":0.5,"is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"hello there","confidence":0.9}]}}`,
		`{"type":"Results","is_final":false,"channel":{"alternatives":[]}}`,
		`{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.3}`,
		`{"type":"SpeechStarted","channel":[0,1],"timestamp":0.1}`,
		`{"type":"Metadata","request_id":"x"}`,
		`{"type":"Error","description":"bad","variant":"DATA-0000"}`,
		`{"type":"conversation.item.input_audio_transcription.delta","item_id":"i","delta":" hi"}`,
		`{"type":"conversation.item.input_audio_transcription.completed","item_id":"i","transcript":"hi"}`,
		`{"type":"input_audio_buffer.speech_stopped","item_id":"i","audio_end_ms":1200}`,
		`{"type":"error","error":{"type":"invalid_request_error","message":"no"}}`,
		`{"type":"Results","channel":7}`, `[]`, `null`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		protos := []liveProtocol{&deepgramProtocol{sampleRate: 16000}, &openAIRealtimeProtocol{stopped: map[string]float64{}}}
		for _, p := range protos {
			var u utterance
			for range 2 {
				evs, _, _, err := p.parse(msg, &u)
				var pe *ProviderError
				if err != nil && !errors.As(err, &pe) {
					t.Fatalf("%T: %v is not a provider error", p, err)
				}
				for _, ev := range evs {
					if ev.EndOfUtterance && !ev.Final && u.text() != "" {
						t.Fatalf("%T: an utterance ended with words kept: %q", p, u.text())
					}
				}
			}
		}
	})
}
