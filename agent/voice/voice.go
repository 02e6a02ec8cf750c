// Package voice owns a call's conversation loop: it runs an agent.Brain over a
// media.Stream, hearing the caller through voice activity detection, endpointing and
// speech-to-text, and speaking through text-to-speech with barge-in, within the agent's
// idle and duration limits. It publishes the call's transcript, metrics and tool calls as
// events and returns the call's transcript and report.
package voice

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/store"
)

// Line is the call a conversation runs on; *sip.Call satisfies it.
type Line interface {
	Stream() media.Stream
	Hangup(reason string)
	Transfer(ctx context.Context, to string) error
	SendDTMF(digits string) error
	Publish(typ string, data any)
}

// Config is how an agent hears and speaks.
type Config struct {
	// STT transcribes the caller's utterances in Language (ISO 639-1, or empty). Nil: speech
	// is heard (it interrupts, it is recorded) but never understood; only keys are input.
	STT      speech.STT
	Language string
	// StreamingSTT, when set, hears the caller live instead of STT: every frame is streamed
	// to it for the whole call, and the turn ends on its transcript and the VAD together.
	StreamingSTT speech.StreamingSTT
	// TTS speaks with Voice at Speed (0 means 1). FallbackTTS, if set, speaks when TTS
	// failed twice (espeak-ng, offline, is the usual one).
	TTS         speech.TTS
	Voice       string
	Speed       float64
	FallbackTTS speech.TTS
	// Turn tunes endpointing and barge-in; zero durations take the agent defaults (600 ms,
	// 250 ms). Interruptions false disables barge-in, except in a zero TurnSettings, which
	// is the defaults as a whole (barge-in on).
	Turn store.TurnSettings
	// Limits end a call: MaxDurationS (zero: none) and IdleTimeoutS (zero: 30 s).
	Limits store.CallLimits
	// BargeInDuringFirstMessage lets the caller interrupt the first thing said (the
	// greeting); off, it is always heard whole.
	BargeInDuringFirstMessage bool
	// IdleReminder is said at half the idle limit; empty: "Are you still there?".
	IdleReminder string
	// Turns counts each answer's latency for /metrics; nil: not counted.
	Turns *metrics.Turns
	Log   *slog.Logger
}

// Event types a conversation publishes on its line.
const (
	EventTranscript  = "call.transcript"    // a caller's turn (Turn)
	EventAgentSpeech = "call.agent_speech"  // an agent's turn (Turn, with metrics)
	EventMetrics     = "call.metrics"       // the latency of an answer (TurnMetrics)
	EventToolCall    = "call.tool_call"     // a tool the brain ran (agent.ToolRecord)
	EventReport      = "call.report"        // the end-of-call report (Report)
	EventError       = "agent.error"        // a provider failure (ErrorEvent)
	EventIdle        = "call.idle_reminder" // the idle reminder was said
	EventBargeIn     = "call.barge_in"      // playback stopped for the caller (BargeIn)
	// EventSpeculationDropped says an answer begun on a live interim transcript was
	// dropped unheard, because the caller went on ({"text"}: the words it answered).
	EventSpeculationDropped = "call.speculation_dropped"
)

// Result is what happened on a call.
type Result struct {
	// Reason is why the call ended: the caller's hang-up reason, the brain's Hangup
	// reason, or the conversation's own (call.ReasonIdleTimeout, MaxDuration, AgentError,
	// Shutdown).
	Reason     string
	Transcript []Turn
	Report     Report
}

// Turn is one entry of a call's transcript.
type Turn struct {
	Role        string            `json:"role"` // user, assistant or tool
	Text        string            `json:"text"`
	DTMF        string            `json:"dtmf,omitempty"`
	Start       time.Time         `json:"start"`
	End         time.Time         `json:"end"`
	Interrupted bool              `json:"interrupted"`
	Tool        *agent.ToolRecord `json:"tool,omitempty"`
	// Knowledge is what a search of the agent's knowledge found (role "knowledge"; Text
	// is the query).
	Knowledge *agent.Retrieval `json:"knowledge,omitempty"`
	Metrics   *TurnMetrics     `json:"metrics,omitempty"`
}

// TurnMetrics is the latency of an agent's answer, in milliseconds.
type TurnMetrics struct {
	// EndOfSpeechMS runs from the caller's last voiced frame to the turn declared over.
	EndOfSpeechMS float64 `json:"end_of_speech_ms"`
	// STTMS is the transcription of the turn's audio: with a streaming transcriber, from the
	// caller's last voiced frame to the transcript the turn took (0 when it came first).
	STTMS float64 `json:"stt_ms"`
	// BrainFirstTokenMS runs from Listen returning to the brain's first text to speak.
	BrainFirstTokenMS float64 `json:"brain_first_token_ms"`
	// KnowledgeMS is the part of BrainFirstTokenMS spent searching the agent's knowledge
	// (every search of the turn, before the answer began to sound).
	KnowledgeMS float64 `json:"knowledge_ms,omitempty"`
	// TTSFirstAudioMS runs from the first sentence sent to synthesis to its first audio.
	TTSFirstAudioMS float64 `json:"tts_first_audio_ms"`
	// VoiceToVoiceMS runs from the caller's last voiced frame to our first frame written.
	VoiceToVoiceMS float64 `json:"voice_to_voice_ms"`
}

// Report sums a call up.
type Report struct {
	EndedReason     string  `json:"ended_reason"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Turns counts the caller's turns that were answered or acted on.
	Turns int `json:"turns"`
	// LatencyP50MS and LatencyP90MS are percentiles of voice-to-voice latency, null when
	// no spoken turn was answered (a call of keys only has none to measure).
	LatencyP50MS  *float64  `json:"latency_p50_ms"`
	LatencyP90MS  *float64  `json:"latency_p90_ms"`
	Usage         llm.Usage `json:"usage"`
	TTSCharacters int       `json:"tts_characters"`
	STTSeconds    float64   `json:"stt_seconds"`
	Interruptions int       `json:"interruptions"`
	// ToolCalls counts the tools the brain ran, ToolFailures those that failed.
	ToolCalls    int `json:"tool_calls"`
	ToolFailures int `json:"tool_failures"`
	// Errors are the provider and tool failures of the call, the first maxReportErrors.
	Errors []ReportError `json:"errors,omitempty"`

	// TurnLatenciesMS is the voice-to-voice latency of each answered spoken turn, kept on
	// the call's record for the analytics' percentiles over turns.
	TurnLatenciesMS []float64 `json:"-"`
}

// ReportError is one failure of a call: a provider's (stt, tts, brain) or a tool's.
type ReportError struct {
	Stage   string    `json:"stage"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// maxReportErrors bounds the errors a report keeps: a provider failing on every turn of a
// long call says so often enough in its first few.
const maxReportErrors = 50

// ErrorEvent is the data of an agent.error event.
type ErrorEvent struct {
	Stage    string `json:"stage"` // stt, tts, brain
	Error    string `json:"error"`
	Fallback string `json:"fallback,omitempty"` // what was done instead
}

// Run runs brain over line's stream until the brain returns, the call ends or ctx ends,
// and returns what happened. It hangs the line up (unless the caller did) and returns
// only when every goroutine it started has stopped.
func Run(ctx context.Context, line Line, brain agent.Brain, cfg Config) Result {
	c := newConversation(ctx, line, cfg)
	return c.run(brain)
}
