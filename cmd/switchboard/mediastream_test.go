package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
)

// twilio is a CPaaS on a media-stream socket, speaking Twilio's Media Streams protocol: it
// sends connected and start, then 20 ms of μ-law every 20 ms (silence, or what it is told
// to say), presses keys as dtmf events, plays what it receives on a playout clock and
// echoes each mark once the audio before it has played, and obeys clear.
type twilio struct {
	t    *testing.T
	conn *websocket.Conn
	sid  string

	// sendMu keeps the frames in the order of their sequence numbers.
	sendMu sync.Mutex
	seq    int

	mu       sync.Mutex
	chunk    int
	say      []int16
	keys     []string
	raw      []string // frames to send as they are (bad ones)
	heardPCM []int16  // every frame received, in order
	heardAt  []time.Time
	loud     int
	lastLoud time.Time
	marks    int // marks received
	echoed   int
	clears   int
	firstTx  time.Time // the first frame of what we said
	playEnd  time.Time
	pending  []pendingEcho
	sending  bool
	done     chan struct{}
	closed   chan struct{} // the reader stopped
	closeErr error
	wg       sync.WaitGroup
}

type pendingEcho struct {
	name string
	at   time.Time
}

// dialTwilio opens a media-stream socket to target with key (as Bearer) and starts the
// stream with custom parameters From and To.
func dialTwilio(t *testing.T, n *node, key, target string) *twilio {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+n.addr+"/api/v1/media-stream?agent="+target,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial media stream %s: %d %v", target, status, err)
	}
	tw := &twilio{t: t, conn: conn, sid: "MZ" + strings.Repeat("0", 30) + strconv.Itoa(len(target)), done: make(chan struct{}), closed: make(chan struct{})}
	t.Cleanup(tw.close)
	tw.send(map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"})
	tw.sendSeq(func(seq string) map[string]any {
		return map[string]any{"event": "start", "sequenceNumber": seq, "streamSid": tw.sid, "start": map[string]any{
			"accountSid": "AC123", "streamSid": tw.sid, "callSid": "CA456", "tracks": []string{"inbound"},
			"customParameters": map[string]string{"From": "+15551230000", "To": "+15559870000"},
			"mediaFormat":      map[string]any{"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
	})
	tw.wg.Add(3)
	go tw.sender()
	go tw.reader()
	go tw.echoer()
	return tw
}

// sendSeq sends the frame msg makes of the next sequence number.
func (tw *twilio) sendSeq(msg func(seq string) map[string]any) {
	tw.sendMu.Lock()
	defer tw.sendMu.Unlock()
	tw.seq++
	b, _ := json.Marshal(msg(strconv.Itoa(tw.seq)))
	tw.sendRaw(string(b))
}

func (tw *twilio) send(v any) {
	b, _ := json.Marshal(v)
	tw.sendRaw(string(b))
}

func (tw *twilio) sendRaw(s string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tw.conn.Write(ctx, websocket.MessageText, []byte(s))
}

func (tw *twilio) sender() {
	defer tw.wg.Done()
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	var pcm [160]int16
	var ulaw [160]byte
	for {
		select {
		case <-tw.done:
			return
		case <-tick.C:
		}
		tw.mu.Lock()
		raw := tw.raw
		tw.raw = nil
		var key string
		if len(tw.keys) > 0 {
			key, tw.keys = tw.keys[0], tw.keys[1:]
		}
		pcm = [160]int16{}
		if len(tw.say) > 0 && !tw.sending {
			tw.sending, tw.firstTx = true, time.Now()
		}
		k := copy(pcm[:], tw.say)
		tw.say = tw.say[k:]
		tw.chunk++
		chunk := tw.chunk
		tw.mu.Unlock()
		for _, r := range raw {
			tw.sendRaw(r)
		}
		if key != "" {
			tw.sendSeq(func(seq string) map[string]any {
				return map[string]any{"event": "dtmf", "streamSid": tw.sid, "sequenceNumber": seq,
					"dtmf": map[string]any{"track": "inbound_track", "digit": key}}
			})
		}
		media.EncodePCMU(ulaw[:], pcm[:])
		payload := base64.StdEncoding.EncodeToString(ulaw[:])
		tw.sendSeq(func(seq string) map[string]any {
			return map[string]any{"event": "media", "sequenceNumber": seq, "streamSid": tw.sid, "media": map[string]any{
				"track": "inbound", "chunk": strconv.Itoa(chunk), "timestamp": strconv.Itoa(chunk * 20), "payload": payload}}
		})
	}
}

// outMessage is a frame Switchboard sends.
type outMessage struct {
	Event     string `json:"event"`
	StreamSid string `json:"streamSid"`
	Media     struct {
		Payload string `json:"payload"`
	} `json:"media"`
	Mark struct {
		Name string `json:"name"`
	} `json:"mark"`
}

func (tw *twilio) reader() {
	defer tw.wg.Done()
	defer close(tw.closed)
	var pcm [160]int16
	for {
		_, b, err := tw.conn.Read(context.Background())
		if err != nil {
			tw.mu.Lock()
			tw.closeErr = err
			tw.mu.Unlock()
			return
		}
		var m outMessage
		if err := json.Unmarshal(b, &m); err != nil || m.StreamSid != tw.sid {
			tw.t.Errorf("frame from switchboard: %v %s", err, b)
			continue
		}
		now := time.Now()
		tw.mu.Lock()
		switch m.Event {
		case "media":
			u, err := base64.StdEncoding.DecodeString(m.Media.Payload)
			if err != nil || len(u) != 160 {
				tw.t.Errorf("media payload: %v, %d bytes", err, len(u))
				break
			}
			media.DecodePCMU(pcm[:], u)
			tw.heardPCM = append(tw.heardPCM, pcm[:]...)
			tw.heardAt = append(tw.heardAt, now)
			if rms(pcm[:]) > 300 {
				tw.loud++
				tw.lastLoud = now
			}
			tw.playEnd = later(tw.playEnd, now).Add(media.FrameDuration)
		case "mark":
			tw.marks++
			tw.pending = append(tw.pending, pendingEcho{name: m.Mark.Name, at: later(tw.playEnd, now)})
		case "clear":
			tw.clears++
			tw.playEnd = now
			for i := range tw.pending {
				tw.pending[i].at = now
			}
		default:
			tw.t.Errorf("unknown frame from switchboard: %s", b)
		}
		tw.mu.Unlock()
	}
}

// echoer echoes marks as their audio has played.
func (tw *twilio) echoer() {
	defer tw.wg.Done()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tw.done:
			return
		case <-tick.C:
		}
		tw.mu.Lock()
		var due []string
		for len(tw.pending) > 0 && !tw.pending[0].at.After(time.Now()) {
			due = append(due, tw.pending[0].name)
			tw.pending = tw.pending[1:]
		}
		tw.echoed += len(due)
		tw.mu.Unlock()
		for _, name := range due {
			tw.sendSeq(func(seq string) map[string]any {
				return map[string]any{"event": "mark", "streamSid": tw.sid, "sequenceNumber": seq, "mark": map[string]any{"name": name}}
			})
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func rms(s []int16) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(len(s), 1)))
}

func (tw *twilio) speak(s []int16) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.say = append(tw.say, s...)
}

