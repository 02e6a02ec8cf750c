package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/internal/loadgen"
	"github.com/switchboard-go/switchboard/internal/testnet"
	"github.com/switchboard-go/switchboard/media"
)

// The caller's side of a conversation in BenchmarkAgentCapacity: a loop of benchCycle that
// is quiet for benchLead (the greeting), says benchClip, and is quiet again while the agent
// answers. Every turn goes through the VAD, endpointing, STT, the model and TTS.
const (
	benchClip  = "where_is_my_order" // 1.4 s
	benchLead  = time.Second
	benchCycle = 6 * time.Second
	// benchHeard is what the stand-in transcriber hears: no finished sentence, so every
	// turn waits for the whole endpointing silence (600 ms) rather than ending early.
	benchHeard = "where is my order"
	// benchAnswer is the stand-in model's answer to every turn: one sentence, so that
	// espeak-ng synthesises it once and serves it from its cache after that.
	benchAnswer = "Your order is on its way."
)

// BenchmarkAgentCapacity sizes a node by concurrent conversations over real SIP: it starts
// switchboard serve (SQLite in a temporary directory, SIP on a free loopback port) with an
// agent on a phone number whose model (openai/…) and transcriber are stand-ins of the
// OpenAI API in this process that answer at once, and whose voice is espeak-ng; then
// switchboard's load generator, also in this process, places the calls. Each caller says a
// short sentence every 6 s (testdata/speech/where_is_my_order.wav) and the agent answers it
// with one fixed sentence. Calls start spread over one cycle, so that turns are spread
// evenly in time. For each size it reports calls answered, turns answered per call, the
// turns' latency from the stored transcripts, the server's CPU with all calls up (from
// /proc) and RTP back over sent. Each size is one run on a new server, whatever b.N:
//
//	go test -run '^$' -bench AgentCapacity -benchtime 1x -timeout 30m ./cmd/switchboard
//
// AGENT_CALLS lists the sizes (default 50,100,200), AGENT_DURATION sets each call's length
// (default 30s), AGENT_NOISE_DBFS puts line noise of that level (e.g. -60) under the
// caller's audio instead of digital silence. AGENT_IN_PROCESS=1 runs serve in this process
// rather than as the binary, so that -cpuprofile covers the server (the CPU reported is
// then the whole process's). scripts/agent-capacity.sh runs it.
func BenchmarkAgentCapacity(b *testing.B) {
	sizes := []int{50, 100, 200}
	if v := os.Getenv("AGENT_CALLS"); v != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("AGENT_CALLS %q: want sizes such as 50,100,200", v)
			}
			sizes = append(sizes, n)
		}
	}
	d := 30 * time.Second
	if v := os.Getenv("AGENT_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < benchCycle {
			b.Fatalf("AGENT_DURATION %q: want a duration of at least %v", v, benchCycle)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// sipgo logs retransmissions of a loaded server's answers to its package default.
	sip.SetDefaultLogger(log)
	inProcess := os.Getenv("AGENT_IN_PROCESS") == "1"
	noise := math.Inf(-1)
	if v := os.Getenv("AGENT_NOISE_DBFS"); v != "" {
		var err error
		if noise, err = strconv.ParseFloat(v, 64); err != nil || noise >= 0 {
			b.Fatalf("AGENT_NOISE_DBFS %q: want a level below 0 dBFS, such as -60", v)
		}
	}
	wav := callerWAV(b, noise)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			loadavg := loadAverage()
			s := startAgentServer(b, inProcess)
			b.ResetTimer()
			ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Minute)
			defer cancel()
			rep, err := loadgen.Run(ctx, loadgen.Config{
				Target: "sip:+15550001@" + s.sip, Calls: n, Duration: d, WAV: wav,
				// Calls start spread over one cycle of the caller's loop.
				Rate:      float64(n) / benchCycle.Seconds(),
				ServerPID: s.pid, Log: log,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			calls := s.endedCalls(rep.Answered)
			sum := summarize(calls, rep.Answered)
			spoken := int((d-benchLead-clipLength(b))/benchCycle) + 1
			back := 0.0
			if rep.PacketsSent > 0 {
				back = 100 * float64(rep.PacketsReceived) / float64(rep.PacketsSent)
			}
			cpu, whose := rep.ServerCPU, "the server's"
			if cpu == nil {
				cpu, whose = rep.LoadCPU, "this process's (server, stand-ins and generator)"
			}
			full := cpu.Full
			b.Logf("\n%s\n| %d | %d | %.2f (%d) | %.0f / %.0f ms | %.1f / %.1f ms | %.1f / %.1f ms | %.1f / %.0f %% | %.2f %% | %.1f %% | %s |",
				capacityHeader, n, rep.Answered, sum.turnsPerCall, spoken, sum.v2v.p50, sum.v2v.p99, sum.added.p50, sum.added.p99,
				sum.stt.p50, sum.stt.p99, full, cpu.Peak, full/float64(n), back, loadavg)
			b.Logf("CPU: %s; calls ended: %v; agent turns with metrics %d; model first token p50 / p99 %.1f / %.1f ms, TTS first audio %.1f / %.1f ms; "+
				"server warnings %d, errors %d; failures %v; generator CPU all up %.1f %%, pacer max lag %.0f ms",
				whose, sum.reasons, sum.v2v.count, sum.brain.p50, sum.brain.p99, sum.tts.p50, sum.tts.p99,
				s.log.count("level=WARN"), s.log.count("level=ERROR"), rep.Failures, rep.LoadCPU.Full, rep.PacerMaxLagMs)
			if rep.Answered < n {
				b.Errorf("%d of %d calls answered", rep.Answered, n)
			}
			b.ReportMetric(float64(rep.Answered), "answered")
			b.ReportMetric(sum.turnsPerCall, "turns/call")
			b.ReportMetric(sum.v2v.p50, "v2v-p50-ms")
			b.ReportMetric(sum.v2v.p99, "v2v-p99-ms")
			b.ReportMetric(sum.added.p50, "added-p50-ms")
			b.ReportMetric(sum.added.p99, "added-p99-ms")
			b.ReportMetric(full, "server-cpu-%")
			b.ReportMetric(full/float64(n), "cpu-%/call")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// capacityHeader heads the table row each size logs, as in BENCHMARKS.md.
const capacityHeader = "| calls | answered | turns / call (spoken) | voice-to-voice p50 / p99 | beyond endpointing p50 / p99 | STT p50 / p99 | server CPU all up / peak | CPU per call | back / sent | load avg before |\n|---|---|---|---|---|---|---|---|---|---|"

// callerWAV writes the caller's loop (8 kHz) into a temporary file and returns its path.
// Its silence is digital (zeros) or, when noise is above -Inf, white line noise of that
// level in dBFS under everything.
func callerWAV(b *testing.B, noise float64) string {
	b.Helper()
	clip := readClip(b)
	pcm := make([]int16, int(benchCycle.Seconds()*8000))
	copy(pcm[int(benchLead.Seconds()*8000):], clip)
	if !math.IsInf(noise, -1) {
		// Uniform noise of peak a has an RMS of a/√3.
		a := 32768 * math.Pow(10, noise/20) * math.Sqrt(3)
		r := rand.New(rand.NewPCG(5, 5))
		for i, v := range pcm {
			pcm[i] = int16(max(min(float64(v)+a*(2*r.Float64()-1), 32767), -32768))
		}
	}
	path := filepath.Join(b.TempDir(), "caller.wav")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, err := media.NewWAVWriter(f, 8000, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Write(pcm); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

func readClip(b *testing.B) []int16 {
	b.Helper()
	f, err := os.Open("../../testdata/speech/" + benchClip + ".wav")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil || w.Rate != 8000 {
		b.Fatalf("%s: %v, want 8 kHz", benchClip, err)
	}
	return w.Channel(0)
}

func clipLength(b *testing.B) time.Duration {
	return time.Duration(len(readClip(b))) * time.Second / 8000
}

// loadAverage is the machine's load average over the last minute, as /proc gives it.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(raw))[0]
}

// agentServer is a switchboard serve with the benchmark's agent on +15550001.
type agentServer struct {
	b      *testing.B
	cmd    *exec.Cmd // nil when serve runs in this process
	pid    int       // of the server process; 0 when it is this one
	log    *serverLog
	addr   string // HTTP
	sip    string
	key    string
	client *http.Client
}

// serverLog is a logBuffer that can count lines.
type serverLog struct{ logBuffer }

func (l *serverLog) count(s string) int { return strings.Count(l.String(), s) }

// startAgentServer starts the stand-ins and the server, and creates the agent and its
// number. Everything stops when the benchmark ends. inProcess runs serve in this process
// instead of the binary, for a CPU profile (-cpuprofile) of the server.
func startAgentServer(b *testing.B, inProcess bool) *agentServer {
	b.Helper()
	model := llmtest.NewOpenAI(b)
	model.Respond(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: benchAnswer} })
	voice := speechtest.NewOpenAI(b)
	voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: benchHeard}
	})

	dir := b.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	vars := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=100000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0", "SWITCHBOARD_DEMO=false"}
	s := &agentServer{b: b, log: &serverLog{logBuffer{ready: make(chan struct{})}},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	s.key = s.createKey(environ(vars...))
	b.Cleanup(s.client.CloseIdleConnections)
	if inProcess {
		s.serveHere(vars)
	} else {
		s.serveBinary(environ(vars...))
	}

	var ag map[string]any
	s.do("POST", "/api/v1/agents", `{"name":"Capacity","model":"openai/gpt-test","instructions":"You answer questions about orders.",`+
		`"first_message":"Hello.","transcriber":{"provider":"voice","model":"whisper-1"},`+
		`"voice":{"provider":"espeak","voice":"en-us","speed":1}}`, http.StatusCreated, &ag)
	s.do("POST", "/api/v1/phone-numbers", `{"number":"+15550001","name":"Capacity","agent_id":"`+ag["id"].(string)+`"}`, http.StatusCreated, nil)
	return s
}

