package voice

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/s2s"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// rtCaller is the far end of a speech-to-speech call: it sends a frame every 20 ms (what it
// was told to say, else silence) and reports every frame it hears on heard, loud or not,
// so that a test waits for what it hears instead of looking from time to time.
type rtCaller struct {
	sess  *media.RTPSession
	say   chan []int16
	heard chan bool
	done  chan struct{}
	wg    chan struct{}
}

func newRTCaller(t *testing.T, sess *media.RTPSession) *rtCaller {
	c := &rtCaller{sess: sess, say: make(chan []int16, 8), heard: make(chan bool, 1<<16), done: make(chan struct{}), wg: make(chan struct{}, 2)}
	go c.write()
	go c.read()
	t.Cleanup(func() {
		close(c.done)
		_ = sess.Close()
		<-c.wg
		<-c.wg
	})
	return c
}

func (c *rtCaller) write() {
	defer func() { c.wg <- struct{}{} }()
	f := media.Frame{Rate: c.sess.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(c.sess.SampleRate()))}
	var queue []int16
	for {
		select {
		case <-c.done:
			return
		case pcm := <-c.say:
			queue = append(queue, pcm...)
		default:
		}
		n := copy(f.Samples, queue)
		queue = queue[n:]
		clear(f.Samples[n:])
		if err := c.sess.WriteFrame(&f); err != nil { // paced: one frame per 20 ms
			return
		}
	}
}

func (c *rtCaller) read() {
	defer func() { c.wg <- struct{}{} }()
	f := media.Frame{Samples: make([]int16, media.SamplesPerFrame(c.sess.SampleRate()))}
	prev := make([]int16, len(f.Samples))
	for {
		if err := c.sess.ReadFrame(&f); err != nil {
			return
		}
		// A frame the line's loss concealment made (the last one again, fading) was not
		// sent by the agent: the caller's count is of the agent's audio.
		loud := levelDB(f.Samples) > speechDB && !repeated(prev, f.Samples)
		copy(prev, f.Samples)
		select {
		case c.heard <- loud:
		default:
		}
	}
}

// repeated reports whether cur is prev scaled (G.711 concealment repeats a frame, fading).
func repeated(prev, cur []int16) bool {
	k, peak := 0.0, 0
	for i, v := range prev {
		if a := int(max(v, -v)); a > peak {
			peak, k = a, float64(cur[i])/float64(v)
		}
	}
	if peak < 100 || k <= 0 {
		return false
	}
	for i, v := range prev {
		if d := float64(cur[i]) - k*float64(v); d > 0.03*float64(peak) || d < -0.03*float64(peak) {
			return false
		}
	}
	return true
}

// waitLoud reads heard frames until the agent has been loud for n frames in all.
func (c *rtCaller) waitLoud(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for got, all := 0, 0; got < n; {
		select {
		case loud := <-c.heard:
			all++
			if loud {
				got++
			}
		case <-deadline:
			t.Fatalf("%s: heard %d loud frames of %d (%d frames in all)", what, got, n, all)
		}
	}
}

// loudUntilQuiet counts the loud frames heard until quiet frames in a row were heard.
func (c *rtCaller) loudUntilQuiet(t *testing.T, quiet int) int {
	t.Helper()
	deadline := time.After(20 * time.Second)
	loud, still := 0, 0
	for still < quiet {
		select {
		case l := <-c.heard:
			if l {
				loud, still = loud+1, 0
			} else {
				still++
			}
		case <-deadline:
			t.Fatalf("the agent did not stop speaking: %d loud frames", loud)
		}
	}
	return loud
}

// waitEvent waits until the stand-in received a client event of type typ.
func waitEvent(t *testing.T, rt *speechtest.Realtime, typ string) speechtest.ClientEvent {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-rt.Received():
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("the model never received %s", typ)
		}
	}
}

