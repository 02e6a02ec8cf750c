package loadgen

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Report is what a run measured. Times are in milliseconds.
type Report struct {
	Target    string `json:"target"`
	Transport string `json:"transport"`
	Codec     string `json:"codec"`
	Audio     string `json:"audio"` // "tone" or the WAV file
	// Calls is the concurrency asked for, Rate the calls a second, Total the calls asked for.
	Calls       int     `json:"calls"`
	Rate        float64 `json:"rate"`
	Total       int     `json:"total"`
	DurationMs  float64 `json:"call_duration_ms"`
	EchoDelayMs float64 `json:"echo_delay_ms"`
	ElapsedMs   float64 `json:"elapsed_ms"`

	Attempted int `json:"attempted"`
	Answered  int `json:"answered"`
	Failed    int `json:"failed"`
	// Failures counts the calls that failed by SIP status ("404", "503", …), "timeout"
	// (no final answer within the setup timeout), "bad-answer" (a 200 without a usable
	// SDP answer), "interrupted" or "error" (transport).
	Failures map[string]int `json:"failures,omitempty"`
	// PeakConcurrent is the most calls up at once (ringing or answered).
	PeakConcurrent int `json:"peak_concurrent"`
	// RemoteHangups are answered calls the far end hung up before we did; ByeFailed those
	// whose BYE got no 200.
	RemoteHangups int `json:"remote_hangups"`
	ByeFailed     int `json:"bye_failed"`

	// Setup is INVITE sent → 200 received, over answered calls.
	Setup Distribution `json:"setup_ms"`

	// RTP of the answered calls. Expected and Lost come from the sequence numbers of what
	// came back (RFC 3550 A.3), summed over calls; Received counts every packet of the
	// agreed codec.
	PacketsSent     int64   `json:"packets_sent"`
	PacketsReceived int64   `json:"packets_received"`
	PacketsExpected int64   `json:"packets_expected"`
	PacketsLost     int64   `json:"packets_lost"`
	LossPercent     float64 `json:"loss_percent"`
	// SilentCalls are answered calls that got no RTP back.
	SilentCalls int `json:"silent_calls"`
	// Jitter is each call's RFC 3550 interarrival jitter at its end.
	Jitter Distribution `json:"jitter_ms"`

	// RoundTrip is the time from an onset of sent audio to the same onset heard back, one
	// sample per onset; Added is RoundTrip minus the echo delay.
	RoundTrip Distribution `json:"round_trip_ms"`
	Added     Distribution `json:"added_latency_ms"`
	// OnsetsUnmatched are onsets heard that match no sent one (the audio came back
	// changed, or later than the pattern's spacing allows).
	OnsetsUnmatched int `json:"onsets_unmatched"`
	// VoiceToVoiceMs are, with Config.Turns, the times from each caller's turn's last word
	// sent to the first onset of the answer heard, in the order the calls ended.
	VoiceToVoiceMs []float64 `json:"voice_to_voice_ms,omitempty"`

	// ServerCPU is the CPU of the process ServerPID over the run (nil without one);
	// LoadCPU is the load generator's own. Percent of one core.
	ServerCPU *cpuUse `json:"server_cpu,omitempty"`
	LoadCPU   *cpuUse `json:"load_cpu"`

	// The pacers' health: frames sent at least a frame late, frames skipped because a pacer
	// fell further behind, and the worst lateness. Figures from a generator that is itself
	// short of CPU say more about it than about the server.
	PacerLateFrames    int64   `json:"pacer_late_frames"`
	PacerSkippedFrames int64   `json:"pacer_skipped_frames"`
	PacerMaxLagMs      float64 `json:"pacer_max_lag_ms"`
}