func (tw *twilio) press(key string) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.keys = append(tw.keys, key)
}

func (tw *twilio) inject(frames ...string) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.raw = append(tw.raw, frames...)
}

func (tw *twilio) counts() (loud, marks, echoed, clears int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.loud, tw.marks, tw.echoed, tw.clears
}

// loudSoFar is how many loud frames were received.
func (tw *twilio) loudSoFar() int {
	l, _, _, _ := tw.counts()
	return l
}

// waitFrames waits until n frames (of any level) were received in all.
func (tw *twilio) waitFrames(n int, d time.Duration) {
	tw.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		tw.mu.Lock()
		got := len(tw.heardAt)
		tw.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			tw.t.Fatalf("%d frames received within %v, want %d", got, d, n)
		}
	}
}

// waitLoud waits until frames more loud frames were received.
func (tw *twilio) waitLoud(frames int, d time.Duration, what string) {
	tw.t.Helper()
	start, _, _, _ := tw.counts()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if l, _, _, _ := tw.counts(); l >= start+frames {
			return
		}
		if time.Now().After(deadline) {
			l, _, _, _ := tw.counts()
			tw.t.Fatalf("%s: %d loud frames in %v, want %d", what, l-start, d, frames)
		}
	}
}

// waitQuiet waits until no loud frame came for gap.
func (tw *twilio) waitQuiet(gap, d time.Duration) {
	tw.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		tw.mu.Lock()
		quiet := time.Since(tw.lastLoud)
		tw.mu.Unlock()
		if quiet >= gap {
			return
		}
		if time.Now().After(deadline) {
			tw.t.Fatalf("the agent did not pause for %v within %v", gap, d)
		}
	}
}

