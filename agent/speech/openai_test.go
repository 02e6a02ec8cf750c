package speech_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

func TestOpenAITTSStreams(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.RequireKey("sk-test-123456")
	gate := make(chan struct{})
	srv.EnqueueSpeech(speechtest.Speech{Gate: gate})
	tts := speech.NewOpenAITTS(srv.URL, "sk-test-123456", "tts-1", nil)
	a, err := tts.Synthesize(testCtx(t), "Your appointment is on Tuesday at three.", "nova", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.SampleRate() != 24000 {
		t.Errorf("SampleRate = %d", a.SampleRate())
	}
	// The server holds everything after its first 100 ms chunk until the gate opens.
	buf := make([]int16, 480)
	first := 0
	for first < 2400 {
		n, err := a.Read(buf)
		if err != nil {
			t.Fatalf("read before the gate: %v", err)
		}
		first += n
	}
	close(gate)
	rest := readAll(t, a)
	st := describe(rest, 24000)
	if st.seconds < 1.5 || st.voiced < 0.4 {
		t.Errorf("after the first chunk: %.2f s, %.0f%% voiced", st.seconds, 100*st.voiced)
	}
	reqs := srv.Speeches()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Model != "tts-1" || r.Input != "Your appointment is on Tuesday at three." || r.Voice != "nova" ||
		r.ResponseFormat != "pcm" || r.Speed != 1 {
		t.Errorf("request %+v", r)
	}
}

func TestOpenAITTSReadsWAV(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.EnqueueSpeech(speechtest.Speech{WAV: true, ChunkSamples: 999})
	tts := speech.NewOpenAITTS(srv.URL, "", "", nil)
	a, err := tts.Synthesize(testCtx(t), "Press one for sales.", "", 1.25)
	if err != nil {
		t.Fatal(err)
	}
	if a.SampleRate() != 24000 {
		t.Errorf("SampleRate = %d", a.SampleRate())
	}
	st := describe(readAll(t, a), 24000)
	if st.seconds < 0.6 || st.voiced < 0.4 || st.rms < 500 {
		t.Errorf("WAV answer: %+v", st)
	}
	if r := srv.Speeches()[0]; r.Voice != speech.DefaultOpenAIVoice || r.Model != speech.DefaultTTSModel || r.Speed != 1.25 {
		t.Errorf("request %+v", r)
	}
}

func TestOpenAITTSOddChunks(t *testing.T) {
	t.Parallel()
	// A known signal in chunks of odd byte counts cannot be told apart from a whole one.
	want := make([]int16, 5001)
	for i := range want {
		want[i] = int16(i*37 - 20000)
	}
	srv := speechtest.NewOpenAI(t)
	srv.EnqueueSpeech(speechtest.Speech{Audio: want, ChunkSamples: 333, ChunkDelay: -1})
	a, err := speech.NewOpenAITTS(srv.URL, "", "", nil).Synthesize(testCtx(t), "x", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, a)
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("sample %d = %d, want %d", i, got[i], want[i])
		}
	}
}

func TestOpenAITTSErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		replies  []speechtest.Speech
		key      string
		wantErr  int // status; 0 for success
		wantMsg  string
		requests int
	}{
		{"503 then audio", []speechtest.Speech{{Status: 503}}, "", 0, "", 2},
		{"429 then audio", []speechtest.Speech{{Status: 429}}, "", 0, "", 2},
		{"cut before audio then audio", []speechtest.Speech{{CutAfter: -1}}, "", 0, "", 2},
		{"500 twice", []speechtest.Speech{{Status: 500, Message: "boom"}, {Status: 500, Message: "boom again"}}, "", 500, "boom again", 2},
		{"400 is not retried", []speechtest.Speech{{Status: 400, Message: "Input is too long"}}, "", 400, "Input is too long", 1},
		// Refused before the stand-in records it.
		{"wrong key", nil, "sk-wrong", 401, "Incorrect API key provided", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := speechtest.NewOpenAI(t)
			srv.RequireKey("sk-right")
			srv.EnqueueSpeech(tt.replies...)
			key := tt.key
			if key == "" {
				key = "sk-right"
			}
			a, err := speech.NewOpenAITTS(srv.URL, key, "", nil).Synthesize(testCtx(t), "Hello.", "alloy", 1)
			if got := len(srv.Speeches()); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
			if tt.wantErr == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if st := describe(readAll(t, a), 24000); st.seconds < 0.2 {
					t.Errorf("audio %+v", st)
				}
				return
			}
			var pe *speech.ProviderError
			if !errors.As(err, &pe) || pe.Status != tt.wantErr || !strings.Contains(pe.Message, tt.wantMsg) {
				t.Fatalf("err = %v, want status %d with %q", err, tt.wantErr, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), fmt.Sprint(tt.wantErr)) {
				t.Errorf("message %q", err)
			}
		})
	}
}

