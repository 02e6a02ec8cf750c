package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/internal/loadgen"
)

// The providers' own times in BenchmarkVoiceToVoice: each stand-in takes what the real
// provider is published to take (BENCHMARKS.md, "Voice to voice", names the sources).
const (
	// v2vSTT is a batch transcription's answer after the upload (Whisper-class servers).
	v2vSTT = 200 * time.Millisecond
	// v2vModelFirst is the model's first token; the rest of its answer streams at once.
	v2vModelFirst = 350 * time.Millisecond
	// v2vTTS is the first audio of a synthesis, batch or streamed (ElevenLabs- and
	// Cartesia-protocol stand-ins: after the first text of a context).
	v2vTTS = 150 * time.Millisecond
	// v2vLiveFinal is a live transcriber's final result after its endpointing silence
	// (turn.stt_endpointing_ms, 300 ms by default): the Deepgram-protocol stand-in sends
	// interim results every 100 ms of speech and the final this long after the silence.
	v2vLiveFinal = 200 * time.Millisecond
	// v2vInterim is when the live stand-in's interim transcript has the caller's last word:
	// it sends one every 100 ms of speech, and the last when it hears the speech stop.
	v2vInterim = 100 * time.Millisecond
	// v2vLiveMin is the pause that must agree with a live transcript before the turn (or,
	// with early start, the model) may begin on it (agent/voice's liveMinSilence).
	v2vLiveMin = 100 * time.Millisecond
	// v2vEarlyStart is the streaming pipeline's turn.early_start_ms in its variants.
	v2vEarlyStart = 200 * time.Millisecond
	// v2vRealtimeFirst is a Realtime model's first audio after the turn ends, and
	// v2vRealtimeSilence its server_vad's silence_duration_ms default.
	v2vRealtimeFirst   = 500 * time.Millisecond
	v2vRealtimeSilence = 500 * time.Millisecond
	// v2vSpeculative is the pause at which our endpointing transcribes; a finished sentence
	// ("Where is my order?") ends the turn there instead of at the 600 ms endpointing.
	v2vSpeculative = 300 * time.Millisecond
)

