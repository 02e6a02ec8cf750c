package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
)

// TestRecordingEveryTransport: an agent that asks for its calls to be recorded has them
// recorded whatever carries them, on a node that does not record every call. A browser
// over WebRTC (a real pion peer) and a CPaaS on a media-stream socket (a real WebSocket
// client) each play a 440 Hz tone while the agent greets them: the stereo recording served
// by the calls API has the tone on the left and the agent's speech on the right. An agent
// that asks for mono gets one channel with both, over WebRTC and over SIP (the agent calls
// the node's own echo, whose leg is not recorded). The records link their recordings with
// the node's retention; a bad recording setting is refused naming its field.
func TestRecordingEveryTransport(t *testing.T) {
	t.Parallel()
	model := llmtest.NewOpenAI(t)
	voice := speechtest.NewOpenAI(t)
	// The caller's tone is no words: the agent hears nothing to answer.
	voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript { return speechtest.Transcript{} })
	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_RECORDING_RETENTION=720h"}
	key := createKey(t, env, "--name", "rec")
	n := startServe(t, env)

	agent := func(recording string) string {
		t.Helper()
		status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Recorded","model":"openai/gpt-test","instructions":"You greet callers.",`+
			`"first_message":"Hello, thank you for calling Switchboard. How can I help you today?",`+
			`"transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"espeak","voice":"en-us","speed":1},`+
			`"turn":{"first_message_interruptible":false},"recording":`+recording+`}`)
		if status != http.StatusCreated {
			t.Fatalf("POST agent: %d %v", status, ag)
		}
		return ag["id"].(string)
	}
	stereo, mono := agent(`{"enabled":true,"channels":"stereo"}`), agent(`{"enabled":true,"channels":"mono"}`)

	for _, tc := range []struct{ body, field string }{
		{`{"name":"x","recording":{"enabled":true,"channels":"quad"}}`, "recording.channels"},
		{`{"name":"x","recording":{"enabled":true,"retention_days":-1}}`, "recording.retention_days"},
	} {
		if status, body := n.call("POST", "/api/v1/agents", key, tc.body); status != http.StatusUnprocessableEntity || !strings.Contains(toJSON(body), tc.field) {
			t.Errorf("POST agent %s: %d %v, want 422 naming %s", tc.body, status, body, tc.field)
		}
	}

	// recording waits for the call's end and reads its recording through the API.
	recording := func(t *testing.T, id string) *media.WAV {
		t.Helper()
		rec := n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
		if rec["recording_url"] != "/api/v1/calls/"+id+"/recording" || rec["recording_expires_at"] == nil {
			t.Errorf("record: recording_url %v, recording_expires_at %v", rec["recording_url"], rec["recording_expires_at"])
		}
		status, h, body := n.raw("GET", "/api/v1/calls/"+id+"/recording", key, "", nil)
		if status != http.StatusOK || h.Get("Content-Type") != "audio/wav" {
			t.Fatalf("GET recording: %d %s %.200s", status, h.Get("Content-Type"), body)
		}
		w, err := media.ReadWAV(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// speech counts the frames of s that carry more than a murmur.
	speech := func(s []int16, rate int) int {
		spf, k := media.SamplesPerFrame(rate), 0
		for i := 0; i+spf <= len(s); i += spf {
			if rms(s[i:i+spf]) > 300 {
				k++
			}
		}
		return k
	}
	// toneOnly says that s is the 440 Hz tone, with nothing much at other frequencies of
	// speech.
	isTone := func(s []int16, rate int) bool {
		p := goertzel(s, 440, rate)
		return p > 50*goertzel(s, 700, rate) && p > 50*goertzel(s, 1200, rate) && rms(s) > 1000
	}

	t.Run("WebRTC stereo", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"agent_id":"`+stereo+`"}`)
		b.connect()
		if err := b.SendTone(440); err != nil {
			t.Fatal(err)
		}
		b.waitSpeech(50, 20*time.Second, "the agent's greeting")
		if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, key, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		w := recording(t, b.id)
		if w.Channels != 2 || w.Rate != media.Rate16k {
			t.Fatalf("recording: %d channels at %d Hz, want stereo at 16 kHz", w.Channels, w.Rate)
		}
		left, right := w.Channel(0), w.Channel(1)
		// The tone reaches the node after its first packets; judge the last second.
		if tail := left[max(0, len(left)-media.Rate16k):]; !isTone(tail, media.Rate16k) {
			t.Errorf("left channel: 440 Hz %.3g, 700 Hz %.3g, level %.0f; want the caller's tone",
				goertzel(tail, 440, media.Rate16k), goertzel(tail, 700, media.Rate16k), rms(tail))
		}
		if k := speech(right, media.Rate16k); k < 50 || goertzel(right, 440, media.Rate16k) > goertzel(left, 440, media.Rate16k)/20 {
			t.Errorf("right channel: %d frames of speech, 440 Hz %.3g against the left's %.3g; want the agent alone",
				k, goertzel(right, 440, media.Rate16k), goertzel(left, 440, media.Rate16k))
		}
	})

	t.Run("WebRTC mono", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"agent_id":"`+mono+`"}`)
		b.connect()
		b.waitSpeech(50, 20*time.Second, "the agent's greeting")
		// The greeting over (the node sends nothing while its agent is quiet), the caller
		// plays the tone for a while.
		b.waitQuiet(300*time.Millisecond, 20*time.Second, "the greeting")
		_, _, sent := b.Packets()
		if err := b.SendTone(440); err != nil {
			t.Fatal(err)
		}
		// 1.5 s of tone sent, and so (on loopback) heard: the recording's end.
		b.waitPackets(20*time.Second, "1.5 s of tone sent", func(_, tx int64) bool { return tx >= sent+75 })
		if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, key, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		w := recording(t, b.id)
		if w.Channels != 1 || w.Rate != media.Rate16k {
			t.Fatalf("recording: %d channels at %d Hz, want mono at 16 kHz", w.Channels, w.Rate)
		}
		s := w.Samples
		tail := s[max(0, len(s)-media.Rate16k/2):]
		if !isTone(tail, media.Rate16k) {
			t.Errorf("the recording's end: 440 Hz %.3g, level %.0f; want the caller's tone", goertzel(tail, 440, media.Rate16k), rms(tail))
		}
		if k := speech(s[:max(0, len(s)-2*media.Rate16k)], media.Rate16k); k < 50 {
			t.Errorf("%d frames of the agent's greeting in the recording, want 50 or more", k)
		}
	})

	t.Run("SIP mono", func(t *testing.T) {
		// The agent calls the node's own echo over real SIP and RTP: its leg is recorded, as
		// it asks, in mono; the echo's leg, whose destination asks nothing, is not.
		status, c := n.call("POST", "/api/v1/calls", key, `{"to":"sip:echo@`+n.sipAddr()+`","agent_id":"`+mono+`"}`)
		id, _ := c["id"].(string)
		if status != http.StatusCreated || id == "" {
			t.Fatalf("POST /api/v1/calls: %d %v", status, c)
		}
		ws := dialEvents(t, n, key)
		if f := ws.command(map[string]any{"type": "subscribe", "topics": []string{"call:" + id}}); f.Type != "ack" {
			t.Fatalf("subscribe: %+v", f)
		}
		ws.waitEvent("call:"+id, "call.agent_speech") // the greeting was spoken
		if status, body := n.call("POST", "/api/v1/calls/"+id+"/hangup", key, ""); status != http.StatusOK {
			t.Fatalf("hangup: %d %v", status, body)
		}
		w := recording(t, id)
		if w.Channels != 1 || w.Rate != media.Rate8k {
			t.Fatalf("recording: %d channels at %d Hz, want mono at 8 kHz", w.Channels, w.Rate)
		}
		if k := speech(w.Samples, media.Rate8k); k < 50 {
			t.Errorf("%d frames of the agent's greeting in the recording, want 50 or more", k)
		}
		// The only inbound call so far is the echo's leg.
		_, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
		legs := itemIDs(t, list)
		if len(legs) != 1 {
			t.Fatalf("inbound calls %v, want the echo's leg", legs)
		}
		for _, leg := range legs {
			rec := n.waitCall(key, leg, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
			if status, _, _ := n.raw("GET", "/api/v1/calls/"+leg+"/recording", key, "", nil); status != http.StatusNotFound || rec["recording_url"] != "" {
				t.Errorf("the echo's leg %s: GET recording %d, recording_url %v; want none", leg, status, rec["recording_url"])
			}
		}
	})

	t.Run("media stream stereo", func(t *testing.T) {
		tw := dialTwilio(t, n, key, stereo)
		tw.waitFrames(1, 10*time.Second)
		tw.speak(tone(440, 30*time.Second))
		tw.waitLoud(50, 20*time.Second, "the agent's greeting")
		tw.stop()
		status, list := n.call("GET", "/api/v1/calls?direction=inbound&agent_id="+stereo, key, "")
		ids := itemIDs(t, list)
		if status != http.StatusOK || len(ids) != 1 {
			t.Fatalf("calls: %d %v", status, list)
		}
		w := recording(t, ids[0])
		if w.Channels != 2 || w.Rate != media.Rate8k {
			t.Fatalf("recording: %d channels at %d Hz, want stereo at 8 kHz", w.Channels, w.Rate)
		}
		left, right := w.Channel(0), w.Channel(1)
		if !isTone(left, media.Rate8k) {
			t.Errorf("left channel: 440 Hz %.3g, 700 Hz %.3g, level %.0f; want the caller's tone",
				goertzel(left, 440, media.Rate8k), goertzel(left, 700, media.Rate8k), rms(left))
		}
		if k := speech(right, media.Rate8k); k < 50 || goertzel(right, 440, media.Rate8k) > goertzel(left, 440, media.Rate8k)/20 {
			t.Errorf("right channel: %d frames of speech, 440 Hz %.3g against the left's %.3g; want the agent alone",
				k, goertzel(right, 440, media.Rate8k), goertzel(left, 440, media.Rate8k))
		}
	})
}