// TestRealtimeCall answers a call with a speech-to-speech model (the Realtime stand-in) over
// a real RTP line at 8 kHz: the model is configured for µ-law with its own VAD and the
// agent's tools; its greeting is heard; the caller's question makes it call a webhook tool
// whose result goes back as function_call_output before it answers aloud; the caller
// barging in on a long answer cancels it and truncates the model's item at the audio the
// caller heard (within two frames); the transcript, report and events are those of any call.
func TestRealtimeCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rt := speechtest.NewRealtime(t)
	rt.RequireKey("sk-rt")
	rt.SetSilence(300 * time.Millisecond)
	rt.Enqueue(
		speechtest.RealtimeReply{Text: "Hello, how can I help?", Audio: 800 * time.Millisecond},
		speechtest.RealtimeReply{Call: speechtest.RealtimeCall{Name: "get_order", Arguments: `{"order":"A-17"}`}},
		speechtest.RealtimeReply{Text: "Your order has shipped.", Audio: 600 * time.Millisecond},
		speechtest.RealtimeReply{Text: "Let me tell you all about our many delivery options in great detail.", Audio: 6 * time.Second},
		speechtest.RealtimeReply{Text: "Okay.", Audio: 400 * time.Millisecond},
	)
	rt.Hear("Where is my order?", "What are the options?", "Stop, thank you.")
	orders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"order":"A-17","status":"shipped"}`))
	}))
	defer orders.Close()

	agentSide, callerSide := sessionPair(t, 8000)
	line := &testLine{sess: agentSide}
	caller := newRTCaller(t, callerSide)
	ag := store.NewAgent()
	ag.Instructions = "You answer questions about orders."
	tool := &store.Tool{Name: "get_order", Description: "Looks up an order.", Parameters: map[string]any{"type": "object"},
		Webhook: store.Webhook{URL: orders.URL, Method: "POST"}}
	brain := NewRealtimeBrain(RealtimeConfig{
		Session:      s2s.Config{BaseURL: rt.URL, APIKey: "sk-rt", Model: "gpt-realtime"},
		Instructions: ag.Instructions, FirstMessage: "Hello, how can I help?", Voice: "marin",
		Tools: agent.NewToolbox(agent.LLMBrainConfig{Agent: ag, Tools: []*store.Tool{tool}, Webhooks: agent.NewWebhooks(true)}),
	})
	done := make(chan Result, 1)
	go func() {
		done <- Run(ctx, line, brain, Config{Turn: store.TurnSettings{EndpointingMS: 600, Interruptions: true, MinInterruptionMS: 200}})
	}()

	// The session: µ-law both ways for a telephone call, the model's VAD, the tools.
	upd := waitEvent(t, rt, "session.update")
	var sess struct {
		Session struct {
			Type  string `json:"type"`
			Audio struct {
				Input struct {
					Format        map[string]any `json:"format"`
					TurnDetection map[string]any `json:"turn_detection"`
				} `json:"input"`
				Output struct {
					Format map[string]any `json:"format"`
					Voice  string         `json:"voice"`
				} `json:"output"`
			} `json:"audio"`
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"session"`
	}
	if err := json.Unmarshal(upd.Raw, &sess); err != nil {
		t.Fatal(err)
	}
	in, out := sess.Session.Audio.Input, sess.Session.Audio.Output
	if in.Format["type"] != "audio/pcmu" || out.Format["type"] != "audio/pcmu" || in.TurnDetection["type"] != "server_vad" || out.Voice != "marin" {
		t.Errorf("session.update = %s; want µ-law both ways, server_vad, voice marin", upd.Raw)
	}
	var names []string
	for _, tl := range sess.Session.Tools {
		names = append(names, tl.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "get_order") || !strings.Contains(strings.Join(names, ","), "end_call") {
		t.Errorf("tools offered: %v; want the agent's webhook and the built-ins", names)
	}

	// The greeting, then a question answered with a tool's help.
	caller.waitLoud(t, 30, "greeting")
	caller.loudUntilQuiet(t, 10)
	caller.say <- clip(t, "where_is_my_order")
	waitEvent(t, rt, "conversation.item.create")
	if outs := rt.Outputs(); len(outs) != 1 || !strings.Contains(outs[0].Output, "shipped") || outs[0].CallID == "" {
		t.Fatalf("tool results given to the model: %+v", outs)
	}
	caller.waitLoud(t, 20, "the answer after the tool")
	caller.loudUntilQuiet(t, 10)

	// A long answer, interrupted: what the caller heard is where the item is truncated.
	caller.say <- clip(t, "bill_help")
	caller.waitLoud(t, 40, "the long answer")
	caller.say <- clip(t, "speak_to_someone")
	heard := 40 + caller.loudUntilQuiet(t, 5)
	tr := waitEvent(t, rt, "conversation.item.truncate")
	var trunc struct {
		ItemID     string `json:"item_id"`
		AudioEndMS int    `json:"audio_end_ms"`
	}
	if err := json.Unmarshal(tr.Raw, &trunc); err != nil {
		t.Fatal(err)
	}
	if d := trunc.AudioEndMS - heard*20; d < -40 || d > 40 {
		t.Errorf("truncated at %d ms; the caller heard %d ms of the answer", trunc.AudioEndMS, heard*20)
	}
	if trunc.AudioEndMS >= 6000 || trunc.ItemID == "" {
		t.Errorf("truncation %+v: want the long answer's item, cut short", trunc)
	}
	caller.waitLoud(t, 10, "the answer after the interruption")
	caller.loudUntilQuiet(t, 10)
	cancel()
	var res Result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end")
	}

	var user, assistant []string
	var measured int
	for _, turn := range res.Transcript {
		switch turn.Role {
		case "user":
			user = append(user, turn.Text)
		case "assistant":
			assistant = append(assistant, turn.Text)
			if turn.Metrics != nil && turn.Metrics.VoiceToVoiceMS > 0 {
				measured++
			}
		}
	}
	if len(user) < 3 || user[0] != "Where is my order?" {
		t.Errorf("the caller's turns: %q", user)
	}
	if len(assistant) < 4 || assistant[0] != "Hello, how can I help?" || assistant[1] != "Your order has shipped." {
		t.Errorf("the agent's turns: %q", assistant)
	} else if long := assistant[2]; long == "" || len(long) >= len("Let me tell you all about our many delivery options in great detail.") {
		t.Errorf("the interrupted answer is kept as %q: want the words heard", long)
	}
	if measured < 2 {
		t.Errorf("%d answers have their latency measured, want the caller's turns'", measured)
	}
	r := res.Report
	if r.Interruptions != 1 || r.ToolCalls != 1 || r.Turns < 3 || r.Usage.InputTokens == 0 || r.LatencyP50MS == nil {
		t.Errorf("report: %+v", r)
	}
	if rt.Cancels() == 0 && len(rt.Truncations()) != 1 {
		t.Errorf("cancels %d, truncations %+v", rt.Cancels(), rt.Truncations())
	}
	if n := len(line.eventsOf(EventTranscript)); n < 3 {
		t.Errorf("%d call.transcript events", n)
	}
	if n := len(line.eventsOf(EventToolCall)); n != 1 {
		t.Errorf("%d call.tool_call events", n)
	}
}