// v2vPipeline is one way an agent answers, as the benchmark runs it: its phone number, its
// agent, and the time a turn waits on the providers and on turn detection by design (the
// budget: what the caller would wait with an instant Switchboard).
type v2vPipeline struct {
	name   string
	number string
	agent  string
	budget time.Duration
	// waited is a turn's budget with the providers' times as the server measured them for
	// it (the stand-ins share the machine, and stretch with it): the server's voice-to-voice
	// less this is Switchboard's own share of the turn.
	waited func(m *turnMetrics) float64
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// v2vPipelines are the agents compared.
func v2vPipelines() []v2vPipeline {
	const streaming = `"model":"openai/gpt-test","instructions":"You answer questions about orders.",` +
		`"voice":{"provider":"el","voice":"21m00Tcm4TlvDq8ikWAM","speed":1}`
	return []v2vPipeline{
		{name: "batch (STT → model → TTS)", number: "+15550011",
			agent: `{"name":"Batch","model":"openai/gpt-test","instructions":"You answer questions about orders.",` +
				`"transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"voice","voice":"alloy","speed":1}}`,
			budget: v2vSpeculative + v2vSTT + v2vModelFirst + v2vTTS,
			waited: func(m *turnMetrics) float64 {
				return ms(v2vSpeculative) + m.STTMS + m.BrainFirstTokenMS + m.TTSFirstAudioMS
			}},
		{name: "speech-to-speech (Realtime)", number: "+15550012",
			agent: `{"name":"Realtime","model":"rt/gpt-realtime","instructions":"You answer questions about orders.",` +
				`"transcriber":{"provider":"rt","model":"whisper-1"},"voice":{"provider":"rt","voice":"marin","speed":1}}`,
			budget: v2vRealtimeSilence + v2vRealtimeFirst,
			waited: func(m *turnMetrics) float64 { return ms(v2vRealtimeSilence) + m.BrainFirstTokenMS }},
		// The live transcript is there when the caller pauses: a finished sentence ends the
		// turn at the speculative pause, before the provider's final, and the model's first
		// tokens are spoken as they come.
		{name: "streaming (live STT → model → streamed TTS)", number: "+15550013",
			agent:  `{"name":"Streaming",` + streaming + `,"transcriber":{"provider":"dg","model":"nova-3"}}`,
			budget: v2vSpeculative + v2vModelFirst + v2vTTS,
			waited: func(m *turnMetrics) float64 { return ms(v2vSpeculative) + m.BrainFirstTokenMS + m.TTSFirstAudioMS }},
		// Early start on a finished sentence: the model and the voice begin at the first
		// pause an end of utterance needs (100 ms, the interim having the last word by then),
		// and the answer is held until the sentence's 300 ms pause is over.
		{name: "streaming, early_start_ms 200", number: "+15550015",
			agent: `{"name":"Eager",` + streaming + `,"transcriber":{"provider":"dg","model":"nova-3"},` +
				`"turn":{"early_start_ms":` + strconv.Itoa(int(v2vEarlyStart/time.Millisecond)) + `}}`,
			budget: max(v2vSpeculative, max(v2vLiveMin, v2vInterim)+v2vModelFirst+v2vTTS),
			waited: func(m *turnMetrics) float64 {
				return max(ms(v2vSpeculative), max(ms(v2vLiveMin), m.STTMS)+m.BrainFirstTokenMS+m.TTSFirstAudioMS)
			}},
		// A transcript without its full stop (the second stand-in, "dg2", leaves it off) does
		// not end the turn early: the turn waits for the provider's final, at its endpointing
		// (300 ms) + v2vLiveFinal, which would give 300 + 200 + 350 + 150 = 1000 ms. Early start
		// begins the model and the voice once the interim has stood v2vEarlyStart, while the
		// turn is confirmed: the answer is ready before the turn is over.
		{name: "streaming, no full stop, early_start_ms 200", number: "+15550014",
			agent: `{"name":"Early",` + streaming + `,"transcriber":{"provider":"dg2","model":"nova-3"},` +
				`"turn":{"early_start_ms":` + strconv.Itoa(int(v2vEarlyStart/time.Millisecond)) + `}}`,
			budget: max(v2vSpeculative+v2vLiveFinal, v2vInterim+v2vEarlyStart+v2vModelFirst+v2vTTS),
			waited: func(m *turnMetrics) float64 {
				return max(ms(v2vSpeculative+v2vLiveFinal), m.STTMS+ms(v2vEarlyStart)+m.BrainFirstTokenMS+m.TTSFirstAudioMS)
			}},
	}
}

// BenchmarkVoiceToVoice measures what a caller waits for an answer, on the wire, with
// providers that take the time real ones take: switchboard serve (SQLite, SIP on loopback)
// answers each pipeline of v2vPipelines on its own number, and switchboard's load generator
// places the calls, alternating between the pipelines, all in one run. Each caller says
// "Where is my order?" (testdata/speech) every 6 s; the generator takes, for every turn,
// the time from the caller's last word sent to the first sound of the answer received
// (Config.Turns). For each pipeline it reports p50 and p95 of that, the budget (the
// providers' times and the turn detection's silence), and what Switchboard added over the
// budget; and the server's own per-turn figures from the stored transcripts, with its own
// share of each turn: its voice-to-voice less the budget with the providers' times it
// measured for that turn (the stand-ins share the machine, so their times stretch with it).
//
//	go test -v -run '^$' -bench VoiceToVoice -benchtime 1x -timeout 30m ./cmd/switchboard
//
// V2V_CALLS lists the concurrencies (default 25,200: 5 and 40 calls a pipeline), V2V_DURATION each call's length
// (default 60s). scripts/voice2voice.sh runs it.
func BenchmarkVoiceToVoice(b *testing.B) {
	sizes := []int{25, 200}
	if v := os.Getenv("V2V_CALLS"); v != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				b.Fatalf("V2V_CALLS %q: want concurrencies of at least 2, such as 20,200", v)
			}
			sizes = append(sizes, n)
		}
	}
	d := 60 * time.Second
	if v := os.Getenv("V2V_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < benchCycle {
			b.Fatalf("V2V_DURATION %q: want a duration of at least %v", v, benchCycle)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sip.SetDefaultLogger(log)
	wav := callerWAV(b, math.Inf(-1))
	pipes := v2vPipelines()
	for _, n := range sizes {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			loadavg := loadAverage()
			s := startV2VServer(b, pipes)
			b.ResetTimer()
			ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Minute)
			defer cancel()
			// One generator a pipeline, started together: calls of every pipeline are placed
			// side by side, spread over one cycle of the caller's loop.
			reps := make([]*loadgen.Report, len(pipes))
			errs := make([]error, len(pipes))
			var wg sync.WaitGroup
			per := n / len(pipes)
			for i, p := range pipes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					reps[i], errs[i] = loadgen.Run(ctx, loadgen.Config{
						Target: "sip:" + p.number + "@" + s.sip, Calls: per, Duration: d, WAV: wav, Turns: true,
						Rate: float64(per) / benchCycle.Seconds(), ServerPID: s.pid, Log: log,
					})
				}()
			}
			wg.Wait()
			b.StopTimer()
			answered := 0
			for i, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
				answered += reps[i].Answered
			}
			calls := s.endedCalls(answered)
			b.Logf("\n| pipeline | calls | turns | on the wire p50 / p95 | budget | Switchboard adds p50 / p95 | server v2v p50 / p95 | server's own share p50 / p95 | late packets | load avg before |\n|---|---|---|---|---|---|---|---|---|---|")
			for i, p := range pipes {
				wire := reps[i].VoiceToVoiceMs
				p50, p95 := pct(wire, 50), pct(wire, 95)
				budget := ms(p.budget)
				var server, own, eos, stt, brain, tts []float64
				var late int64
				for _, c := range calls {
					if !strings.Contains(c.To, p.number) {
						continue
					}
					late += c.Quality.PacketsLate
					for _, t := range c.Turns {
						if m := t.Metrics; t.Role == "assistant" && m != nil && m.VoiceToVoiceMS > 0 {
							server = append(server, m.VoiceToVoiceMS)
							own = append(own, m.VoiceToVoiceMS-p.waited(m))
							eos, stt = append(eos, m.EndOfSpeechMS), append(stt, m.STTMS)
							brain, tts = append(brain, m.BrainFirstTokenMS), append(tts, m.TTSFirstAudioMS)
						}
					}
				}
				defer b.Logf("%s, as the server saw its turns, p50 / p95: end of speech %.0f / %.0f ms, STT %.0f / %.0f ms, "+
					"model first token (speech-to-speech: first audio) %.0f / %.0f ms, TTS first audio %.0f / %.0f ms",
					p.name, pct(eos, 50), pct(eos, 95), pct(stt, 50), pct(stt, 95), pct(brain, 50), pct(brain, 95), pct(tts, 50), pct(tts, 95))
				b.Logf("| %s | %d / %d | %d | %.0f / %.0f ms | %.0f ms | %.0f / %.0f ms | %.0f / %.0f ms | %.0f / %.0f ms | %d | %s |",
					p.name, reps[i].Answered, per, len(wire), p50, p95, budget, p50-budget, p95-budget,
					pct(server, 50), pct(server, 95), pct(own, 50), pct(own, 95), late, loadavg)
				b.ReportMetric(p50, fmt.Sprintf("p%d-wire-p50-ms", i))
				b.ReportMetric(p95, fmt.Sprintf("p%d-wire-p95-ms", i))
				if reps[i].Answered < per {
					b.Errorf("%s: %d of %d calls answered", p.name, reps[i].Answered, per)
				}
			}
			if cpu := reps[0].ServerCPU; cpu != nil {
				b.Logf("server CPU with all calls up %.1f %% (peak %.0f %%); this process (stand-ins and generator) %.1f %%; "+
					"pacer max lag %.0f ms; warnings %d, errors %d", cpu.Full, cpu.Peak, reps[0].LoadCPU.Full,
					reps[0].PacerMaxLagMs, s.log.count("level=WARN"), s.log.count("level=ERROR"))
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// pct is the nearest-rank percentile p of xs (NaN without any).
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[max(int(math.Ceil(p/100*float64(len(s)))), 1)-1]
}

