package store

import (
	"context"
	"math"
	"time"

	"github.com/uptrace/bun"
)

// Currency is the currency of every price and cost Switchboard keeps.
const Currency = "USD"

// CallUsage is what a call used and what it cost, written with the call's end: the agent's
// model tokens, the speech it heard (seconds sent to speech to text) and said (characters
// sent to text to speech), how the conversation went (turns, interruptions, tool calls and
// the failures among them, the median latency of its answers), and the cost of it all. The
// analytics API sums these columns; a call no agent talked on has zeros but its telephony.
type CallUsage struct {
	InputTokens   int     `bun:"input_tokens,notnull" json:"input_tokens"`
	OutputTokens  int     `bun:"output_tokens,notnull" json:"output_tokens"`
	STTSeconds    float64 `bun:"stt_seconds,notnull" json:"stt_seconds"`
	TTSCharacters int     `bun:"tts_characters,notnull" json:"tts_characters"`
	Turns         int     `bun:"turns,notnull" json:"turns"`
	Interruptions int     `bun:"interruptions,notnull" json:"interruptions"`
	ToolCalls     int     `bun:"tool_calls,notnull" json:"tool_calls"`
	ToolFailures  int     `bun:"tool_failures,notnull" json:"tool_failures"`
	// LatencyP50MS is the median voice-to-voice latency of the call's answers; nil when no
	// spoken turn was answered.
	LatencyP50MS *float64 `bun:"latency_p50_ms" json:"latency_p50_ms"`
	// TurnLatenciesMS is the voice-to-voice latency of each answered spoken turn, in order:
	// the analytics' turn-latency percentiles are over these.
	TurnLatenciesMS []float64 `bun:"turn_latencies_ms,type:json" json:"turn_latencies_ms,omitempty"`
	// CostUSD is Cost.Total, a column of its own so that the database sums it.
	CostUSD float64  `bun:"cost_usd,notnull" json:"cost_usd"`
	Cost    CallCost `bun:"cost,type:json" json:"cost"`
}

// CallCost is what a call cost, part by part, in Currency.
type CallCost struct {
	// Model is the agent's model tokens at its provider's prices.
	Model float64 `json:"model"`
	// STT is the seconds of the caller's speech transcribed, at the transcriber's provider's
	// price a minute.
	STT float64 `json:"stt"`
	// TTS is the characters spoken, at the voice's provider's price a million characters.
	TTS float64 `json:"tts"`
	// Telephony is the answered minutes (to the second) at the trunk's price a minute.
	Telephony float64 `json:"telephony"`
	Total     float64 `json:"total"`
	Currency  string  `json:"currency"`
}

// Sum sets the total and the currency from the parts, each rounded to a millionth of a
// dollar so that the parts add up to the total as shown.
func (c *CallCost) Sum() {
	for _, p := range []*float64{&c.Model, &c.STT, &c.TTS, &c.Telephony} {
		*p = RoundUSD(*p)
	}
	c.Total = RoundUSD(c.Model + c.STT + c.TTS + c.Telephony)
	c.Currency = Currency
}

// RoundUSD rounds dollars to a millionth (0 for what is not a finite, positive amount).
func RoundUSD(usd float64) float64 {
	if !(usd > 0) || math.IsInf(usd, 0) {
		return 0
	}
	return math.Round(usd*1e6) / 1e6
}

// SpeechPrice is what a tenant's provider's speech costs, in Currency (the providers file
// has the same fields: llm.SpeechPrice).
type SpeechPrice struct {
	// STTPerMinute is a minute of audio transcribed.
	STTPerMinute float64 `json:"stt_per_minute"`
	// TTSPerMillionCharacters is a million characters spoken.
	TTSPerMillionCharacters float64 `json:"tts_per_million_characters"`
}

func (p SpeechPrice) validate(fe *fieldErrors, field string) {
	if p.STTPerMinute < 0 || math.IsNaN(p.STTPerMinute) || math.IsInf(p.STTPerMinute, 0) {
		fe.add(field+".stt_per_minute", "must be a dollar amount, not negative")
	}
	if p.TTSPerMillionCharacters < 0 || math.IsNaN(p.TTSPerMillionCharacters) || math.IsInf(p.TTSPerMillionCharacters, 0) {
		fe.add(field+".tts_per_million_characters", "must be a dollar amount, not negative")
	}
}

// Stages of a call error.
const (
	ErrorStageSTT   = "stt"
	ErrorStageTTS   = "tts"
	ErrorStageBrain = "brain"
	ErrorStageTool  = "tool"
)

// maxCallErrors bounds the errors kept of one call: a provider that fails on every turn
// of a long call says so often enough in its first few.
const maxCallErrors = 50

// maxErrorMessage bounds an error's message, in bytes.
const maxErrorMessage = 1000

// CallError is one thing that went wrong on a call: a provider failing (speech to text,
// text to speech, the model) or a tool's webhook. The analytics error log lists them with
// the calls that failed.
type CallError struct {
	bun.BaseModel `bun:"table:call_errors"`

	ID        string    `bun:"id,pk" json:"id"`
	TenantID  string    `bun:"tenant_id,notnull" json:"-"`
	CallID    string    `bun:"call_id,notnull" json:"call_id"`
	AgentID   *string   `bun:"agent_id" json:"agent_id"`
	Stage     string    `bun:"stage,notnull" json:"stage"`
	Message   string    `bun:"message,notnull" json:"message"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// CreateCallErrors keeps the errors of a call of the tenant (at most maxCallErrors, each
// message cut to maxErrorMessage bytes), in one statement. Errors without a time are dated
// now.
func CreateCallErrors(ctx context.Context, s *Store, tenantID, callID string, agentID *string, errs []CallError) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > maxCallErrors {
		errs = errs[:maxCallErrors]
	}
	now := s.now()
	rows := make([]CallError, len(errs))
	for i, e := range errs {
		e.ID, e.TenantID, e.CallID, e.AgentID = newID("cer_"), tenantID, callID, agentID
		e.Stage, e.Message = cleanString(e.Stage), cleanString(truncateUTF8(e.Message, maxErrorMessage))
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		e.CreatedAt = e.CreatedAt.UTC()
		rows[i] = e
	}
	_, err := s.db.NewInsert().Model(&rows).Exec(ctx)
	return classify(err)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
