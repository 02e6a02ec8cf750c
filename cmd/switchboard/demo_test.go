package main

import (
	"bufio"
	"context"
	bin "encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/switchboard-go/switchboard/media"
)

// phone is a caller on a real SIP line: it places a PCMU call with sipgo, sends 20 ms of
// audio every 20 ms (silence, or a clip it is told to say), presses keys as RFC 4733 events,
// and measures the speech it hears back.
type phone struct {
	t      *testing.T
	ua     *sipgo.UserAgent
	dlg    *sipgo.DialogClientSession
	conn   *net.UDPConn
	remote *net.UDPAddr

	mu     sync.Mutex
	say    []int16 // what is left to say
	keys   []rune  // keys to press
	loud   int     // frames heard with speech energy
	frames int
	done   chan struct{}
	wg     sync.WaitGroup
}

func dialPhone(t *testing.T, target string) *phone {
	t.Helper()
	return dialPhoneContact(t, target, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1"}})
}

// dialPhoneContact is dialPhone with the Contact the call gives, where the server sends
// its requests inside the call.
func dialPhoneContact(t *testing.T, target string, contact sip.ContactHeader) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-demo-test"))
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
	p := &phone{t: t, ua: ua, conn: conn, done: make(chan struct{})}
	t.Cleanup(p.close)
	dua := sipgo.DialogUA{Client: client, ContactHDR: contact}
	var u sip.Uri
	if err := sip.ParseUri(target, &u); err != nil {
		t.Fatal(err)
	}
	offer := "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.dlg, err = dua.Invite(ctx, u, []byte(offer), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
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
	p.wg.Add(2)
	go p.send()
	go p.listen()
	return p
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (p *phone) send() {
	defer p.wg.Done()
	pz := media.NewPacketizer(0, 8000, 0x5eed)
	var (
		pcm     [160]int16
		payload [160]byte
		out     [200]byte
		events  []media.DTMFPacket
	)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		var key rune
		if len(p.keys) > 0 {
			key, p.keys = p.keys[0], p.keys[1:]
		}
		pcm = [160]int16{}
		n := copy(pcm[:], p.say)
		p.say = p.say[n:]
		p.mu.Unlock()
		if key != 0 { // a key press replaces 200 ms of audio
			events, _ = media.AppendDTMFPackets(events[:0], key, 200*time.Millisecond, 8000, 10)
			ts := pz.Timestamp()
			start := time.Now()
			for _, e := range events {
				time.Sleep(time.Until(start.Add(e.At)))
				m, _ := pz.PacketizeEvent(out[:], 101, e.Marker, ts, e.Payload[:])
				_, _ = p.conn.WriteToUDP(out[:m], p.remote)
			}
			pz.Skip(int(time.Since(start)/media.FrameDuration) + 1)
			continue
		}
		media.EncodePCMU(payload[:], pcm[:])
		m, _ := pz.Packetize(out[:], payload[:])
		_, _ = p.conn.WriteToUDP(out[:m], p.remote)
	}
}

func (p *phone) listen() {
	defer p.wg.Done()
	var (
		buf [1500]byte
		pkt rtp.Packet
		dec [480]int16
	)
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := p.conn.Read(buf[:])
		select {
		case <-p.done:
			return
		default:
		}
		if err != nil || media.ParseRTP(&pkt, buf[:n]) != nil || pkt.PayloadType != 0 {
			continue
		}
		m := media.DecodePCMU(dec[:], pkt.Payload)
		var e float64
		for _, v := range dec[:m] {
			e += float64(v) * float64(v)
		}
		p.mu.Lock()
		p.frames++
		if math.Sqrt(e/float64(max(m, 1))) > 300 {
			p.loud++
		}
		p.mu.Unlock()
	}
}

// heard is how many frames with speech energy came back so far.
func (p *phone) heard() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loud
}

// waitSpeech waits until the agent has spoken at least frames loud frames more.
func (p *phone) waitSpeech(frames int, d time.Duration, what string) {
	p.t.Helper()
	start := p.heard()
	for deadline := time.Now().Add(d); p.heard() < start+frames; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: heard %d loud frames in %v, want %d", what, p.heard()-start, d, frames)
		}
	}
}

// waitQuiet waits until the agent has not spoken for gap.
func (p *phone) waitQuiet(gap, d time.Duration) {
	p.t.Helper()
	last, at := p.heard(), time.Now()
	for deadline := time.Now().Add(d); time.Since(at) < gap; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("the agent did not pause for %v within %v", gap, d)
		}
		if h := p.heard(); h != last {
			last, at = h, time.Now()
		}
	}
}

func (p *phone) press(keys string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, []rune(keys)...)
}

func (p *phone) speak(samples []int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.say = append(p.say, samples...)
}

// waitSaid waits until everything speak queued has been sent.
func (p *phone) waitSaid(d time.Duration) {
	p.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		p.mu.Lock()
		left := len(p.say)
		p.mu.Unlock()
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%d samples not sent within %v", left, d)
		}
	}
}

func (p *phone) hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.dlg.Bye(ctx); err != nil {
		p.t.Logf("bye: %v", err)
	}
}

func (p *phone) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.wg.Wait()
	_ = p.conn.Close()
	_ = p.ua.Close()
}

