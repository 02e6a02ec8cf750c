package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Calls is the node's call metrics, of every transport: the calls live now, how each ended,
// how long their setup and their talk took, and how their media fared. Its labels take a
// bounded set of values: the call's direction (inbound, outbound, web), its final status,
// and its end reason from the known set ("other" for a reason of a brain's own).
type Calls struct {
	active   *prometheus.GaugeVec
	ended    *prometheus.CounterVec
	setup    *prometheus.HistogramVec
	duration *prometheus.HistogramVec
	packets  *prometheus.CounterVec
	jitter   *prometheus.HistogramVec
}

// CallEnd is what the call metrics count of a call that ended.
type CallEnd struct {
	Transport, Direction, Status, Reason string
	// Answered says the call was answered; Duration is then its talk time.
	Answered bool
	Duration time.Duration
	// The media's figures over the call; HasMedia says there were any.
	HasMedia                                               bool
	PacketsReceived, PacketsSent, PacketsLost, PacketsLate int64
	JitterMS                                               float64
}

func newCalls() *Calls {
	return &Calls{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "calls_active",
			Help: "Calls live on this node now, ringing or answered, by transport and direction."}, []string{"transport", "direction"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "calls_total",
			Help: "Calls that ended on this node, by transport, direction, final status and end reason."}, []string{"transport", "direction", "status", "reason"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "call_setup_seconds",
			Help:    "Time from a call's start (INVITE received or sent, web call created) to its answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"transport", "direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "call_duration_seconds",
			Help:    "Talk time of answered calls, from answer to end.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}}, []string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "call_media_packets_total",
			Help: "Media packets of ended calls: received, sent, lost in the network, and late (arrived too late to be played)."},
			[]string{"direction", "kind"}),
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "call_jitter_seconds",
			Help:    "Interarrival jitter of each ended call's received media (RFC 3550), as the call ended.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .04, .08, .16}}, []string{"direction"}),
	}
}

// Started counts a call that began (its record exists) as live. transport is sip, webrtc
// or mediastream.
func (c *Calls) Started(transport, direction string) {
	if c == nil {
		return
	}
	c.active.WithLabelValues(transport, direction).Inc()
}

// Answered observes a call's setup time.
func (c *Calls) Answered(transport, direction string, setup time.Duration) {
	if c == nil {
		return
	}
	c.setup.WithLabelValues(transport, direction).Observe(setup.Seconds())
}

// Ended counts a call that ended and is no longer live.
func (c *Calls) Ended(e CallEnd) {
	if c == nil {
		return
	}
	c.active.WithLabelValues(e.Transport, e.Direction).Dec()
	c.ended.WithLabelValues(e.Transport, e.Direction, e.Status, e.Reason).Inc()
	if e.Answered {
		c.duration.WithLabelValues(e.Direction).Observe(e.Duration.Seconds())
	}
	if !e.HasMedia {
		return
	}
	for kind, n := range map[string]int64{"received": e.PacketsReceived, "sent": e.PacketsSent, "lost": e.PacketsLost, "late": e.PacketsLate} {
		if n > 0 {
			c.packets.WithLabelValues(e.Direction, kind).Add(float64(n))
		}
	}
	if e.PacketsReceived > 0 {
		c.jitter.WithLabelValues(e.Direction).Observe(e.JitterMS / 1000)
	}
}

// Turns is the latency of agents' answers on calls: from the caller's last voiced frame to
// the agent's first audio, and each stage of it. Its only label is the stage's name.
type Turns struct {
	voiceToVoice prometheus.Histogram
	stages       *prometheus.HistogramVec
}

// Turn is one answer's latency, in milliseconds, stage by stage (zero: the stage did not
// run, as retrieval on a turn without a search).
type Turn struct {
	VoiceToVoiceMS, EndOfSpeechMS, STTMS, ModelFirstTokenMS, RetrievalMS, TTSFirstAudioMS float64
}

func newTurns() *Turns {
	buckets := []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10}
	return &Turns{
		voiceToVoice: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "turn_latency_seconds",
			Help:    "Voice-to-voice latency of agents' answers on calls: the caller's last voiced frame to the agent's first audio.",
			Buckets: buckets}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "turn_stage_seconds",
			Help:    "Each stage of an answer: end_of_speech (endpointing), stt, model_first_token, retrieval (within the model's), tts_first_audio.",
			Buckets: buckets}, []string{"stage"}),
	}
}

// Observe counts one answer.
func (t *Turns) Observe(turn Turn) {
	if t == nil {
		return
	}
	t.voiceToVoice.Observe(turn.VoiceToVoiceMS / 1000)
	for stage, ms := range map[string]float64{"end_of_speech": turn.EndOfSpeechMS, "stt": turn.STTMS,
		"model_first_token": turn.ModelFirstTokenMS, "retrieval": turn.RetrievalMS, "tts_first_audio": turn.TTSFirstAudioMS} {
		if ms > 0 {
			t.stages.WithLabelValues(stage).Observe(ms / 1000)
		}
	}
}
