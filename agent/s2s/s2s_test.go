package s2s

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParseEvent reads the GA events and the beta names of the same events alike, decodes
// audio, and refuses what is not an event.
func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Event
		err  error
	}{
		{raw: `{"type":"response.output_audio.delta","item_id":"i1","response_id":"r1","delta":"AAEC"}`,
			want: Event{Type: EventAudioDelta, ItemID: "i1", ResponseID: "r1", Audio: []byte{0, 1, 2}}},
		{raw: `{"type":"response.audio.delta","item_id":"i1","delta":"AAEC"}`,
			want: Event{Type: EventAudioDelta, ItemID: "i1", Audio: []byte{0, 1, 2}}},
		{raw: `{"type":"response.audio_transcript.delta","item_id":"i1","delta":"Hel"}`,
			want: Event{Type: EventTranscriptDelta, ItemID: "i1", Text: "Hel"}},
		{raw: `{"type":"response.done","response":{"id":"r2","status":"cancelled","usage":{"input_tokens":7,"output_tokens":3}}}`,
			want: Event{Type: EventResponseDone, ResponseID: "r2", Status: "cancelled", Usage: Usage{InputTokens: 7, OutputTokens: 3}}},
		{raw: `{"type":"response.function_call_arguments.done","call_id":"c1","name":"get_order","arguments":"{}"}`,
			want: Event{Type: EventFunctionCallDone, CallID: "c1", Name: "get_order", Arguments: "{}"}},
		{raw: `{"type":"conversation.item.input_audio_transcription.completed","item_id":"i2","transcript":"Hi."}`,
			want: Event{Type: EventInputTranscript, ItemID: "i2", Transcript: "Hi."}},
		{raw: `{"type":"error","error":{"type":"invalid_request_error","code":"bad","message":"no"}}`,
			want: Event{Type: EventError, Err: &ServerError{Type: "invalid_request_error", Code: "bad", Message: "no"}}},
		{raw: `{"type":"response.output_audio.delta","delta":"!!"}`, err: ErrProtocol},
		{raw: `{"item_id":"x"}`, err: ErrProtocol},
		{raw: `not json`, err: ErrProtocol},
	} {
		got, err := ParseEvent([]byte(tc.raw))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: error %v, want %v", tc.raw, err, tc.err)
			}
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(tc.want)
		if err != nil || string(a) != string(b) {
			t.Errorf("%s:\n got %s %v\nwant %s", tc.raw, a, err, b)
		}
	}
}

// TestEndpoint maps a provider's base URL to its Realtime socket.
func TestEndpoint(t *testing.T) {
	for base, want := range map[string]string{
		"https://api.openai.com/v1":  "wss://api.openai.com/v1/realtime?model=gpt-realtime",
		"http://127.0.0.1:8080/v1/":  "ws://127.0.0.1:8080/v1/realtime?model=gpt-realtime",
		"wss://gw.example.com/proxy": "wss://gw.example.com/proxy/realtime?model=gpt-realtime",
	} {
		if got, err := endpoint(base, "gpt-realtime"); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", base, got, err, want)
		}
	}
	for _, base := range []string{"ftp://x", "::"} {
		if _, err := endpoint(base, "m"); !errors.Is(err, ErrDial) {
			t.Errorf("%s: %v, want ErrDial", base, err)
		}
	}
	if _, err := endpoint("https://x/v1", ""); !errors.Is(err, ErrDial) {
		t.Errorf("no model: %v, want ErrDial", err)
	}
}

// TestSessionConfig is the GA session object: formats, turn detection (null for ours), tools.
func TestSessionConfig(t *testing.T) {
	b, _ := json.Marshal(SessionConfig{Instructions: "Be brief.", Voice: "marin", Format: FormatFor(16000), TurnDetection: TurnNone,
		Transcription: "whisper-1", Tools: []Tool{{Name: "end_call"}}}.wire())
	got := string(b)
	for _, want := range []string{`"type":"realtime"`, `"format":{"rate":24000,"type":"audio/pcm"}`, `"turn_detection":null`,
		`"transcription":{"model":"whisper-1"}`, `"voice":"marin"`, `"name":"end_call"`, `"parameters":{"type":"object","properties":{}}`} {
		if !strings.Contains(got, want) {
			t.Errorf("session %s lacks %s", got, want)
		}
	}
	b, _ = json.Marshal(SessionConfig{Format: FormatFor(8000), TurnDetection: TurnSemanticVAD}.wire())
	if got := string(b); !strings.Contains(got, `"format":{"type":"audio/pcmu"}`) || !strings.Contains(got, `"turn_detection":{"type":"semantic_vad"}`) {
		t.Errorf("telephone session %s", got)
	}
}
