package mediastream_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/mediastream"
)

// mediaServer accepts media-stream sockets and hands each started stream to got.
func mediaServer(t testing.TB, opts mediastream.Options) (string, <-chan *mediastream.Socket) {
	t.Helper()
	got := make(chan *mediastream.Socket, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, err := mediastream.Accept(w, r, opts)
		if err != nil {
			return
		}
		got <- ms
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), got
}

// noLeaks checks, once the test and its cleanups are done, that no goroutine of it is left.
// The tests that use it are not parallel, so that the check sees only their goroutines.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

const testSid = "MZ00000000000000000000000000000001"

func startFrame(seq int) string {
	return `{"event":"start","sequenceNumber":"` + strconv.Itoa(seq) + `","streamSid":"` + testSid + `","start":{"accountSid":"AC1","streamSid":"` + testSid +
		`","callSid":"CA1","tracks":["inbound"],"customParameters":{"From":"+15550001111"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}`
}

func mediaFrame(seq int, payload []byte) string {
	return `{"event":"media","sequenceNumber":"` + strconv.Itoa(seq) + `","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"` +
		base64.StdEncoding.EncodeToString(payload) + `"}}`
}

func dialMedia(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func writeText(t *testing.T, c *websocket.Conn, frames ...string) {
	t.Helper()
	for _, f := range frames {
		if err := c.Write(t.Context(), websocket.MessageText, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMediaStreamBadFrames: frames that break the protocol are skipped and counted (media
// before start, not JSON, not base64, an empty payload, a sequence number out of order, an
// unknown event), good frames around them are heard, and too many close the socket with
// 1008 and a reason.
func TestMediaStreamBadFrames(t *testing.T) {
	noLeaks(t)
	url, got := mediaServer(t, mediastream.Options{MaxBadFrames: 10})
	c := dialMedia(t, url)
	silence := make([]byte, 160)
	writeText(t, c, `{"event":"connected","protocol":"Call","version":"1.0.0"}`, mediaFrame(1, silence), startFrame(2))
	var ms *mediastream.Socket
	select {
	case ms = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no stream started")
	}
	defer ms.Close()
	pub := make(chan mediastream.FrameError, 64)
	ms.SetPublisher(func(typ string, data any) {
		if typ == mediastream.EventFrameError {
			pub <- data.(mediastream.FrameError)
		}
	})
	if s := ms.Start(); s.CallSid != "CA1" || s.CustomParameters["From"] != "+15550001111" || ms.SampleRate() != 8000 {
		t.Fatalf("start: %+v", s)
	}
	loud := make([]byte, 320) // two frames at once
	for i := range loud {
		loud[i] = 0x10 // a loud μ-law code
	}
	writeText(t, c, "not json", mediaFrame(3, loud), `{"event":"media","sequenceNumber":"4","streamSid":"`+testSid+`","media":{"payload":"%%%"}}`,
		mediaFrame(5, make([]byte, 100)), mediaFrame(3, silence), `{"event":"twirl","sequenceNumber":"6"}`,
		`{"event":"dtmf","sequenceNumber":"7","streamSid":"`+testSid+`","dtmf":{"track":"inbound_track","digit":"5"}}`)
	f := media.Frame{Samples: make([]int16, 160)}
	for range 2 {
		if err := ms.ReadFrame(&f); err != nil {
			t.Fatal(err)
		}
		if f.Samples[0] > -1000 && f.Samples[0] < 1000 {
			t.Fatalf("the loud frames were not heard: %d", f.Samples[0])
		}
	}
	select {
	case ev := <-ms.Events():
		if ev.Kind != media.EventDTMF || ev.Digit != '5' {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no dtmf")
	}
	// media before start (1) and four after it; the 100 bytes are audio, not a bad frame.
	if st := ms.Stats(); st.BadFrames != 5 || st.FramesIn != 2 {
		t.Fatalf("stats %+v, want 5 bad frames and 2 heard", st)
	}
	for i := range 4 {
		if e := <-pub; e.Count != i+2 || e.Message == "" {
			t.Fatalf("error event %+v", e)
		}
	}
	// Five more end it: 1008 with a reason, and a hang-up for the call.
	for i := range 5 {
		writeText(t, c, "junk "+strconv.Itoa(i))
	}
	_, _, err := c.Read(t.Context())
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "too many bad frames") {
		t.Fatalf("closed with %v, want 1008 too many bad frames", err)
	}
	select {
	case <-ms.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
	if ms.Reason() != string(call.ReasonError) || !errors.Is(ms.ReadFrame(&f), media.ErrClosed) {
		t.Fatalf("reason %q", ms.Reason())
	}
}

// TestMediaStreamPartialFrames: a sender that cuts its audio other than in 20 ms messages is
// heard all the same, sample for sample, in 20 ms frames.
func TestMediaStreamPartialFrames(t *testing.T) {
	noLeaks(t)
	url, got := mediaServer(t, mediastream.Options{})
	c := dialMedia(t, url)
	writeText(t, c, startFrame(1))
	var ms *mediastream.Socket
	select {
	case ms = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no stream started")
	}
	defer ms.Close()
	audio := make([]byte, 2*160)
	for i := range audio {
		audio[i] = byte(i)
	}
	seq := 2
	for _, n := range []int{100, 60, 1, 79, 80} {
		writeText(t, c, mediaFrame(seq, audio[:n]))
		audio, seq = audio[n:], seq+1
	}
	f := media.Frame{Samples: make([]int16, 160)}
	want := make([]int16, 160)
	for frame := range 2 {
		if err := ms.ReadFrame(&f); err != nil {
			t.Fatal(err)
		}
		src := make([]byte, 160)
		for i := range src {
			src[i] = byte(frame*160 + i)
		}
		media.DecodePCMU(want, src)
		if !slices.Equal(f.Samples, want) {
			t.Fatalf("frame %d: %v, want %v", frame, f.Samples[:8], want[:8])
		}
	}
	if st := ms.Stats(); st.BadFrames != 0 || st.FramesIn != 2 {
		t.Fatalf("stats %+v, want 2 frames heard and none bad", st)
	}
	writeText(t, c, `{"event":"stop","sequenceNumber":"`+strconv.Itoa(seq)+`","streamSid":"`+testSid+`","stop":{"accountSid":"AC1","callSid":"CA1"}}`)
	select {
	case <-ms.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not end the stream")
	}
}

// TestMediaStreamPlayback: our frames go out paced, with marks; the far end's echoes of the
// marks move the playback position; a clear drops what was sent and not played, and the
// position says what was heard.
func TestMediaStreamPlayback(t *testing.T) {
	noLeaks(t)
	url, got := mediaServer(t, mediastream.Options{MarkEvery: 5})
	c := dialMedia(t, url)
	writeText(t, c, startFrame(1))
	ms := <-got
	defer ms.Close()

	// The far end: it counts media, echoes marks at once (it plays instantly) until told
	// to hold them, and counts clears.
	type farEnd struct{ media, marks int }
	frames := make(chan string, 1024)
	go func() {
		defer close(frames)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			frames <- string(b)
		}
	}()
	f := media.Frame{Rate: 8000, Samples: make([]int16, 160)}
	start := time.Now()
	for range 50 { // 1 s
		if err := ms.WriteFrame(&f); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 850*time.Millisecond || took > 1200*time.Millisecond {
		t.Fatalf("1 s of frames written in %v: not paced", took)
	}
	var fe farEnd
	deadline := time.After(2 * time.Second)
	seq := 2
	for fe.marks < 10 {
		select {
		case s := <-frames:
			var m struct {
				Event, StreamSid string
				Mark             struct{ Name string }
			}
			if err := json.Unmarshal([]byte(s), &m); err != nil || m.StreamSid != testSid {
				t.Fatalf("frame %s", s)
			}
			switch m.Event {
			case "media":
				fe.media++
			case "mark":
				fe.marks++
				writeText(t, c, `{"event":"mark","sequenceNumber":"`+strconv.Itoa(seq)+`","streamSid":"`+testSid+`","mark":{"name":"`+m.Mark.Name+`"}}`)
				seq++
			}
		case <-deadline:
			t.Fatalf("far end: %+v, want 50 media and 10 marks", fe)
		}
	}
	if fe.media != 50 {
		t.Fatalf("far end: %+v", fe)
	}
	time.Sleep(100 * time.Millisecond)
	if st := ms.Stats(); st.MarksEcho != 10 || st.Played != time.Second {
		t.Fatalf("stats %+v, want 10 marks echoed and 1 s played", st)
	}
	// A burst of 200 ms, cleared as its last frame is written: the far end holds the lead.
	for range 10 {
		if err := ms.WriteFrame(&f); err != nil {
			t.Fatal(err)
		}
	}
	dropped := ms.Clear()
	if dropped < 40*time.Millisecond || dropped > 160*time.Millisecond {
		t.Fatalf("clear drops %v, want the lead (about 80 ms)", dropped)
	}
	for {
		s := <-frames
		if strings.Contains(s, `"event":"clear"`) {
			break
		}
	}
	st := ms.Stats()
	if st.Clears != 1 || st.Cleared < dropped-20*time.Millisecond || st.Cleared > dropped+20*time.Millisecond ||
		st.Played+st.Cleared != 1200*time.Millisecond {
		t.Fatalf("stats %+v after a clear dropping %v", st, dropped)
	}
	// An echo of a mark a clear dropped is taken quietly.
	writeText(t, c, `{"event":"mark","sequenceNumber":"`+strconv.Itoa(seq)+`","streamSid":"`+testSid+`","mark":{"name":"sb-11"}}`)
	time.Sleep(50 * time.Millisecond)
	if st := ms.Stats(); st.BadFrames != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Stop ends the stream as the caller's hang-up.
	writeText(t, c, `{"event":"stop","sequenceNumber":"`+strconv.Itoa(seq+1)+`","streamSid":"`+testSid+`","stop":{"accountSid":"AC1","callSid":"CA1"}}`)
	select {
	case <-ms.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not end the stream")
	}
	if ms.Reason() != string(call.ReasonCallerHangup) || !errors.Is(ms.WriteFrame(&f), media.ErrClosed) {
		t.Fatalf("reason %q", ms.Reason())
	}
}

// TestMediaStreamNoStart: a socket that never starts is closed with 1008.
func TestMediaStreamNoStart(t *testing.T) {
	noLeaks(t)
	url, _ := mediaServer(t, mediastream.Options{StartTimeout: 200 * time.Millisecond})
	c := dialMedia(t, url)
	writeText(t, c, `{"event":"connected","protocol":"Call","version":"1.0.0"}`)
	_, _, err := c.Read(t.Context())
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "no start") {
		t.Fatalf("closed with %v, want 1008 no start", err)
	}
}

// FuzzMediaStreamFrame sends one arbitrary frame after the start: the server must not fail,
// and a good media frame after it is still heard, unless the frame ended the stream or its
// sequence number left no room for the next.
func FuzzMediaStreamFrame(f *testing.F) {
	for _, seed := range []string{
		"not json", "", "{}", "[]", "null", `{"event":"media"}`, `{"event":"media","media":{"payload":"%%%"}}`,
		`{"event":"media","media":{"payload":"AAAA"}}`, mediaFrame(2, make([]byte, 160)), mediaFrame(2, make([]byte, 1600)),
		`{"event":"dtmf","dtmf":{"digit":"12"}}`, `{"event":"dtmf","dtmf":{"digit":"#"}}`, `{"event":"mark","mark":{"name":"sb-1"}}`,
		`{"event":"mark","mark":{"name":"sb-99999999999999999999"}}`, `{"event":"start"}`, `{"event":"connected"}`,
		`{"event":"stop"}`, `{"event":"media","sequenceNumber":"-5"}`, `{"event":"media","streamSid":"MZother","media":{"payload":""}}`,
		`{"event":"media","media":{"track":"outbound","payload":"AAAA"}}`,
	} {
		f.Add(seed)
	}
	url, got := mediaServer(f, mediastream.Options{MaxBadFrames: 1000})
	f.Fuzz(func(t *testing.T, frame string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte(startFrame(1))); err != nil {
			t.Fatal(err)
		}
		var ms *mediastream.Socket
		select {
		case ms = <-got:
		case <-ctx.Done():
			t.Fatal("no stream")
		}
		defer ms.Close()
		loud := make([]byte, 160)
		for i := range loud {
			loud[i] = 0x10
		}
		if c.Write(ctx, websocket.MessageText, []byte(frame)) != nil ||
			c.Write(ctx, websocket.MessageText, []byte(mediaFrame(math.MaxInt64, loud))) != nil {
			return // the frame was too big for the socket: the server closed it
		}
		heard := make(chan error, 1)
		go func() {
			f := media.Frame{Samples: make([]int16, 160)}
			for {
				err := ms.ReadFrame(&f)
				// The frame before may have been part of 20 ms: the loud one can start
				// anywhere in what is read.
				if err != nil || slices.ContainsFunc(f.Samples, func(s int16) bool { return s < -1000 || s > 1000 }) {
					heard <- err
					return
				}
			}
		}()
		select {
		case err := <-heard:
			if err != nil && ms.Reason() == "" {
				t.Fatalf("read %v on a stream that did not end", err)
			}
		case <-ms.Done():
		case <-time.After(2 * time.Second):
			if !strings.Contains(frame, "9223372036854775807") {
				t.Fatalf("a good frame after %q was not heard: %+v", frame, ms.Stats())
			}
		}
	})
}