// startV2VServer starts the stand-ins with the providers' published times, the server, and
// an agent of each pipeline on its number.
func startV2VServer(b *testing.B, pipes []v2vPipeline) *agentServer {
	b.Helper()
	model := llmtest.NewOpenAI(b)
	model.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: benchAnswer, FirstDelay: v2vModelFirst}
	})
	voice := speechtest.NewOpenAI(b)
	voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: "Where is my order?", Delay: v2vSTT}
	})
	// The answer: a second of tone at OpenAI's 24 kHz, its first audio after v2vTTS.
	answer := make([]int16, 24000)
	for i := range answer {
		answer[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/24000))
	}
	voice.RespondSpeech(func(speechtest.SpeechRequest) speechtest.Speech {
		return speechtest.Speech{Audio: answer, FirstByteDelay: v2vTTS}
	})
	rt := speechtest.NewRealtime(b)
	rt.SetFirstAudio(v2vRealtimeFirst)
	rt.SetSilence(v2vRealtimeSilence)
	dg := speechtest.NewDeepgram(b, speechtest.LiveOptions{Say: func(int) string { return "Where is my order?" }, FinalDelay: v2vLiveFinal})
	dg2 := speechtest.NewDeepgram(b, speechtest.LiveOptions{Say: func(int) string { return "where is my order" }, FinalDelay: v2vLiveFinal})
	el := speechtest.NewElevenLabs(b, speechtest.StreamOptions{FirstAudio: v2vTTS})

	dir := b.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"+
		"  - name: rt\n    kind: openai\n    base_url: "+rt.URL+"\n    api_key: sk-rt\n"+
		"  - name: dg\n    kind: deepgram\n    base_url: "+dg.URL+"\n    api_key: dg-key\n"+
		"  - name: dg2\n    kind: deepgram\n    base_url: "+dg2.URL+"\n    api_key: dg-key\n"+
		"  - name: el\n    kind: elevenlabs\n    base_url: "+el.URL+"\n    api_key: el-key\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	vars := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=100000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0", "SWITCHBOARD_DEMO=false"}
	s := &agentServer{b: b, log: &serverLog{logBuffer{ready: make(chan struct{})}},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	s.key = s.createKey(environ(vars...))
	b.Cleanup(s.client.CloseIdleConnections)
	s.serveBinary(environ(vars...))
	for _, p := range pipes {
		var ag map[string]any
		s.do("POST", "/api/v1/agents", p.agent, http.StatusCreated, &ag)
		s.do("POST", "/api/v1/phone-numbers", `{"number":"`+p.number+`","name":"`+p.name+`","agent_id":"`+ag["id"].(string)+`"}`, http.StatusCreated, nil)
	}
	return s
}
