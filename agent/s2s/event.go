package s2s

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Server event types, by their GA names. ParseEvent gives the beta names of the same
// events (response.audio.delta, response.audio_transcript.delta, …) these names, so that a
// server of either generation is understood.
const (
	EventSessionCreated       = "session.created"
	EventSessionUpdated       = "session.updated"
	EventSpeechStarted        = "input_audio_buffer.speech_started"
	EventSpeechStopped        = "input_audio_buffer.speech_stopped"
	EventCommitted            = "input_audio_buffer.committed"
	EventInputTranscript      = "conversation.item.input_audio_transcription.completed"
	EventResponseCreated      = "response.created"
	EventOutputItemAdded      = "response.output_item.added"
	EventAudioDelta           = "response.output_audio.delta"
	EventAudioDone            = "response.output_audio.done"
	EventTranscriptDelta      = "response.output_audio_transcript.delta"
	EventTranscriptDone       = "response.output_audio_transcript.done"
	EventFunctionCallDone     = "response.function_call_arguments.done"
	EventResponseDone         = "response.done"
	EventConversationTruncate = "conversation.item.truncated"
	EventError                = "error"
)

// betaNames maps the beta protocol's event names to the GA ones.
var betaNames = map[string]string{
	"response.audio.delta":            EventAudioDelta,
	"response.audio.done":             EventAudioDone,
	"response.audio_transcript.delta": EventTranscriptDelta,
	"response.audio_transcript.done":  EventTranscriptDone,
}

// Event is one server event, with the fields Switchboard uses.
type Event struct {
	Type       string
	ItemID     string
	ResponseID string
	// Audio is an audio delta, decoded, in the session's output format.
	Audio []byte
	// Text is a transcript delta; Transcript a whole transcript (the caller's, or the
	// model's at its end).
	Text       string
	Transcript string
	// CallID, Name and Arguments are a function call the model made.
	CallID, Name, Arguments string
	// AudioStartMS and AudioEndMS are where in the input buffer the caller's speech began
	// and ended (speech_started, speech_stopped).
	AudioStartMS, AudioEndMS int
	// Status is how a response ended (completed, cancelled, incomplete, failed), Usage
	// what it cost, on response.done.
	Status string
	Usage  Usage
	// Err is an error event's error.
	Err *ServerError
}

// Usage is what a response cost, in tokens (text and audio together).
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

type wireEvent struct {
	Type         string `json:"type"`
	ItemID       string `json:"item_id"`
	ResponseID   string `json:"response_id"`
	Delta        string `json:"delta"`
	Transcript   string `json:"transcript"`
	CallID       string `json:"call_id"`
	Name         string `json:"name"`
	Arguments    string `json:"arguments"`
	AudioStartMS int    `json:"audio_start_ms"`
	AudioEndMS   int    `json:"audio_end_ms"`
	Item         *struct {
		ID string `json:"id"`
	} `json:"item"`
	Response *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Usage  *Usage `json:"usage"`
	} `json:"response"`
	Error *ServerError `json:"error"`
}

// ParseEvent decodes a server event.
func ParseEvent(b []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if w.Type == "" {
		return Event{}, fmt.Errorf("%w: no type", ErrProtocol)
	}
	if ga, ok := betaNames[w.Type]; ok {
		w.Type = ga
	}
	ev := Event{Type: w.Type, ItemID: w.ItemID, ResponseID: w.ResponseID, Transcript: w.Transcript, CallID: w.CallID,
		Name: w.Name, Arguments: w.Arguments, AudioStartMS: w.AudioStartMS, AudioEndMS: w.AudioEndMS, Err: w.Error}
	if w.Item != nil && ev.ItemID == "" {
		ev.ItemID = w.Item.ID
	}
	if w.Response != nil {
		if ev.ResponseID == "" {
			ev.ResponseID = w.Response.ID
		}
		ev.Status = w.Response.Status
		if w.Response.Usage != nil {
			ev.Usage = *w.Response.Usage
		}
	}
	switch w.Type {
	case EventAudioDelta:
		audio, err := base64.StdEncoding.DecodeString(w.Delta)
		if err != nil {
			return Event{}, fmt.Errorf("%w: audio delta: %w", ErrProtocol, err)
		}
		ev.Audio = audio
	case EventTranscriptDelta:
		ev.Text = w.Delta
	case EventError:
		if ev.Err == nil {
			ev.Err = &ServerError{Type: "error"}
		}
	}
	return ev, nil
}

// Format is an audio format of the protocol.
type Format string

const (
	// FormatPCMU is G.711 µ-law at 8 kHz: a telephone call's own audio, sent and played
	// without resampling.
	FormatPCMU Format = "audio/pcmu"
	// FormatPCM is 16-bit little-endian PCM at 24 kHz, for calls at wideband rates.
	FormatPCM Format = "audio/pcm"
)

// Rate is the format's sample rate.
func (f Format) Rate() int {
	if f == FormatPCMU {
		return 8000
	}
	return 24000
}

// FormatFor is the format for a call at rate: µ-law for the telephone's 8 kHz, 24 kHz PCM
// for anything wider, so that a call's audio is resampled at most once each way.
func FormatFor(rate int) Format {
	if rate == 8000 {
		return FormatPCMU
	}
	return FormatPCM
}

// Turn detection modes of a session.
const (
	// TurnServerVAD is the model's own voice activity detection.
	TurnServerVAD = "server_vad"
	// TurnSemanticVAD is the model's judgement of whether the caller has finished.
	TurnSemanticVAD = "semantic_vad"
	// TurnNone leaves the turns to the client (Commit, then CreateResponse).
	TurnNone = ""
)

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

// SessionConfig is what session.update sets.
type SessionConfig struct {
	Instructions string
	// Voice is the model's voice (marin, alloy…); empty leaves the server's default.
	Voice  string
	Format Format
	// TurnDetection is TurnServerVAD, TurnSemanticVAD or TurnNone.
	TurnDetection string
	// Transcription is the model that transcribes the caller's audio for the transcript
	// (input_audio_transcription.completed); empty asks for none.
	Transcription string
	Tools         []Tool
}

// wire is the session object of session.update, in the GA shape.
func (c SessionConfig) wire() map[string]any {
	format := map[string]any{"type": string(c.Format)}
	if c.Format == FormatPCM {
		format["rate"] = 24000
	}
	input := map[string]any{"format": format, "turn_detection": nil}
	if c.TurnDetection != TurnNone {
		input["turn_detection"] = map[string]any{"type": c.TurnDetection}
	}
	if c.Transcription != "" {
		input["transcription"] = map[string]any{"model": c.Transcription}
	}
	output := map[string]any{"format": format}
	if c.Voice != "" {
		output["voice"] = c.Voice
	}
	tools := make([]map[string]any, 0, len(c.Tools))
	for _, t := range c.Tools {
		params := t.Parameters
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		tools = append(tools, map[string]any{"type": "function", "name": t.Name, "description": t.Description, "parameters": params})
	}
	return map[string]any{"type": "realtime", "instructions": c.Instructions, "output_modalities": []string{"audio"},
		"audio": map[string]any{"input": input, "output": output}, "tools": tools, "tool_choice": "auto"}
}