// serveBinary runs switchboard serve with env and waits until it serves.
func (s *agentServer) serveBinary(env []string) {
	b := s.b
	ctx, stop := context.WithCancel(context.Background())
	s.cmd = exec.CommandContext(ctx, binary, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Stop with SIGINT so that the server hangs up what is left and says so.
	s.cmd.Cancel = func() error { return s.cmd.Process.Signal(os.Interrupt) }
	s.cmd.WaitDelay = 20 * time.Second
	if err := s.cmd.Start(); err != nil {
		stop()
		b.Fatal(err)
	}
	s.pid = s.cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		stop()
		<-exited
		if b.Failed() {
			b.Logf("switchboard serve output (end):\n%s", tail(s.log.String(), 4000))
		}
	})
	select {
	case <-s.log.ready:
	case <-exited:
		b.Fatalf("switchboard serve exited:\n%s", s.log)
	case <-time.After(30 * time.Second):
		b.Fatalf("switchboard serve did not start:\n%s", s.log)
	}
	s.addr = s.log.addr
	m := reSIPAddr.FindStringSubmatch(s.log.String())
	if m == nil {
		b.Fatalf("no SIP address in the start-up line:\n%s", s.log)
	}
	s.sip = m[1]
}

// serveHere runs serve in this process, configured by vars as the binary is, on ports
// picked for it (it logs where it listens to stderr, which this process does not read).
func (s *agentServer) serveHere(vars []string) {
	b := s.b
	s.addr, s.sip = freeAddr(b), freeAddr(b)
	for _, kv := range append(vars, "SWITCHBOARD_HTTP_ADDR="+s.addr, "SWITCHBOARD_SIP_ADDR="+s.sip, "LOG_LEVEL=warn") {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	debug.SetGCPercent(400) // as main does
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, func() {}, nil) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
		debug.SetGCPercent(100)
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+s.addr+"/health", nil)
		if resp, err := s.client.Do(req); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-done:
			b.Fatalf("serve ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatal("serve did not start within 30 s")
		}
	}
}

