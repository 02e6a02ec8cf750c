package main

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
)

// rtPhone is a phone on a real SIP line that reports every RTP packet it receives on heard
// (loud or not), so that a test waits for what it hears; say queues audio to send, one
// 20 ms PCMU packet every 20 ms.
type rtPhone struct {
	ua     *sipgo.UserAgent
	dlg    *sipgo.DialogClientSession
	conn   *net.UDPConn
	remote *net.UDPAddr
	say    chan []int16
	heard  chan bool
	done   chan struct{}
	ended  chan struct{}
}

func dialRTPhone(t *testing.T, target string) *rtPhone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-s2s-test"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &rtPhone{ua: ua, conn: conn, say: make(chan []int16, 8), heard: make(chan bool, 1<<16), done: make(chan struct{}), ended: make(chan struct{}, 2)}
	dua := sipgo.DialogUA{Client: client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1"}}}
	var u sip.Uri
	if err := sip.ParseUri(target, &u); err != nil {
		t.Fatal(err)
	}
	offer := "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.dlg, err = dua.Invite(ctx, u, []byte(offer), sip.NewHeader("Content-Type", "application/sdp")); err != nil {
		t.Fatal(err)
	}
	if err := p.dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("call %s: %v", target, err)
	}
	if err := p.dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var ans sdp.SessionDescription
	if err := ans.Unmarshal(p.dlg.InviteResponse.Body()); err != nil {
		t.Fatal(err)
	}
	p.remote = &net.UDPAddr{IP: net.ParseIP(ans.ConnectionInformation.Address.Address), Port: ans.MediaDescriptions[0].MediaName.Port.Value}
	go p.send()
	go p.listen()
	t.Cleanup(p.close)
	return p
}

func (p *rtPhone) send() {
	defer func() { p.ended <- struct{}{} }()
	pz := media.NewPacketizer(0, 8000, 0x5eed)
	var pcm [160]int16
	var payload [160]byte
	var out [200]byte
	var queue []int16
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case more := <-p.say:
			queue = append(queue, more...)
			continue
		case <-tick.C:
		}
		n := copy(pcm[:], queue)
		queue = queue[n:]
		clear(pcm[n:])
		media.EncodePCMU(payload[:], pcm[:])
		m, _ := pz.Packetize(out[:], payload[:])
		_, _ = p.conn.WriteToUDP(out[:m], p.remote)
	}
}

// listen reports each PCMU packet received: loud when it carries the agent's voice.
func (p *rtPhone) listen() {
	defer func() { p.ended <- struct{}{} }()
	var buf [1500]byte
	var pkt rtp.Packet
	var dec [480]int16
	for {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := p.conn.Read(buf[:])
		if err != nil || media.ParseRTP(&pkt, buf[:n]) != nil || pkt.PayloadType != 0 {
			continue
		}
		m := media.DecodePCMU(dec[:], pkt.Payload)
		var e float64
		for _, v := range dec[:m] {
			e += float64(v) * float64(v)
		}
		select {
		case p.heard <- math.Sqrt(e/float64(max(m, 1))) > 300:
		default:
		}
	}
}

// waitLoud waits until n loud packets were heard.
func (p *rtPhone) waitLoud(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for got := 0; got < n; {
		select {
		case loud := <-p.heard:
			if loud {
				got++
			}
		case <-deadline:
			t.Fatalf("%s: heard %d loud packets of %d", what, got, n)
		}
	}
}

// loudUntilQuiet counts loud packets until quiet ones in a row were heard.
func (p *rtPhone) loudUntilQuiet(t *testing.T, quiet int) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	loud, still := 0, 0
	for still < quiet {
		select {
		case l := <-p.heard:
			if l {
				loud, still = loud+1, 0
			} else {
				still++
			}
		case <-deadline:
			t.Fatalf("the agent did not stop speaking: %d loud packets", loud)
		}
	}
	return loud
}