func clip(t *testing.T, name string) []int16 {
	t.Helper()
	pcm, err := speechtest.LoadWAV(name, 8000)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// TestRealtimeOwnTurnsWideband runs a 16 kHz call with Switchboard's own turn detection: the
// session takes 24 kHz PCM with the model's VAD off, and the caller's turn is committed and
// answered by our endpointing.
func TestRealtimeOwnTurnsWideband(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt := speechtest.NewRealtime(t)
	rt.Enqueue(speechtest.RealtimeReply{Text: "Your order has shipped.", Audio: 600 * time.Millisecond})
	agentSide, callerSide := sessionPair(t, 16000)
	caller := newRTCaller(t, callerSide)
	brain := NewRealtimeBrain(RealtimeConfig{Session: s2s.Config{BaseURL: rt.URL, Model: "gpt-realtime"}, TurnDetection: TurnDetectionSwitchboard})
	done := make(chan Result, 1)
	go func() {
		done <- Run(ctx, &testLine{sess: agentSide}, brain, Config{Turn: store.TurnSettings{EndpointingMS: 500, Interruptions: true, MinInterruptionMS: 200}})
	}()
	upd := waitEvent(t, rt, "session.update")
	if s := string(upd.Raw); !strings.Contains(s, `"format":{"rate":24000,"type":"audio/pcm"}`) || !strings.Contains(s, `"turn_detection":null`) {
		t.Errorf("session.update = %s; want 24 kHz PCM without the model's VAD", s)
	}
	pcm, err := speechtest.LoadWAV("where_is_my_order", 16000)
	if err != nil {
		t.Fatal(err)
	}
	caller.say <- pcm
	waitEvent(t, rt, "input_audio_buffer.commit")
	waitEvent(t, rt, "response.create")
	caller.waitLoud(t, 20, "the answer")
	caller.loudUntilQuiet(t, 10)
	cancel()
	res := <-done
	if res.Report.Turns != 1 || res.Report.LatencyP50MS == nil {
		t.Errorf("report: %+v", res.Report)
	}
}

// TestRealtimeRefused ends a call whose model refuses the session (a wrong key) with
// agent-error, and says why in agent.error.
func TestRealtimeRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt := speechtest.NewRealtime(t)
	rt.RequireKey("sk-right")
	agentSide, callerSide := sessionPair(t, 8000)
	newRTCaller(t, callerSide)
	line := &testLine{sess: agentSide}
	brain := NewRealtimeBrain(RealtimeConfig{Session: s2s.Config{BaseURL: rt.URL, APIKey: "sk-wrong", Model: "gpt-realtime"}})
	res := Run(ctx, line, brain, Config{})
	if res.Reason != "agent-error" {
		t.Errorf("ended %q, want agent-error", res.Reason)
	}
	errs := line.eventsOf(EventError)
	if len(errs) == 0 || !strings.Contains(errs[0].data.(ErrorEvent).Error, "401") {
		t.Errorf("agent.error events: %+v", errs)
	}
}