// readWAV8k reads a test clip of caller speech (8 kHz mono).
func readWAV8k(t *testing.T, path string) []int16 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil || w.Rate != 8000 || w.Channels != 1 {
		t.Fatalf("%s: %v (%d Hz, %d channels), want 8 kHz mono", path, err, w.Rate, w.Channels)
	}
	return w.Samples
}

// TestDemoAgent calls the demo agent a first start creates, over real SIP and RTP: the
// greeting and the menu are heard, key 1 gets the opening hours, key 2 takes a voicemail
// that is stored with the call, and the transcript and report are kept.
func TestDemoAgent(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	env := []string{"SWITCHBOARD_DATA_DIR=" + dataDir, "SWITCHBOARD_DEMO=true", "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "demo")
	n := startServe(t, env)
	n.waitLogged("demo agent created: call sip:demo@ this node", 10*time.Second)
	target := "sip:demo@" + n.sipAddr()
	// What the agent said, turn by turn, as a dashboard sees it: the phone acts on what
	// was said, not on how long it took to say it (a busy machine stretches both).
	said := watchAgentSpeech(t, n, key)

	// Key 1: the opening hours.
	p := dialPhone(t, target)
	p.waitSpeech(50, 15*time.Second, "greeting and menu") // a second of speech at least
	p.press("1")
	said.wait("Monday to Friday", 30*time.Second)
	p.hangup()
	p.close()

	// Key 2: a voicemail.
	p = dialPhone(t, target)
	p.waitSpeech(50, 15*time.Second, "greeting")
	p.press("2")
	said.wait("when you are done", 30*time.Second)    // the prompt was said whole
	p.waitQuiet(700*time.Millisecond, 20*time.Second) // and the tone after it is over
	p.speak(readWAV8k(t, "../../testdata/speech/where_is_my_order.wav"))
	p.waitSaid(20 * time.Second) // the message is on the line, then the key ends it
	p.press("#")
	said.wait("Thank you for your message", 30*time.Second) // said once the message is saved
	p.hangup()
	p.close()

	status, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
	ids := itemIDs(t, list)
	if status != http.StatusOK || len(ids) != 2 {
		t.Fatalf("calls: %d %v", status, list)
	}
	voicemailCall, hoursCall := ids[0], ids[1] // newest first
	for _, id := range ids {
		c := n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
		r, _ := c["report"].(map[string]any)
		if c["agent_id"] == nil || r == nil || r["ended_reason"] == nil {
			t.Errorf("call %s: %v, want the demo agent's with a report", id, c)
		}
	}
	status, tr := n.call("GET", "/api/v1/calls/"+hoursCall+"/transcript", key, "")
	raw := strings.ToLower(toJSON(tr))
	if status != http.StatusOK || !strings.Contains(raw, "monday to friday") || !strings.Contains(raw, `"dtmf":"1"`) {
		t.Errorf("transcript of the hours call: %d %s", status, raw)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+n.addr+"/api/v1/calls/"+voicemailCall+"/voicemail", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wav, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The clip is about 2 s; a voicemail of at least a second of 8 kHz PCM16 is 16,000 bytes.
	if resp.StatusCode != http.StatusOK || len(wav) < 16044 || string(wav[:4]) != "RIFF" || bin.LittleEndian.Uint16(wav[22:24]) != 1 {
		_, vt := n.call("GET", "/api/v1/calls/"+voicemailCall+"/transcript", key, "")
		files, _ := filepath.Glob(filepath.Join(dataDir, "voicemails", "*"))
		t.Logf("voicemails: %v", files)
		t.Errorf("voicemail: %d, %d bytes, want a mono WAV of the message; transcript %s", resp.StatusCode, len(wav), toJSON(vt))
	}
}

// agentSpeech collects the texts of the agents' turns a tenant's SSE stream carries
// (call.agent_speech, sent when a turn has been said or cut short).
type agentSpeech struct {
	t     *testing.T
	mu    sync.Mutex
	said  []string
	added chan struct{} // a turn was added since wait last looked
}

func watchAgentSpeech(t *testing.T, n *node, key string) *agentSpeech {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/api/v1/events?topics=tenant", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /api/v1/events: %v %v", err, resp)
	}
	a := &agentSpeech{t: t, added: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct {
				Type string `json:"type"`
				Data struct {
					Text string `json:"text"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(data), &ev) == nil && ev.Type == "call.agent_speech" {
				a.mu.Lock()
				a.said = append(a.said, ev.Data.Text)
				a.mu.Unlock()
				select {
				case a.added <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
		client.CloseIdleConnections()
	})
	return a
}

// wait waits for a turn that said text, and forgets the turns up to it.
func (a *agentSpeech) wait(text string, d time.Duration) {
	a.t.Helper()
	deadline := time.After(d)
	for {
		a.mu.Lock()
		for i, s := range a.said {
			if strings.Contains(s, text) {
				a.said = a.said[i+1:]
				a.mu.Unlock()
				return
			}
		}
		seen := append([]string(nil), a.said...)
		a.mu.Unlock()
		select {
		case <-a.added:
		case <-deadline:
			a.t.Fatalf("the agent did not say %q within %v; it said %q", text, d, seen)
		}
	}
}