// stop sends stop; the server closes the socket.
func (tw *twilio) stop() {
	tw.sendSeq(func(seq string) map[string]any {
		return map[string]any{"event": "stop", "sequenceNumber": seq, "streamSid": tw.sid,
			"stop": map[string]any{"accountSid": "AC123", "callSid": "CA456"}}
	})
	select {
	case <-tw.closed:
	case <-time.After(5 * time.Second):
		tw.t.Error("the socket is still open 5 s after stop")
	}
}

func (tw *twilio) close() {
	select {
	case <-tw.done:
		return
	default:
	}
	close(tw.done)
	_ = tw.conn.CloseNow()
	tw.wg.Wait()
}

// goertzel is the power of freq in s at rate.
func goertzel(s []int16, freq float64, rate int) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var p1, p2 float64
	for _, v := range s {
		p := float64(v) + k*p1 - p2
		p2, p1 = p1, p
	}
	return p1*p1 + p2*p2 - k*p1*p2
}

func tone(freq float64, d time.Duration) []int16 {
	n := int(d.Seconds() * 8000)
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	return s
}

// TestMediaStreamEcho replays a Twilio session against the echo destination: 3 s of a
// 600 Hz tone come back 0.5 s later as the same tone, marks are sent and their echoes
// taken, bad frames are skipped with the socket open, and the call is recorded inbound
// from the caller the start named, ended by the caller. A missing key is a 401 before
// any upgrade.
func TestMediaStreamEcho(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "cpaas")
	n := startServe(t, env)

	// Refusals before the upgrade.
	for _, c := range []struct {
		url    string
		header http.Header
		want   int
	}{
		{"/api/v1/media-stream?agent=echo", nil, http.StatusUnauthorized},
		{"/api/v1/media-stream?agent=echo&token=nope", nil, http.StatusUnauthorized},
		{"/api/v1/media-stream?agent=agt_missing", http.Header{"Authorization": {"Bearer " + key}}, http.StatusNotFound},
		{"/api/v1/media-stream", http.Header{"Authorization": {"Bearer " + key}}, http.StatusUnprocessableEntity},
	} {
		_, resp, err := websocket.Dial(t.Context(), "ws://"+n.addr+c.url, &websocket.DialOptions{HTTPHeader: c.header})
		if err == nil || resp == nil || resp.StatusCode != c.want {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("%s: %d %v, want %d before the upgrade", c.url, status, err, c.want)
		}
	}
	// A plain GET is not an upgrade.
	if status, body := n.call("GET", "/api/v1/media-stream?agent=echo", key, ""); status != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d %v, want 426", status, body)
	}

	tw := dialTwilio(t, n, key, "echo")
	tw.waitFrames(1, 10*time.Second) // the stream has started: the echo sends from its start
	tw.speak(tone(600, 3*time.Second))
	tw.waitLoud(10, 10*time.Second, "the echo of the tone begins") // mid-tone, then the bad frames
	// Bad frames mid-stream: skipped, the stream goes on.
	tw.inject("not json", `{"event":"media","streamSid":"`+tw.sid+`","media":{"payload":"%%%not base64"}}`,
		`{"event":"media","streamSid":"`+tw.sid+`","media":{"payload":"AAAA"}}`, `{"event":"bogus"}`,
		`{"event":"media","sequenceNumber":"1","streamSid":"`+tw.sid+`","media":{"payload":""}}`)
	// The tone comes back, then the echo of the silence after it.
	tw.waitLoud(140-tw.loudSoFar(), 20*time.Second, "the echoed tone")
	tw.waitQuiet(300*time.Millisecond, 10*time.Second)
	loud, marks, echoed, _ := tw.counts()
	tw.stop()

	tw.mu.Lock()
	pcm, at, first := append([]int16(nil), tw.heardPCM...), append([]time.Time(nil), tw.heardAt...), tw.firstTx
	tw.mu.Unlock()
	// The first loud frame came back about 0.5 s after the first one sent.
	var back time.Time
	var tonePCM []int16
	for i := range at {
		f := pcm[i*160 : (i+1)*160]
		if rms(f) > 1000 {
			if back.IsZero() {
				back = at[i]
			}
			tonePCM = append(tonePCM, f...)
		}
	}
	if back.IsZero() {
		t.Fatalf("no tone came back (%d frames)", len(at))
	}
	// The upper bound leaves room for a busy machine.
	if d := back.Sub(first); d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("the echo came back after %v, want about 500 ms", d)
	}
	if got := len(tonePCM) / 160; got < 140 || got > 155 {
		t.Errorf("%d frames of tone came back, want about 150", got)
	}
	p600, p400, p1k := goertzel(tonePCM, 600, 8000), goertzel(tonePCM, 400, 8000), goertzel(tonePCM, 1000, 8000)
	if p600 < 100*p400 || p600 < 100*p1k {
		t.Errorf("the echo is not the 600 Hz tone: 600 Hz %.3g, 400 Hz %.3g, 1 kHz %.3g", p600, p400, p1k)
	}
	if loud < 140 || marks < 10 || echoed < 10 {
		t.Errorf("loud %d, marks %d, echoed %d: want the tone and a mark every 200 ms of it", loud, marks, echoed)
	}

	// The call record.
	status, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
	ids := itemIDs(t, list)
	if status != http.StatusOK || len(ids) != 1 {
		t.Fatalf("calls: %d %v", status, list)
	}
	c := n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	md, _ := c["metadata"].(map[string]any)
	if c["from"] != "+15551230000" || c["destination"] != "echo" || c["ended_reason"] != "caller-hangup" ||
		md["callSid"] != "CA456" || md["streamSid"] != tw.sid || md["accountSid"] != "AC123" {
		t.Errorf("call record: %v", toJSON(c))
	}
	if !strings.Contains(n.log.String(), "media stream frame skipped") {
		t.Error("the bad frames were not logged")
	}
}