func TestOpenAITTSStreamCut(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.EnqueueSpeech(speechtest.Speech{CutAfter: 6000})
	a, err := speech.NewOpenAITTS(srv.URL, "", "", nil).Synthesize(testCtx(t), "This answer is cut off in the middle of the sentence.", "alloy", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	buf := make([]int16, 1000)
	n := 0
	for {
		k, err := a.Read(buf)
		n += k
		if errors.Is(err, io.EOF) {
			t.Fatalf("a cut stream ended cleanly after %d samples", n)
		}
		if err != nil {
			var pe *speech.ProviderError
			if !errors.As(err, &pe) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want a ProviderError around io.ErrUnexpectedEOF", err)
			}
			break
		}
	}
	if n != 6000 {
		t.Errorf("read %d samples before the cut, want 6000", n)
	}
	if len(srv.Speeches()) != 1 {
		t.Errorf("a stream cut after audio was retried")
	}
}

func TestOpenAITTSDeadline(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.EnqueueSpeech(speechtest.Speech{FirstByteDelay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := speech.NewOpenAITTS(srv.URL, "", "", nil).Synthesize(ctx, "Hello.", "alloy", 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestOpenAISTT(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.RequireKey("sk-stt")
	srv.Enqueue("hello there")
	pcm, err := speechtest.LoadWAV("opening_hours", 8000)
	if err != nil {
		t.Fatal(err)
	}
	stt := speech.NewOpenAISTT(srv.URL+"/", "sk-stt", "whisper-large-v3", nil)
	text, err := stt.Transcribe(testCtx(t), pcm, 8000, "en")
	if err != nil {
		t.Fatal(err)
	}
	if text != "hello there" {
		t.Errorf("text %q", text)
	}
	reqs := srv.Transcriptions()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Model != "whisper-large-v3" || r.Language != "en" || r.ResponseFormat != "json" ||
		r.Filename != "audio.wav" || r.ContentType != "audio/wav" || r.Rate != 8000 || len(r.Samples) != len(pcm) {
		t.Errorf("request %+v", r)
	}
	for i := range pcm {
		if r.Samples[i] != pcm[i] {
			t.Fatalf("sample %d differs", i)
		}
	}
	// The default answer, and no language.
	text, err = stt.Transcribe(testCtx(t), pcm, 8000, "")
	if err != nil || text != speechtest.DefaultTranscript {
		t.Errorf("default answer %q, %v", text, err)
	}
	if r := srv.Transcriptions()[1]; r.Language != "" {
		t.Errorf("language %q sent when none was given", r.Language)
	}
}

func TestOpenAISTTRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		replies  []speechtest.Transcript
		want     string
		status   int
		requests int
	}{
		{"503 then text", []speechtest.Transcript{{Status: 503}, {Text: "yes"}}, "yes", 0, 2},
		{"429 then text", []speechtest.Transcript{{Status: 429}, {Text: "no"}}, "no", 0, 2},
		{"dropped then text", []speechtest.Transcript{{Drop: true}, {Text: "uh-huh"}}, "uh-huh", 0, 2},
		{"503 twice", []speechtest.Transcript{{Status: 503}, {Status: 503, Message: "still overloaded"}}, "", 503, 2},
		{"400 once", []speechtest.Transcript{{Status: 400, Message: "Audio file is too short."}}, "", 400, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := speechtest.NewOpenAI(t)
			srv.EnqueueTranscript(tt.replies...)
			text, err := speech.NewOpenAISTT(srv.URL, "", "", nil).Transcribe(testCtx(t), tone(16000, 300, 0.5), 16000, "")
			if got := len(srv.Transcriptions()); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
			if tt.status == 0 {
				if err != nil || text != tt.want {
					t.Errorf("= %q, %v; want %q", text, err, tt.want)
				}
				return
			}
			var pe *speech.ProviderError
			if !errors.As(err, &pe) || pe.Status != tt.status || pe.Message != tt.replies[len(tt.replies)-1].Message {
				t.Errorf("err = %v, want status %d", err, tt.status)
			}
		})
	}
}

func TestOpenAISTTDeadline(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.EnqueueTranscript(speechtest.Transcript{Delay: 10 * time.Second, Text: "late"})
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	_, err := speech.NewOpenAISTT(srv.URL, "", "", nil).Transcribe(ctx, tone(16000, 300, 0.5), 16000, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if n := len(srv.Transcriptions()); n != 1 {
		t.Errorf("%d requests: a deadline is not retried", n)
	}
}

// tone is a sine of freq Hz for seconds at rate, at half scale.
func tone(rate int, freq, seconds float64) []int16 {
	out := make([]int16, int(float64(rate)*seconds))
	for i := range out {
		out[i] = int16(16000 * sin(2*3.141592653589793*freq*float64(i)/float64(rate)))
	}
	return out
}