// TestRealtimeIdle hangs up on a caller who says nothing for the agent's idle limit.
func TestRealtimeIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt := speechtest.NewRealtime(t)
	agentSide, callerSide := sessionPair(t, 8000)
	newRTCaller(t, callerSide)
	brain := NewRealtimeBrain(RealtimeConfig{Session: s2s.Config{BaseURL: rt.URL, Model: "gpt-realtime"}, FirstMessage: "Hello."})
	began := time.Now()
	res := Run(ctx, &testLine{sess: agentSide}, brain, Config{Limits: store.CallLimits{IdleTimeoutS: 1}})
	if res.Reason != "idle-timeout" {
		t.Errorf("ended %q after %v, want idle-timeout", res.Reason, time.Since(began))
	}
	if len(res.Transcript) == 0 || res.Transcript[0].Text != "Okay." {
		t.Errorf("transcript %+v: want the greeting, then nothing", res.Transcript)
	}
}

// TestRealtimeSessionBreaks ends the call with agent-error, saying why, when the model's
// socket drops in the middle of it.
func TestRealtimeSessionBreaks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt := speechtest.NewRealtime(t)
	rt.Enqueue(speechtest.RealtimeReply{Text: "Hello there.", Audio: 400 * time.Millisecond})
	agentSide, callerSide := sessionPair(t, 8000)
	caller := newRTCaller(t, callerSide)
	line := &testLine{sess: agentSide}
	brain := NewRealtimeBrain(RealtimeConfig{Session: s2s.Config{BaseURL: rt.URL, Model: "gpt-realtime"}, FirstMessage: "Hello there."})
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, line, brain, Config{}) }()
	caller.waitLoud(t, 10, "the greeting")
	caller.loudUntilQuiet(t, 5)
	rt.Close()
	var res Result
	select {
	case res = <-done:
	case <-ctx.Done():
		t.Fatal("the call did not end when its model's socket dropped")
	}
	if res.Reason != "agent-error" || len(line.eventsOf(EventError)) == 0 {
		t.Errorf("ended %q with %d agent.error events, want agent-error and why", res.Reason, len(line.eventsOf(EventError)))
	}
}