// freeAddr is a loopback address with a port that serve can bind for UDP and TCP: one
// outside the kernel's ephemeral range, so no :0 socket of this busy process takes it first.
func freeAddr(b *testing.B) string {
	b.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testnet.Port(b)))
}

// createKey makes an API key in the server's database.
func (s *agentServer) createKey(env []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "keys", "create", "--name", "bench")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		s.b.Fatalf("keys create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// do sends a request and decodes the answer into v, failing unless its status is want.
func (s *agentServer) do(method, path, body string, want int, v any) {
	s.b.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+s.addr+path, rd)
	if err != nil {
		s.b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.b.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		s.b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			s.b.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// benchCall is a call as the API gives it, with its transcript.
type benchCall struct {
	ID          string `json:"id"`
	To          string `json:"to"`
	EndedReason string `json:"ended_reason"`
	Report      struct {
		Turns int `json:"turns"`
	} `json:"report"`
	// Quality.PacketsLate are the caller's packets that came too late to be heard.
	Quality struct {
		PacketsLate int64 `json:"packets_late"`
	} `json:"quality"`
	Turns []struct {
		Role    string       `json:"role"`
		Metrics *turnMetrics `json:"metrics"`
	} `json:"-"`
}

// turnMetrics are an answered turn's figures, as the server measured them.
type turnMetrics struct {
	EndOfSpeechMS     float64 `json:"end_of_speech_ms"`
	STTMS             float64 `json:"stt_ms"`
	BrainFirstTokenMS float64 `json:"brain_first_token_ms"`
	TTSFirstAudioMS   float64 `json:"tts_first_audio_ms"`
	VoiceToVoiceMS    float64 `json:"voice_to_voice_ms"`
}

// endedCalls waits for the server to have ended and stored want calls, and returns them
// with their transcripts.
func (s *agentServer) endedCalls(want int) []benchCall {
	var calls []benchCall
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		calls = calls[:0]
		for off := 0; ; off += 100 {
			var page struct {
				Items []benchCall `json:"items"`
				Total int         `json:"total"`
			}
			s.do("GET", "/api/v1/calls?direction=inbound&limit=100&offset="+strconv.Itoa(off), "", http.StatusOK, &page)
			calls = append(calls, page.Items...)
			if off+100 >= page.Total {
				break
			}
		}
		ended := 0
		for _, c := range calls {
			if c.EndedReason != "" {
				ended++
			}
		}
		if ended >= want && len(calls) >= want {
			break
		}
		if time.Now().After(deadline) {
			s.b.Errorf("%d of %d calls ended", ended, len(calls))
			break
		}
	}
	for i := range calls {
		var tr struct {
			Turns json.RawMessage `json:"turns"`
		}
		s.do("GET", "/api/v1/calls/"+calls[i].ID+"/transcript", "", http.StatusOK, &tr)
		if err := json.Unmarshal(tr.Turns, &calls[i].Turns); err != nil {
			s.b.Fatalf("transcript of %s: %v", calls[i].ID, err)
		}
	}
	return calls
}

// dist is the nearest-rank p50 and p99 of samples in milliseconds.
type dist struct {
	count    int
	p50, p99 float64
}

func newDist(xs []float64) dist {
	if len(xs) == 0 {
		return dist{}
	}
	slices.Sort(xs)
	at := func(p float64) float64 { return xs[max(int(math.Ceil(p/100*float64(len(xs)))), 1)-1] }
	return dist{count: len(xs), p50: at(50), p99: at(99)}
}

// capacitySummary is what the stored calls say about a size.
type capacitySummary struct {
	turnsPerCall float64
	// v2v runs from the caller's last voiced frame to the agent's first frame; added is
	// what the server took beyond the endpointing silence (v2v - end of speech).
	v2v, added, stt, brain, tts dist
	reasons                     map[string]int
}

func summarize(calls []benchCall, answered int) capacitySummary {
	s := capacitySummary{reasons: map[string]int{}}
	var v2v, added, stt, brain, tts []float64
	turns := 0
	for _, c := range calls {
		s.reasons[c.EndedReason]++
		turns += c.Report.Turns
		for _, t := range c.Turns {
			if t.Role != "assistant" || t.Metrics == nil || t.Metrics.VoiceToVoiceMS <= 0 {
				continue
			}
			v2v = append(v2v, t.Metrics.VoiceToVoiceMS)
			added = append(added, t.Metrics.VoiceToVoiceMS-t.Metrics.EndOfSpeechMS)
			stt = append(stt, t.Metrics.STTMS)
			brain = append(brain, t.Metrics.BrainFirstTokenMS)
			tts = append(tts, t.Metrics.TTSFirstAudioMS)
		}
	}
	if answered > 0 {
		s.turnsPerCall = float64(turns) / float64(answered)
	}
	s.v2v, s.added, s.stt, s.brain, s.tts = newDist(v2v), newDist(added), newDist(stt), newDist(brain), newDist(tts)
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
