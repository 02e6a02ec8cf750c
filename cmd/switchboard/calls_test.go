package main

import (
	bin "encoding/binary"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"syscall"
	"testing"
	"time"
)

var reSIPAddr = regexp.MustCompile(`switchboard serving.*? sip=(127\.0\.0\.1:\d+)`)

// sipAddr is where the node serves SIP, from its start-up line.
func (n *node) sipAddr() string {
	n.t.Helper()
	m := reSIPAddr.FindStringSubmatch(n.log.String())
	if m == nil {
		n.t.Fatalf("no SIP address in the start-up line:\n%s", n.log)
	}
	return m[1]
}

// waitCall polls a call until ok says yes about it.
func (n *node) waitCall(key, id, what string, ok func(c map[string]any) bool) map[string]any {
	n.t.Helper()
	return n.waitGet(key, "/api/v1/calls/"+id, what, ok)
}

// waitGet reads path until its answer is 200 and ok: records are written behind the calls,
// so what a read finds may lag what the calls' events said.
func (n *node) waitGet(key, path, what string, ok func(c map[string]any) bool) map[string]any {
	n.t.Helper()
	var c map[string]any
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var status int
		if status, c = n.call("GET", path, key, ""); status == http.StatusOK && ok(c) {
			return c
		}
	}
	n.t.Fatalf("%s: not %s in time: %v", path, what, c)
	return nil
}

// TestOutboundCallThroughAPI places a call with the API from a running node to the node's
// own echo over real SIP and RTP: the outbound leg plays the tone, the inbound leg echoes
// it. Both legs are records; hanging up through the API ends both, with media figures.
func TestOutboundCallThroughAPI(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + d.url(t), "SWITCHBOARD_RATE_LIMIT=10000",
				"SWITCHBOARD_RECORD_CALLS=true"}
			key := createKey(t, env, "--name", "calls")
			n := startServe(t, env)
			sipAddr := n.sipAddr()

			if status, body := n.call("POST", "/api/v1/calls", key, `{"to":"+14155550100","destination":"tone"}`); status != http.StatusUnprocessableEntity || errorCode(t, body) != "validation_error" {
				t.Errorf("POST /api/v1/calls to a number without a trunk: %d %v, want 422", status, body)
			}
			status, call := n.call("POST", "/api/v1/calls", key, `{"to":"sip:echo@`+sipAddr+`","destination":"tone","metadata":{"test":"api"}}`)
			id, _ := call["id"].(string)
			if status != http.StatusCreated || id == "" || call["direction"] != "outbound" {
				t.Fatalf("POST /api/v1/calls: %d %v", status, call)
			}
			call = n.waitCall(key, id, "in progress", func(c map[string]any) bool { return c["status"] == "in-progress" })
			if call["codec"] != "PCMU" || call["answered_at"] == nil {
				t.Errorf("answered call: %v, want codec PCMU and answered_at", call)
			}
			// The echo leg's record is created behind its call: it is listed once written.
			list := n.waitGet(key, "/api/v1/calls?direction=inbound", "listing the echo leg", func(l map[string]any) bool {
				items, _ := l["items"].([]any)
				return len(items) == 1
			})
			ids := itemIDs(t, list)
			inbound := ids[0]
			time.Sleep(1500 * time.Millisecond) // the tone goes out and comes back

			if status, body := n.call("POST", "/api/v1/calls/"+id+"/hangup", key, ""); status != http.StatusOK {
				t.Fatalf("POST hangup: %d %v", status, body)
			}
			call = n.waitCall(key, id, "completed", func(c map[string]any) bool { return c["status"] == "completed" })
			q, _ := call["quality"].(map[string]any)
			if call["ended_reason"] != "api-hangup" || q == nil || q["packets_received"].(float64) < 20 || q["packets_sent"].(float64) < 50 {
				t.Errorf("ended outbound call: %v, want api-hangup with packets both ways", call)
			}
			leg := n.waitCall(key, inbound, "completed", func(c map[string]any) bool { return c["status"] == "completed" })
			if leg["ended_reason"] != "caller-hangup" || leg["destination"] != "echo" {
				t.Errorf("ended echo leg: %v, want caller-hangup at echo", leg)
			}
			if status, body := n.call("POST", "/api/v1/calls/"+id+"/hangup", key, ""); status != http.StatusConflict {
				t.Errorf("POST hangup of an ended call: %d %v, want 409", status, body)
			}
			// Both legs were recorded: stereo WAVs of the call's length.
			for _, leg := range []string{id, inbound} {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+n.addr+"/api/v1/calls/"+leg+"/recording", nil)
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := n.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				wav, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				// 1.5 s of 8 kHz stereo PCM16 is 48,000 bytes; the header is 44.
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/wav" ||
					len(wav) < 20000 || string(wav[:4]) != "RIFF" || bin.LittleEndian.Uint16(wav[22:24]) != 2 {
					t.Errorf("GET recording of %s: %d %s, %d bytes, want a stereo WAV", leg, resp.StatusCode, resp.Header.Get("Content-Type"), len(wav))
				}
			}
			status, list = n.call("GET", "/api/v1/calls?status=completed&since="+url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), key, "")
			if status != http.StatusOK || len(itemIDs(t, list)) != 2 {
				t.Errorf("GET completed calls: %d %v, want both legs", status, list)
			}
		})
	}
}

// TestKilledNodeFailsItsCalls kills a node in the middle of a call: at its next start, the
// call is failed with reason restart, not in progress forever.
func TestKilledNodeFailsItsCalls(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_NODE=node-a", "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "calls")
	n := startServe(t, env)
	status, call := n.call("POST", "/api/v1/calls", key, `{"to":"sip:echo@`+n.sipAddr()+`","destination":"tone"}`)
	id, _ := call["id"].(string)
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/calls: %d %v", status, call)
	}
	n.waitCall(key, id, "in progress", func(c map[string]any) bool { return c["status"] == "in-progress" })
	n.signal(syscall.SIGKILL)
	n.waitExit(10 * time.Second)

	n = startServe(t, env)
	n.waitLogged("calls interrupted by the last stop marked failed", 10*time.Second)
	call = n.waitCall(key, id, "failed", func(c map[string]any) bool { return c["status"] == "failed" })
	if call["ended_reason"] != "restart" || call["ended_at"] == nil {
		t.Errorf("call of the killed node: %v, want failed with reason restart", call)
	}
}