// Distribution summarises samples in milliseconds.
type Distribution struct {
	Count int     `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func distribution(samples []time.Duration) Distribution {
	if len(samples) == 0 {
		return Distribution{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Distribution{
		Count: len(samples),
		Min:   ms(samples[0]),
		Mean:  ms(sum / time.Duration(len(samples))),
		P50:   ms(percentile(samples, 50)),
		P99:   ms(percentile(samples, 99)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
func round1(v float64) float64   { return math.Round(v*10) / 10 }
func round3(v float64) float64   { return math.Round(v*1000) / 1000 }

// collector gathers the calls' results as they end.
type collector struct {
	mu      sync.Mutex
	results []callResult
}

func newCollector(total int) *collector {
	return &collector{results: make([]callResult, 0, total)}
}

func (c *collector) add(r callResult) {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.mu.Unlock()
}

func (c *collector) report(g *generator, elapsed time.Duration, serverCPU, loadCPU *cpuUse) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := g.cfg
	r := &Report{
		Target: g.target.String(), Transport: cfg.Transport, Codec: cfg.Codec, Audio: "tone",
		Calls: cfg.Calls, Rate: cfg.Rate, Total: cfg.Total,
		DurationMs: ms(cfg.Duration), EchoDelayMs: ms(cfg.EchoDelay), ElapsedMs: ms(elapsed),
		Attempted: len(c.results), PeakConcurrent: int(g.peak.Load()),
		ServerCPU: serverCPU, LoadCPU: loadCPU,
	}
	if cfg.WAV != "" {
		r.Audio = cfg.WAV
	}
	var setup, jitter, rtt, added []time.Duration
	for _, res := range c.results {
		if !res.answered {
			r.Failed++
			if r.Failures == nil {
				r.Failures = map[string]int{}
			}
			r.Failures[res.failure]++
			continue
		}
		r.Answered++
		setup = append(setup, res.setup)
		if res.remoteBye {
			r.RemoteHangups++
		}
		if res.byeFailed {
			r.ByeFailed++
		}
		r.PacketsSent += res.sent
		r.PacketsReceived += res.received
		r.PacketsExpected += int64(res.stats.Expected)
		r.PacketsLost += res.stats.Lost
		if res.received == 0 {
			r.SilentCalls++
		} else {
			jitter = append(jitter, time.Duration(res.stats.JitterMs*float64(time.Millisecond)))
		}
		for _, d := range res.roundTrips {
			rtt = append(rtt, d)
			added = append(added, d-cfg.EchoDelay)
		}
		r.OnsetsUnmatched += res.heardOnsets - len(res.roundTrips)
		for _, d := range res.turns {
			r.VoiceToVoiceMs = append(r.VoiceToVoiceMs, ms(d))
		}
	}
	if r.PacketsExpected > 0 {
		r.LossPercent = round3(100 * float64(max(r.PacketsLost, 0)) / float64(r.PacketsExpected))
	}
	r.Setup, r.Jitter = distribution(setup), distribution(jitter)
	r.RoundTrip, r.Added = distribution(rtt), distribution(added)
	for _, p := range g.pacers {
		r.PacerLateFrames += p.late.Load()
		r.PacerSkippedFrames += p.skipped.Load()
		r.PacerMaxLagMs = max(r.PacerMaxLagMs, ms(time.Duration(p.maxLag.Load())))
	}
	return r
}

// String is the human summary of WriteText.
func (r *Report) String() string {
	var b strings.Builder
	_ = r.WriteText(&b)
	return b.String()
}

// WriteText writes a human summary of r.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	rate := "as fast as slots free"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%g/s", r.Rate)
	}
	fmt.Fprintf(&b, "load     %s over %s, %s %s, %d concurrent at %s, %d in all, %v each, in %.1f s\n",
		r.Target, r.Transport, strings.ToUpper(r.Codec), r.Audio, r.Calls, rate, r.Total,
		time.Duration(r.DurationMs*float64(time.Millisecond)), r.ElapsedMs/1000)
	fmt.Fprintf(&b, "calls    attempted %d, answered %d, failed %d", r.Attempted, r.Answered, r.Failed)
	if len(r.Failures) > 0 {
		keys := make([]string, 0, len(r.Failures))
		for k := range r.Failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s×%d", k, r.Failures[k])
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "; peak %d at once", r.PeakConcurrent)
	if r.RemoteHangups > 0 || r.ByeFailed > 0 {
		fmt.Fprintf(&b, "; hung up by the far end %d, BYE failed %d", r.RemoteHangups, r.ByeFailed)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "setup    INVITE → 200 p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.Setup.P50, r.Setup.P99, r.Setup.Max)
	back := 0.0
	if r.PacketsSent > 0 {
		back = 100 * float64(r.PacketsReceived) / float64(r.PacketsSent)
	}
	fmt.Fprintf(&b, "rtp      sent %d, received %d (%.1f%% of sent); expected %d, lost %d (%.3f%%)",
		r.PacketsSent, r.PacketsReceived, back, r.PacketsExpected, r.PacketsLost, r.LossPercent)
	if r.SilentCalls > 0 {
		fmt.Fprintf(&b, "; %d answered calls got no audio back", r.SilentCalls)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "jitter   RFC 3550 per call: mean %.2f ms, p99 %.2f ms, max %.2f ms\n", r.Jitter.Mean, r.Jitter.P99, r.Jitter.Max)
	if r.RoundTrip.Count > 0 {
		fmt.Fprintf(&b, "latency  round trip p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d onsets); added to the %v echo p50 %.1f ms, p99 %.1f ms\n",
			r.RoundTrip.P50, r.RoundTrip.P99, r.RoundTrip.Max, r.RoundTrip.Count,
			time.Duration(r.EchoDelayMs*float64(time.Millisecond)), r.Added.P50, r.Added.P99)
	} else {
		b.WriteString("latency  no onset came back to measure\n")
	}
	if r.OnsetsUnmatched > 0 {
		fmt.Fprintf(&b, "         %d onsets heard matched none sent\n", r.OnsetsUnmatched)
	}
	b.WriteString("cpu      ")
	if r.ServerCPU != nil {
		fmt.Fprintf(&b, "server %s; ", r.ServerCPU)
	}
	if r.LoadCPU != nil {
		fmt.Fprintf(&b, "load generator %s", r.LoadCPU)
	}
	b.WriteString(" (% of a core)\n")
	fmt.Fprintf(&b, "pacer    late frames %d, skipped %d, max lag %.1f ms\n", r.PacerLateFrames, r.PacerSkippedFrames, r.PacerMaxLagMs)
	_, err := io.WriteString(w, b.String())
	return err
}