// TestRealtimeKeys: keys the caller presses on a speech-to-speech call reach the model as a
// message of the caller's (the model hears no tones): "1 2" ended by '#' at once, a lone
// "3" after the pause; keys pressed over an answer cut it off (cancelled and truncated, as
// when the caller speaks over it), and the transcript has both as the caller's turns.
func TestRealtimeKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt := speechtest.NewRealtime(t)
	rt.Enqueue(
		speechtest.RealtimeReply{Text: "Press one for sales.", Audio: 600 * time.Millisecond},
		speechtest.RealtimeReply{Text: "You chose sales, and here is everything about it.", Audio: 8 * time.Second},
		speechtest.RealtimeReply{Text: "Okay, support then.", Audio: 400 * time.Millisecond},
	)
	agentSide, callerSide := sessionPair(t, 8000)
	caller := newRTCaller(t, callerSide)
	brain := NewRealtimeBrain(RealtimeConfig{Session: s2s.Config{BaseURL: rt.URL, Model: "gpt-realtime"}, FirstMessage: "Press one for sales."})
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, &testLine{sess: agentSide}, brain, Config{}) }()

	caller.waitLoud(t, 20, "greeting")
	caller.loudUntilQuiet(t, 10)
	typed := func(want string) {
		t.Helper()
		ev := waitEvent(t, rt, "conversation.item.create")
		var item struct {
			Item struct {
				Type    string `json:"type"`
				Role    string `json:"role"`
				Content []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"content"`
			} `json:"item"`
		}
		if err := json.Unmarshal(ev.Raw, &item); err != nil {
			t.Fatal(err)
		}
		it := item.Item
		if it.Type != "message" || it.Role != "user" || len(it.Content) != 1 || it.Content[0].Type != "input_text" ||
			!strings.HasSuffix(it.Content[0].Text, ": "+want) {
			t.Fatalf("the keys reached the model as %s, want a user message ending %q", ev.Raw, want)
		}
		waitEvent(t, rt, "response.create")
	}
	for _, d := range "12#" {
		if err := callerSide.SendDTMF(d, 60*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	typed("1 2")
	caller.waitLoud(t, 20, "the answer to the keys")
	if err := callerSide.SendDTMF('3', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, rt, "response.cancel")
	typed("3")
	caller.waitLoud(t, 10, "the answer to the second key")
	caller.loudUntilQuiet(t, 10)
	cancel()
	res := <-done

	var keys []string
	interrupted := false
	for _, turn := range res.Transcript {
		if turn.DTMF != "" {
			keys = append(keys, turn.DTMF)
		}
		interrupted = interrupted || (turn.Role == "assistant" && turn.Interrupted)
	}
	if !slices.Equal(keys, []string{"12", "3"}) || !interrupted {
		t.Errorf("transcript %+v: want the caller's keys 12 and 3, and the long answer interrupted", res.Transcript)
	}
	if tr := rt.Truncations(); len(tr) != 1 {
		t.Errorf("truncations %+v, want the long answer's", tr)
	}
	if n := rt.Cancels(); n != 1 {
		t.Errorf("%d responses cancelled, want 1", n)
	}
}
