package agent

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// Brain decides what an agent says and does: the LLM brain (a model with tools) and the
// workflow brain (a graph of steps) are the two. A brain runs a whole conversation through
// the Conversation it is given and returns when it is over; it never touches audio.
type Brain interface {
	Run(ctx context.Context, c Conversation) error
}

// Conversation is what a brain talks through. The voice loop of a call implements it over
// a media.Stream (speech in through VAD, endpointing and speech-to-text; speech out through
// text-to-speech, with barge-in); a text session can implement it over messages.
//
// Every method returns ErrHangup once the far end has gone, and ctx's error when ctx ends.
type Conversation interface {
	// Say speaks text and returns once it was played, or cut short by the caller speaking
	// over it (barge-in); Spoken says how much was heard.
	Say(ctx context.Context, text string) (Spoken, error)
	// Speak is Say for text still being generated: the deltas of text are cut into
	// sentences, and each is synthesised and played while the next is still coming. It
	// returns when text is closed and all of it was played, or when the caller interrupts
	// (then the rest of text is drained and dropped).
	Speak(ctx context.Context, text <-chan string) (Spoken, error)
	// Listen waits for the caller's next input: an utterance (transcribed), keys pressed, or
	// nothing within opts.Timeout (an Input of kind InputTimeout). Speech that interrupted
	// the last Say or Speak is the next input.
	Listen(ctx context.Context, opts ListenOptions) (Input, error)
	// Record captures what the caller says (a voicemail) until silence, a key, or the
	// maximum length.
	Record(ctx context.Context, opts RecordOptions) (Recording, error)
	// Hangup ends the conversation from our side with a reason ("agent-hangup" when empty).
	Hangup(reason string)
	// Transfer hands the caller to a number or a SIP URI (blind transfer).
	Transfer(ctx context.Context, to string) error
	// SendDTMF plays keys to the far end (menus of other systems).
	SendDTMF(digits string) error
	// ToolCall records a tool the brain ran, for the transcript and the call's events.
	ToolCall(call ToolRecord)
	// Usage adds model tokens the brain spent, for the end-of-call report.
	Usage(u llm.Usage)
	// Event publishes an event on the conversation's topic (call:{id}).
	Event(typ string, data any)
}

// ErrHangup is returned by a Conversation whose far end has gone.
var ErrHangup = errors.New("agent: the caller hung up")

// Spoken is what was played of something said.
type Spoken struct {
	// Text is the text actually played: all of it, or the words heard before the caller
	// interrupted.
	Text string
	// Interrupted says the caller spoke over it and playback stopped.
	Interrupted bool
}

// InputKind says what a caller's input is.
type InputKind uint8

const (
	// InputSpeech is an utterance: Text holds its transcript.
	InputSpeech InputKind = iota + 1
	// InputDTMF is keys pressed: Digits holds them (without the terminator).
	InputDTMF
	// InputTimeout is no input within the time allowed.
	InputTimeout
)

// Input is one turn of the caller.
type Input struct {
	Kind   InputKind
	Text   string
	Digits string
	// Start and End bound the caller's turn.
	Start, End time.Time
}

// ListenOptions say what to wait for and how long.
type ListenOptions struct {
	// Speech and DTMF say which inputs end the wait; both false means both.
	Speech, DTMF bool
	// Timeout ends the wait with InputTimeout; zero waits for the agent's idle limit (the
	// conversation then reminds the caller and, at the limit, ends the call). A wait that
	// takes speech counts it from the caller's last words, as a caller who talked (noise, or
	// words that could not be transcribed) has not yet been given the time to answer.
	Timeout time.Duration
	// MaxDigits ends a DTMF input after so many keys; Terminator ("#" when zero and
	// MaxDigits is not 1) ends it early and is not part of Digits.
	MaxDigits  int
	Terminator rune
	// InterDigit ends a DTMF input this long after the last key (zero: 3 s).
	InterDigit time.Duration
}

// RecordOptions bound a recording.
type RecordOptions struct {
	// MaxDuration ends it (zero: 2 minutes); Silence ends it after so much quiet once the
	// caller spoke (zero: 3 s); a key pressed ends it when StopOnDTMF.
	MaxDuration time.Duration
	Silence     time.Duration
	StopOnDTMF  bool
	// Beep plays a short tone first.
	Beep bool
}

// Recording is a captured message.
type Recording struct {
	// WAV is the message as a mono PCM16 WAV file.
	WAV      []byte
	Duration time.Duration
}

// ToolRecord is one tool call of a brain, as the transcript keeps it.
type ToolRecord struct {
	// ID is the model's ID of the call, which ties its result to it.
	ID        string        `json:"id,omitempty"`
	Name      string        `json:"name"`
	Arguments string        `json:"arguments"`
	Result    string        `json:"result"`
	Error     string        `json:"error,omitempty"`
	Duration  time.Duration `json:"-"`
}

// TurnObserver is implemented by a Conversation that shows a model's answer part by part as
// it is made: a text session streams it to its client. The voice loop does not; it hears
// only the text given to Speak. The LLM brain calls these from the goroutine that reads the
// model's stream (every text delta reaches TextDelta before Speak gets it) and from the
// brain's own, never two at once, and in the order the parts were made.
type TurnObserver interface {
	// StepStart is called as a completion is asked for: one step of the answer.
	StepStart()
	// TextDelta is a fragment of the answer's text.
	TextDelta(text string)
	// ToolInputStart and ToolInputDelta are a tool call as the model writes it: its ID and
	// name, then fragments of its arguments.
	ToolInputStart(id, name string)
	ToolInputDelta(id, delta string)
	// ToolInputAvailable is a whole tool call, just before the brain runs it; its result
	// comes to ToolCall with the same ID.
	ToolInputAvailable(call llm.ToolCall)
	// StepFinish is called when the completion ended: why it stopped, and its failure if
	// it failed (its usage went to Usage).
	StepFinish(reason llm.StopReason, err error)
}

// TurnTracer is a Conversation that traces its turns (the voice loop of a traced call): the
// turn begins as the caller stops speaking, and its speech-to-text is part of it already.
type TurnTracer interface {
	// TurnContext is ctx with the span of the caller's last turn, so that what answers it
	// is traced under it; ctx itself when there is none.
	TurnContext(ctx context.Context) context.Context
}

// TurnContext is ctx with the span of c's current turn, when c traces its turns.
func TurnContext(ctx context.Context, c Conversation) context.Context {
	if t, ok := c.(TurnTracer); ok {
		return t.TurnContext(ctx)
	}
	return ctx
}