func (p *rtPhone) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	<-p.ended
	<-p.ended
	_ = p.conn.Close()
	_ = p.ua.Close()
}

// TestRealtimeAgentCall calls, over real SIP and RTP, an agent whose model is a
// speech-to-speech model (the Realtime stand-in, configured as a provider by base URL): the
// agent is refused with a 422 naming the field while its provider has no key or its turn
// detection is unknown; its greeting is heard in the model's voice; a question makes the
// model call the agent's webhook tool, whose result goes back to it before it answers; the
// caller's barge-in truncates the model's item at the audio the caller received (within two
// packets); and the call's transcript, report and usage are kept as for any call.
func TestRealtimeAgentCall(t *testing.T) {
	t.Parallel()
	rt := speechtest.NewRealtime(t)
	rt.RequireKey("sk-rt")
	rt.SetSilence(300 * time.Millisecond)
	rt.Enqueue(
		speechtest.RealtimeReply{Text: "Hello, how can I help?", Audio: 800 * time.Millisecond},
		speechtest.RealtimeReply{Call: speechtest.RealtimeCall{Name: "get_order", Arguments: `{}`}},
		speechtest.RealtimeReply{Text: "Your order A-17 has shipped.", Audio: 700 * time.Millisecond},
		speechtest.RealtimeReply{Text: "We deliver by van, by bicycle, by drone and by post, every day of the week.", Audio: 6 * time.Second},
	)
	rt.Hear("Where is my order?", "How do you deliver?", "Thanks, bye.")
	orders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"order":"A-17","status":"shipped"}`))
	}))
	t.Cleanup(orders.Close)

	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voicebox\n    kind: openai\n    base_url: "+rt.URL+"\n    api_key: ${VOICEBOX_KEY}\n    realtime: [voicebox-s2s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"SWITCHBOARD_PROVIDERS_FILE=" + providers, "VOICEBOX_KEY=sk-rt", "OPENAI_API_KEY=", "OPENAI_BASE_URL=",
		"SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS=true"}
	key := createKey(t, env, "--name", "s2s")
	n := startServe(t, env)

	// A Realtime model of a provider without its key, or an unknown turn detection, is refused.
	if status, body := n.call("POST", "/api/v1/agents", key, `{"name":"R","model":"openai/gpt-realtime"}`); status != http.StatusUnprocessableEntity ||
		!strings.Contains(toJSON(body), `"field":"model"`) || !strings.Contains(toJSON(body), "OPENAI_API_KEY") {
		t.Errorf("agent of an unconfigured Realtime model: %d %v", status, body)
	}
	if status, body := n.call("POST", "/api/v1/agents", key, `{"name":"R","model":"voicebox/voicebox-s2s","turn":{"detection":"psychic"}}`); status != http.StatusUnprocessableEntity ||
		!strings.Contains(toJSON(body), `"field":"turn.detection"`) {
		t.Errorf("agent with an unknown turn detection: %d %v", status, body)
	}

	status, tool := n.call("POST", "/api/v1/tools", key, `{"name":"get_order","description":"Looks up the caller's order.",`+
		`"parameters":{"type":"object","properties":{}},"webhook":{"url":"`+orders.URL+`","method":"POST"}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST tool: %d %v", status, tool)
	}
	status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Orders","model":"voicebox/voicebox-s2s","instructions":"You answer questions about orders.",`+
		`"first_message":"Hello, how can I help?","tool_ids":["`+tool["id"].(string)+`"],"voice":{"provider":"voicebox","voice":"marin","speed":1},`+
		`"transcriber":{"provider":"voicebox","model":"whisper-1"},"turn":{"endpointing_ms":600,"interruptions":true,"min_interruption_ms":200,"first_message_interruptible":true}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST agent: %d %v", status, ag)
	}
	if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550101","name":"Orders","agent_id":"`+ag["id"].(string)+`"}`); status != http.StatusCreated {
		t.Fatalf("POST phone number: %d %v", status, pn)
	}
	ws := dialEvents(t, n, key)
	if f := ws.command(map[string]any{"type": "subscribe", "topics": []string{"tenant"}}); f.Type != "ack" {
		t.Fatalf("subscribe: %+v", f)
	}

	p := dialRTPhone(t, "sip:+15550101@"+n.sipAddr())
	p.waitLoud(t, 30, "the greeting")
	p.loudUntilQuiet(t, 10)
	p.say <- readWAV8k(t, "../../testdata/speech/where_is_my_order.wav")
	p.waitLoud(t, 25, "the answer after the tool")
	p.loudUntilQuiet(t, 10)
	if outs := rt.Outputs(); len(outs) != 1 || !strings.Contains(outs[0].Output, "shipped") {
		t.Errorf("tool results given to the model: %+v", outs)
	}

	p.say <- readWAV8k(t, "../../testdata/speech/bill_help.wav")
	p.waitLoud(t, 40, "the long answer")
	p.say <- readWAV8k(t, "../../testdata/speech/speak_to_someone.wav")
	heard := 40 + p.loudUntilQuiet(t, 5)
	ws.waitEvent("call:"+callIDOf(t, ws), "call.barge_in")
	var trunc speechtest.Truncation
	for deadline := time.After(20 * time.Second); trunc.ItemID == ""; {
		select {
		case ev := <-rt.Received():
			if ev.Type == "conversation.item.truncate" {
				var tr struct {
					ItemID     string `json:"item_id"`
					AudioEndMS int    `json:"audio_end_ms"`
				}
				_ = json.Unmarshal(ev.Raw, &tr)
				trunc = speechtest.Truncation{ItemID: tr.ItemID, AudioEndMS: tr.AudioEndMS}
			}
		case <-deadline:
			t.Fatal("the model's item was never truncated")
		}
	}
	if d := trunc.AudioEndMS - heard*20; d < -40 || d > 40 {
		t.Errorf("truncated at %d ms; the caller received %d ms of the answer", trunc.AudioEndMS, heard*20)
	}
	p.waitLoud(t, 10, "the answer after the interruption")
	p.loudUntilQuiet(t, 10)
	hangupCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = p.dlg.Bye(hangupCtx)
	cancel()

	id := callIDOf(t, ws)
	ended := ws.waitEvent("call:"+id, "call.ended")
	report, _ := ended.Event.Data["report"].(map[string]any)
	if report == nil || report["interruptions"].(float64) != 1 || report["tool_calls"].(float64) != 1 || report["turns"].(float64) < 3 ||
		report["latency_p50_ms"] == nil {
		t.Errorf("the call's report: %v", ended.Event.Data["report"])
	}
	if u, _ := report["usage"].(map[string]any); u == nil || u["input_tokens"].(float64) == 0 {
		t.Errorf("the call's usage: %v", report["usage"])
	}
	status, tr := n.call("GET", "/api/v1/calls/"+id+"/transcript", key, "")
	raw, _ := json.Marshal(tr)
	for _, want := range []string{"Hello, how can I help?", "Where is my order?", "has shipped", `"name":"get_order"`, `"interrupted":true`} {
		if status != http.StatusOK || !strings.Contains(string(raw), want) {
			t.Errorf("transcript lacks %q: %d %s", want, status, raw)
		}
	}
	if models := rt.Models(); len(models) == 0 || models[0] != "voicebox-s2s" {
		t.Errorf("sessions opened with models %v", models)
	}
}

// callIDOf is the ID of the first call whose events the socket saw.
func callIDOf(t *testing.T, ws *eventsSocket) string {
	t.Helper()
	for _, f := range ws.events {
		if id, ok := strings.CutPrefix(f.Event.Topic, "call:"); ok {
			return id
		}
	}
	for {
		f := ws.read()
		if f.Type == "event" {
			ws.events = append(ws.events, f)
			if id, ok := strings.CutPrefix(f.Event.Topic, "call:"); ok {
				return id
			}
		}
	}
}
