package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/amdtest"
	"github.com/switchboard-go/switchboard/internal/testnet"
)

// TestOutboundCallLeavesVoicemail places a call through the API with answering-machine
// detection to SIPp, which answers with a voicemail greeting and its beep: the node's agent
// runtime leaves the message in the agent's voice (espeak-ng) and hangs up, and the record
// says machine, beep, message left, ended voicemail.
func TestOutboundCallLeavesVoicemail(t *testing.T) {
	t.Parallel()
	amdtest.Tools(t)
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not found (Debian sip-tester, installed by `make deps`)")
	}
	v := amdtest.Voices[1]
	answer := amdtest.Join(amdtest.Silence(0.4), amdtest.Speak(t, v, amdtest.Machines[1]), amdtest.Silence(0.3),
		amdtest.Beep(t, 1400, 0.5), amdtest.Silence(12))
	pcap := amdtest.WritePCAP(t, answer)
	scenario, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sipp", "uas_amd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	sf := filepath.Join(filepath.Dir(pcap), "uas_amd.xml")
	if err := os.WriteFile(sf, scenario, 0o644); err != nil {
		t.Fatal(err)
	}

	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "amd")
	n := startServe(t, env)
	status, agent := n.call("POST", "/api/v1/agents", key, `{"name":"collections"}`)
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/agents: %d %v", status, agent)
	}

	// SIPp binds the ports it is given; the INVITE's retransmissions reach it once it listens.
	port := testnet.Port(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sf", sf, "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-mp", strconv.Itoa(testnet.Ports(t, 4)), "-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error")
	cmd.Dir = filepath.Dir(pcap)
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	body := fmt.Sprintf(`{"to":"sip:someone@127.0.0.1:%d","agent_id":%q,"amd":{"mode":"detect_then_message","message":"Hello, this is Acme about your order. Please call us back."}}`, port, agent["id"])
	status, call := n.call("POST", "/api/v1/calls", key, body)
	id, _ := call["id"].(string)
	if status != http.StatusCreated || id == "" {
		t.Fatalf("POST /api/v1/calls: %d %v", status, call)
	}
	if a, _ := call["amd"].(map[string]any); a["mode"] != "detect_then_message" || a["timeout_seconds"] != 10.0 {
		t.Errorf("placed call's amd %v; want the request with the default timeout", call["amd"])
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sipp: %v\n%s", err, out)
		}
	case <-ctx.Done():
		t.Fatalf("sipp did not finish\n%s", out)
	}
	call = n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["status"] == "completed" })
	a, _ := call["amd"].(map[string]any)
	if call["ended_reason"] != "voicemail" || a["result"] != "machine" || a["beep"] != true || a["message_left"] != true {
		t.Fatalf("call %v; want ended voicemail with the message left after the beep", call)
	}
	if ms, _ := a["decision_ms"].(float64); ms <= 0 || ms > 5000 {
		t.Errorf("decision_ms %v", a["decision_ms"])
	}
	q, _ := call["quality"].(map[string]any)
	// The message, a few seconds of espeak-ng, went to SIPp: 100 packets at least.
	if q == nil || q["packets_sent"].(float64) < 100 {
		t.Errorf("quality %v; want the message sent", q)
	}
}
