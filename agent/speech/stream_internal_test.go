package speech

import (
	"encoding/base64"
	"encoding/binary"
	"testing"

	"github.com/coder/websocket"
)

// TestStreamReadDoesNotAllocate pins the media path's rule for a streaming voice: a
// provider's message is decoded once into bytes reused from message to message, and each
// frame read out of it costs no allocation.
func TestStreamReadDoesNotAllocate(t *testing.T) {
	raw := make([]byte, 0, 3200)
	for i := range 1600 {
		raw = binary.LittleEndian.AppendUint16(raw, uint16(i))
	}
	msg := base64.StdEncoding.EncodeToString(raw)
	var b pcmBuffer
	frame := make([]int16, 160)
	if err := b.fill(msg); err != nil {
		t.Fatal(err)
	}
	if n := b.read(frame); n != 160 || frame[1] != 1 || frame[159] != 159 {
		t.Fatalf("read %d samples %v…", n, frame[:3])
	}
	allocs := testing.AllocsPerRun(200, func() {
		if b.empty() {
			_ = b.fill(msg) // one message: not measured per frame below
		}
		b.read(frame)
	})
	// fill's string-to-bytes conversion is one allocation per ten frames here.
	if allocs > 0.2 {
		t.Errorf("%.2f allocations a frame, want none but a message's decoding", allocs)
	}
}

// FuzzStreamMessages feeds the ElevenLabs and Cartesia message handlers what a hostile or
// broken provider might send: each message is audio, an end, nothing, or an error that
// says so, never a panic, and audio is always whole 16-bit samples.
func FuzzStreamMessages(f *testing.F) {
	for _, seed := range []string{
		`{"audio":"AAABAA==","isFinal":null,"normalizedAlignment":{"chars":["a"]}}`,
		`{"isFinal":true}`,
		`{"message":"quota exceeded","error":"quota_exceeded","code":1008}`,
		`{"type":"chunk","data":"AAABAA==","done":false,"status_code":206,"context_id":"c"}`,
		`{"type":"done","done":true,"context_id":"c"}`,
		`{"type":"error","done":true,"error":"bad","status_code":400,"context_id":"c"}`,
		`{"type":"timestamps","word_timestamps":{"words":["a"],"start":[0],"end":[0.1]},"context_id":"c"}`,
		`{"audio":"AAA","type":"chunk","data":"AAA"}`, `null`, `[]`, `{"audio":12}`, "\x00",
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte{1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		frame := make([]int16, 160)
		el := &elevenLabsStream{}
		if err := el.handle(typ, data); err == nil && len(el.buf.raw)%2 != 0 {
			t.Fatalf("elevenlabs: %d bytes of audio", len(el.buf.raw))
		}
		for !el.buf.empty() {
			el.buf.read(frame)
		}
		ca := &cartesiaStream{contextID: "c"}
		if err := ca.handle(typ, data); err == nil && len(ca.buf.raw)%2 != 0 {
			t.Fatalf("cartesia: %d bytes of audio", len(ca.buf.raw))
		}
		for !ca.buf.empty() {
			ca.buf.read(frame)
		}
	})
}