// TestMediaStreamDemoAgent calls the demo agent over a media-stream socket: the greeting is
// heard as media, key 1 gets the opening hours, and speaking over them makes the server
// clear what the far end still holds; the transcript cuts the hours where it was heard.
func TestMediaStreamDemoAgent(t *testing.T) {
	t.Parallel()
	// The caller's word is heard as a word: speech that transcribes to nothing is noise,
	// and noise does not interrupt the agent.
	voice := speechtest.NewOpenAI(t)
	voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: "Operator."}
	})
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_DEMO=true", "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + voice.URL}
	key := createKey(t, env, "--name", "cpaas")
	n := startServe(t, env)
	n.waitLogged("demo agent created: call sip:demo@ this node", 10*time.Second)
	status, list := n.call("GET", "/api/v1/agents", key, "")
	agents := itemIDs(t, list)
	if status != http.StatusOK || len(agents) != 1 {
		t.Fatalf("agents: %d %v", status, list)
	}

	tw := dialTwilio(t, n, key, agents[0])
	tw.waitLoud(50, 15*time.Second, "greeting and menu")
	tw.waitQuiet(time.Second, 30*time.Second) // the menu waits for a key
	tw.press("1")
	tw.waitLoud(25, 10*time.Second, "opening hours")
	tw.speak(readWAV8k(t, "../../testdata/speech/operator.wav"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, _, clears := tw.counts(); clears > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no clear within 5 s of speaking over the agent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, marks, echoed, _ := tw.counts()
	if marks == 0 || echoed == 0 {
		t.Errorf("marks %d, echoed %d", marks, echoed)
	}
	time.Sleep(time.Second)
	tw.stop()

	status, list = n.call("GET", "/api/v1/calls?direction=inbound", key, "")
	ids := itemIDs(t, list)
	if status != http.StatusOK || len(ids) != 1 {
		t.Fatalf("calls: %d %v", status, list)
	}
	c := n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	if c["agent_id"] != agents[0] || c["direction"] != "inbound" {
		t.Errorf("call: %v", toJSON(c))
	}
	_, tr := n.call("GET", "/api/v1/calls/"+ids[0]+"/transcript", key, "")
	raw := strings.ToLower(toJSON(tr))
	if !strings.Contains(raw, `"dtmf":"1"`) || !strings.Contains(raw, `"interrupted":true`) || strings.Contains(raw, "five in the afternoon") {
		t.Errorf("transcript: want key 1 and the hours cut short: %s", raw)
	}
}

// BenchmarkMediaStreamEcho sizes a node by concurrent media-stream sockets to the echo
// destination: it starts switchboard serve (SQLite in a temporary directory), opens the
// sockets spread over 2 s, and has each send 20 ms of a tone every 20 ms for
// MEDIA_STREAM_DURATION (default 10s), echoing the marks it gets at once, then stop. It
// reports the sockets that started, media frames back over those expected (the echo holds
// its last 500 ms), and the server's CPU per socket with all of them up (from /proc).
// Each size is one run on a new server, whatever b.N:
//
//	go test -run '^$' -bench MediaStreamEcho -benchtime 1x -timeout 10m ./cmd/switchboard
//
// MEDIA_STREAMS lists the sizes (default 100,500).
func BenchmarkMediaStreamEcho(b *testing.B) {
	sizes := []int{100, 500}
	if s := os.Getenv("MEDIA_STREAMS"); s != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("MEDIA_STREAMS %q", s)
			}
			sizes = append(sizes, n)
		}
	}
	dur := 10 * time.Second
	if s := os.Getenv("MEDIA_STREAM_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		dur = d
	}
	for _, size := range sizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			for range b.N {
				benchMediaStreams(b, size, dur)
			}
		})
	}
}

