package sip

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/amdtest"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// amdAgent is the agent of the tests' outbound calls: it says when it started talking
// (ServeCall) or leaving its message, and leaves it as a second of 440 Hz.
type amdAgent struct {
	// transcript is what its transcriber hears in any greeting; "": it has none.
	transcript string
	served     chan time.Time
	left       chan time.Time
	heard      chan string // the message it was asked to leave
}

func newAMDAgent() *amdAgent {
	return &amdAgent{served: make(chan time.Time, 1), left: make(chan time.Time, 1), heard: make(chan string, 1)}
}

func (a *amdAgent) AgentHandler(context.Context, string, string) (Handler, error) { return a, nil }

func (a *amdAgent) ServeCall(_ context.Context, c *Call) {
	a.served <- time.Now()
	c.Hangup("")
}

func (a *amdAgent) transcribe(context.Context, string, []int16, int) (string, bool, error) {
	return a.transcript, a.transcript != "", nil
}

func (a *amdAgent) leaveMessage(_ context.Context, s media.Stream, _, text string) error {
	a.left <- time.Now()
	a.heard <- text
	tone := media.NewTone(440, s.SampleRate(), 8000)
	f := media.Frame{Rate: s.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(s.SampleRate()))}
	for range 50 {
		tone.Fill(f.Samples)
		if err := s.WriteFrame(&f); err != nil {
			return err
		}
	}
	return nil
}