func benchMediaStreams(b *testing.B, size int, dur time.Duration) {
	env := environ("SWITCHBOARD_DATA_DIR="+b.TempDir(), "SWITCHBOARD_RATE_LIMIT=1000000",
		"SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	kc := exec.CommandContext(ctx, binary, "keys", "create", "--name", "bench")
	kc.Env = env
	out, err := kc.Output()
	if err != nil {
		b.Fatalf("keys create: %v", err)
	}
	key := strings.TrimSpace(string(out))
	srv := exec.CommandContext(ctx, binary, "serve")
	srv.Env = env
	log := &logBuffer{ready: make(chan struct{})}
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Process.Signal(os.Interrupt); _ = srv.Wait() }()
	select {
	case <-log.ready:
	case <-time.After(30 * time.Second):
		b.Fatalf("switchboard serve did not start:\n%s", log)
	}
	addr, pid := log.addr, srv.Process.Pid
	var ulaw [160]byte
	media.EncodePCMU(ulaw[:], tone(600, 20*time.Millisecond))
	payload := base64.StdEncoding.EncodeToString(ulaw[:])

	type result struct {
		started    bool
		sent, back int
	}
	results := make([]result, size)
	var wg sync.WaitGroup
	var cpuStart, cpuEnd float64
	var at sync.Once
	allUp := make(chan struct{})
	var up sync.WaitGroup
	up.Add(size)
	go func() { up.Wait(); close(allUp) }()
	for i := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 2 * time.Second / time.Duration(size))
			r := &results[i]
			conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/api/v1/media-stream?agent=echo",
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
			if err != nil {
				up.Done()
				return
			}
			defer conn.CloseNow()
			conn.SetReadLimit(1 << 20)
			sid := "MZbench" + strconv.Itoa(i)
			var mu sync.Mutex // the socket's frames in the order of their sequence numbers
			seq := 0
			send := func(build func(b []byte, seq int) []byte) error {
				mu.Lock()
				defer mu.Unlock()
				seq++
				return conn.Write(ctx, websocket.MessageText, build(nil, seq))
			}
			_ = send(func(b []byte, seq int) []byte {
				return fmt.Appendf(b, `{"event":"start","sequenceNumber":"%d","streamSid":%q,"start":{"streamSid":%q,"callSid":"CAbench","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}`, seq, sid, sid)
			})
			r.started = true
			up.Done()
			readDone := make(chan struct{})
			go func() {
				defer close(readDone)
				for {
					_, msg, err := conn.Read(ctx)
					if err != nil {
						return
					}
					switch {
					case bytes.Contains(msg, []byte(`"event":"media"`)):
						r.back++
					case bytes.Contains(msg, []byte(`"event":"mark"`)):
						name := msg[bytes.Index(msg, []byte(`"name":`))+7:]
						name = name[:bytes.IndexByte(name, '}')]
						_ = send(func(b []byte, seq int) []byte {
							return fmt.Appendf(b, `{"event":"mark","sequenceNumber":"%d","streamSid":%q,"mark":{"name":%s}}`, seq, sid, name)
						})
					}
				}
			}()
			tick := time.NewTicker(media.FrameDuration)
			defer tick.Stop()
			// The generator's own cost is kept low: one buffer, no formatting.
			frame := make([]byte, 0, 512)
			tail := []byte(`","streamSid":"` + sid + `","media":{"track":"inbound","payload":"` + payload + `"}}`)
			for end := time.Now().Add(dur); time.Now().Before(end); {
				<-tick.C
				if send(func(_ []byte, seq int) []byte {
					frame = append(frame[:0], `{"event":"media","sequenceNumber":"`...)
					frame = strconv.AppendInt(frame, int64(seq), 10)
					return append(frame, tail...)
				}) != nil {
					break
				}
				r.sent++
			}
			time.Sleep(time.Second) // the echo plays what it still holds
			_ = send(func(b []byte, seq int) []byte {
				return fmt.Appendf(b, `{"event":"stop","sequenceNumber":"%d","streamSid":%q,"stop":{}}`, seq, sid)
			})
			<-readDone
		}()
	}
	<-allUp
	time.Sleep(time.Second)
	at.Do(func() { cpuStart = procCPU(b, pid) })
	window := time.Now()
	time.Sleep(max(dur-4*time.Second, time.Second))
	cpuEnd = procCPU(b, pid)
	span := time.Since(window)
	wg.Wait()
	started, sent, back := 0, 0, 0
	for _, r := range results {
		if r.started {
			started++
			sent += r.sent
			back += r.back
		}
	}
	// The echo plays a frame as it reads the next: of what it heard, all but the 24 frames
	// after the last one it played come back.
	expected := sent - started*(int(sipEchoDelay/media.FrameDuration)-1)
	cores := (cpuEnd - cpuStart) / span.Seconds()
	b.ReportMetric(float64(started), "sockets")
	b.ReportMetric(float64(back)/float64(max(expected, 1)), "back/expected")
	b.ReportMetric(100*cores/float64(max(started, 1)), "%core/socket")
	b.ReportMetric(100*cores, "%core")
	// Frames the server dropped because the echo fell behind, as the calls' records say.
	time.Sleep(time.Second)
	dropped := 0
	for _, m := range regexp.MustCompile(`lost_packets=(\d+)`).FindAllStringSubmatch(log.String(), -1) {
		k, _ := strconv.Atoi(m[1])
		dropped += k
	}
	b.Logf("%d sockets: %d started, media sent %d, back %d of %d expected (%.3f%%), %d dropped by the server; server CPU %.1f%% of a core (%.3f%% per socket)",
		size, started, sent, back, expected, 100*float64(back)/float64(max(expected, 1)), dropped, 100*cores, 100*cores/float64(max(started, 1)))
}

// sipEchoDelay is the echo destination's delay (sip.echoDelay).
const sipEchoDelay = 500 * time.Millisecond

// procCPU is the user and system CPU seconds process pid has used.
func procCPU(tb testing.TB, pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

// TestMediaStreamShutdown: a node that stops ends its media-stream calls as shutdown, and
// the CPaaS sees the socket close as going away (1001) with that reason.
func TestMediaStreamShutdown(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "cpaas")
	n := startServe(t, env)
	tw := dialTwilio(t, n, key, "echo")
	tw.speak(tone(600, time.Second))
	tw.waitLoud(10, 5*time.Second, "echo")
	n.signal(os.Interrupt)
	select {
	case <-tw.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the socket is still open 10 s after the node was told to stop")
	}
	tw.mu.Lock()
	err := tw.closeErr
	tw.mu.Unlock()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "shutdown" {
		t.Fatalf("closed with %v, want 1001 shutdown", err)
	}
	if code := n.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