// TestSIPpAnsweringMachineDetection places outbound calls to SIPp, which answers each by
// playing a pcap made from espeak-ng speech and sox beeps: a person's "hello?" then
// silence, a voicemail greeting then its beep, a greeting without a beep, and silence. The
// record and call.amd say who answered; a person gets the agent, a machine the message
// once its beep (or greeting) is over and then the hang-up (voicemail).
func TestSIPpAnsweringMachineDetection(t *testing.T) {
	amdtest.Tools(t)
	verifyNoLeaks(t)
	voice := amdtest.Voices[0]
	greeting := amdtest.Speak(t, voice, amdtest.Machines[0])
	greetingEnd := time.Duration(len(greeting)+int(0.4*amdtest.Rate)) * time.Second / amdtest.Rate
	beepEnd := greetingEnd + 800*time.Millisecond
	message := "Hi, this is Switchboard calling about your order. Please call us back."
	for _, tt := range []struct {
		name       string
		transcript string // what the agent's transcriber hears
		audio      []int16
		mode       string
		want       string
		reason     call.Reason
		beep       bool
		// leftAfter is when the message should start, from the answer: after the beep, or
		// after the greeting and the silence that ends it.
		leftAfter time.Duration
	}{
		{"human", "", amdtest.Join(amdtest.Silence(0.4), amdtest.Speak(t, voice, amdtest.Humans[0]), amdtest.Silence(6)),
			store.AMDDetectThenMessage, store.AMDHuman, call.ReasonAgentHangup, false, 0},
		{"machine with beep", "", amdtest.Join(amdtest.Silence(0.4), greeting, amdtest.Silence(0.3), amdtest.Beep(t, 1000, 0.5), amdtest.Silence(6)),
			store.AMDDetectThenMessage, store.AMDMachine, call.ReasonVoicemail, true, beepEnd},
		{"machine without beep", "", amdtest.Join(amdtest.Silence(0.4), greeting, amdtest.Silence(6)),
			store.AMDDetectThenMessage, store.AMDMachine, call.ReasonVoicemail, false, greetingEnd + greetingOver},
		{"machine reported", "", amdtest.Join(amdtest.Silence(0.4), greeting, amdtest.Silence(2)),
			store.AMDDetect, store.AMDMachine, call.ReasonAgentHangup, false, 0},
		// A short recorded "leave a message" sounds like a person's hello; its words do not.
		{"machine by its words", "Sorry, leave a message.", amdtest.Join(amdtest.Silence(0.4), amdtest.Speak(t, voice, "Sorry, leave a message."), amdtest.Silence(4)),
			store.AMDDetect, store.AMDMachine, call.ReasonAgentHangup, false, 0},
		{"silence", "", amdtest.Silence(6), store.AMDDetect, store.AMDUnknown, call.ReasonAgentHangup, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Each call has its own node, store and SIPp on ports of its own: the six
			// play their audio at once rather than one after another.
			t.Parallel()
			st, tenant := newCallStore(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ag := store.NewAgent()
			ag.Name = "caller"
			if err := store.Create(ctx, st, tenant, ag); err != nil {
				t.Fatal(err)
			}
			events := newEventLog()
			agent := newAMDAgent()
			agent.transcript = tt.transcript
			logs := &logBuffer{t: t}
			s, _ := serveForSIPp(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Agents: agent, Log: logs.logger()})

			r := newSIPp(t, amdScenario(t, amdtest.WritePCAP(t, tt.audio)), "", 50*time.Second, "-m", "1")
			r.start(true)
			rec := store.NewOutboundCall()
			rec.TenantID, rec.To, rec.AgentID = tenant, fmt.Sprintf("sip:someone@127.0.0.1:%d", r.port), &ag.ID
			rec.AMD = &store.CallAMD{Mode: tt.mode, TimeoutSeconds: 4}
			if tt.mode == store.AMDDetectThenMessage {
				rec.AMD.Message = message
			}
			if err := rec.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := s.Dial(ctx, rec); err != nil {
				t.Fatalf("dial: %v", err)
			}
			answered := events.waitN(ctx, t, 1, call.EventAnswered, nil)[0].Data.(store.Call)
			got := events.waitN(ctx, t, 1, call.EventAMD, nil)[0].Data.(store.CallAMD)
			ended := events.waitN(ctx, t, 1, call.EventEnded, nil)[0].Data.(store.Call)
			r.wait()

			t.Logf("%s: %s (%s, confidence %.2f) %d ms after the answer", tt.name, got.Result, got.Reason, got.Confidence, got.DecisionMS)
			if got.Result != tt.want {
				t.Fatalf("call.amd %+v; want %s", got, tt.want)
			}
			if tt.transcript != "" && (got.Reason != "transcript" || got.Transcript != tt.transcript) {
				t.Errorf("call.amd %+v; want decided by the transcript", got)
			}
			if tt.want != store.AMDUnknown && (got.Confidence < 0.5 || got.Confidence > 1) {
				t.Errorf("confidence %v", got.Confidence)
			}
			if got.DecisionMS <= 0 || got.DecisionMS > 5000 {
				t.Errorf("decision took %d ms", got.DecisionMS)
			}
			if tt.want == store.AMDUnknown && (got.DecisionMS < 3500 || got.Reason != "timeout") {
				t.Errorf("unknown after %d ms (%s); want at the 4 s timeout", got.DecisionMS, got.Reason)
			}
			if ended.EndedReason != string(tt.reason) {
				t.Errorf("ended %q; want %q", ended.EndedReason, tt.reason)
			}
			stored, err := store.Get[store.Call](ctx, st, tenant, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.AMD == nil || stored.AMD.Result != tt.want || stored.AMD.DecisionMS != got.DecisionMS || stored.AMD.Mode != tt.mode {
				t.Errorf("stored amd %+v; want the call.amd %+v", stored.AMD, got)
			}
			if tt.reason == call.ReasonVoicemail {
				if text := <-agent.heard; text != message {
					t.Errorf("message %q", text)
				}
				at := (<-agent.left).Sub(*answered.AnsweredAt)
				// espeak-ng ends its clip with a little silence: the greeting ends before the clip.
				if at < tt.leftAfter-time.Second || at > tt.leftAfter+2*time.Second {
					t.Errorf("message left %v after the answer; want just after %v", at, tt.leftAfter)
				}
				if !stored.AMD.MessageLeft || stored.AMD.Beep != tt.beep {
					t.Errorf("the record says message left %v, beep %v; want true, %v", stored.AMD.MessageLeft, stored.AMD.Beep, tt.beep)
				}
				if len(agent.served) != 0 {
					t.Error("the agent talked to a machine")
				}
				return
			}
			if len(agent.served) != 1 || len(agent.left) != 0 {
				t.Errorf("the agent did not start (or left a message): served %d, left %d", len(agent.served), len(agent.left))
			}
		})
	}
}

// amdScenario is a copy of uas_amd.xml next to pcap (an answer.pcap), which it plays.
func amdScenario(t *testing.T, pcap string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "sipp", "uas_amd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(pcap) != "answer.pcap" {
		t.Fatalf("the scenario plays answer.pcap, not %s", pcap)
	}
	path := filepath.Join(filepath.Dir(pcap), "uas_amd.xml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
