package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

// callServer is an operator's receiver of call webhooks: it answers its first fails posts
// 500, then 200, and keeps every post.
type callServer struct {
	*httptest.Server
	mu    sync.Mutex
	fails int
	posts []hookPost
	// got signals each post.
	got changes
}

type hookPost struct {
	header http.Header
	body   []byte
	status int
}

func newCallServer(t *testing.T, fails int) *callServer {
	t.Helper()
	s := &callServer{fails: fails}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		status := http.StatusOK
		if s.fails > 0 {
			s.fails--
			status = http.StatusInternalServerError
		}
		s.posts = append(s.posts, hookPost{header: r.Header.Clone(), body: body, status: status})
		s.mu.Unlock()
		s.got.notify()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s
}

// delivered is the bodies answered 200, by event.
func (s *callServer) delivered() map[string][]hookPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]hookPost{}
	for _, p := range s.posts {
		if p.status == http.StatusOK {
			ev := p.header.Get("X-Switchboard-Event")
			out[ev] = append(out[ev], p)
		}
	}
	return out
}

// signedWith checks a post as README tells a receiver to: HMAC-SHA256, keyed with the
// secret as shown, over the timestamp header, ".", and the raw body.
func signedWith(secret string, p hookPost) bool {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(p.header.Get("X-Switchboard-Timestamp") + "." + string(p.body)))
	return hmac.Equal([]byte("v1="+hex.EncodeToString(m.Sum(nil))), []byte(p.header.Get("X-Switchboard-Signature")))
}

// TestCallWebhooksOverSIP calls, over real SIP and RTP, an agent that names a server: the
// operator's receiver fails twice, then answers, and gets call.started, the greeting as
// call.transcript, and call.ended carrying the end-of-call report with the transcript and
// the recording's link, each signed so that README's recipe verifies it (and a tampered
// body does not); the deliveries' statuses are read back through the API.
func TestCallWebhooksOverSIP(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			model := llmtest.NewOpenAI(t)
			recv := newCallServer(t, 2)
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + d.url(t), "SWITCHBOARD_RATE_LIMIT=10000",
				"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_RECORD_CALLS=true",
				"SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS=true", "SWITCHBOARD_WEBHOOK_BACKOFF=100ms"}
			key := createKey(t, env, "--name", "hooks")
			n := startServe(t, env)

			status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Hooked","model":"openai/gpt-test","first_message":"Hello from the hooked line.",`+
				`"server":{"url":"`+recv.URL+`/calls","events":["call.started","call.ended","call.transcript"]}}`)
			server, _ := ag["server"].(map[string]any)
			secret, _ := server["secret"].(string)
			if status != http.StatusCreated || !strings.HasPrefix(secret, "whsec_") {
				t.Fatalf("POST agent with a server: %d %v; want its generated secret shown once", status, ag)
			}
			if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550177","name":"Hooked","agent_id":"`+ag["id"].(string)+`"}`); status != http.StatusCreated {
				t.Fatalf("POST phone number: %d %v", status, pn)
			}

			// The tenant's events: the node publishes each delivery attempt it records.
			events := streamEvents(t, n, key)
			p := dialPhone(t, "sip:+15550177@"+n.sipAddr())
			p.waitSpeech(25, 15*time.Second, "greeting")
			p.waitQuiet(400*time.Millisecond, 15*time.Second)
			p.hangup()
			p.close()

			var got map[string][]hookPost
			if !recv.got.until(30*time.Second, func() bool {
				got = recv.delivered()
				return len(got["call.started"]) == 1 && len(got["call.ended"]) == 1 && len(got["call.transcript"]) >= 1
			}) {
				t.Fatalf("delivered: started %d, ended %d, transcript %d", len(got["call.started"]), len(got["call.ended"]), len(got["call.transcript"]))
			}
			for ev, posts := range got {
				for _, post := range posts {
					if !signedWith(secret, post) {
						t.Errorf("%s does not verify with README's recipe", ev)
					}
					tampered := post
					tampered.body = []byte(strings.Replace(string(post.body), "Hooked", "Hacked", 1) + " ")
					if signedWith(secret, tampered) {
						t.Errorf("a tampered %s verifies", ev)
					}
				}
			}
			var ended struct {
				ID     string         `json:"id"`
				CallID string         `json:"call_id"`
				Call   map[string]any `json:"call"`
				Report struct {
					EndedReason  string `json:"ended_reason"`
					RecordingURL string `json:"recording_url"`
					Transcript   []struct {
						Role, Text string
					} `json:"transcript"`
				} `json:"report"`
			}
			if err := json.Unmarshal(got["call.ended"][0].body, &ended); err != nil {
				t.Fatal(err)
			}
			if ended.Report.EndedReason != "caller-hangup" || ended.Call["status"] != "completed" || ended.Call["agent_id"] != ag["id"] {
				t.Errorf("call.ended: reason %q, call %v", ended.Report.EndedReason, ended.Call)
			}
			if len(ended.Report.Transcript) == 0 || ended.Report.Transcript[0].Role != "assistant" || !strings.Contains(ended.Report.Transcript[0].Text, "hooked line") {
				t.Errorf("call.ended's transcript: %+v; want the greeting", ended.Report.Transcript)
			}
			if ended.Report.RecordingURL != "/api/v1/calls/"+ended.CallID+"/recording" {
				t.Errorf("recording_url %q", ended.Report.RecordingURL)
			}

			// The receiver answered each; the node records that a moment later.
			var items []any
			var pending map[string]any
			if !events.sig.until(30*time.Second, func() bool {
				var status int
				status, pending = n.call("GET", "/api/v1/webhook-deliveries?call_id="+ended.CallID+"&status=pending", key, "")
				if status != http.StatusOK {
					t.Fatalf("GET pending deliveries: %d %v", status, pending)
				}
				return pending["total"] == 0.0
			}) {
				t.Fatalf("deliveries still pending: %v", pending)
			}
			_, list := n.call("GET", "/api/v1/webhook-deliveries?call_id="+ended.CallID+"&limit=100", key, "")
			items, _ = list["items"].([]any)
			// Each recorded attempt was published as it was made.
			events.wait(t, 30*time.Second, "webhook.delivery", func(d map[string]any) bool {
				return d["call_id"] == ended.CallID && d["event"] == "call.ended" && d["status"] == "delivered"
			})
			if len(items) < 3 {
				t.Fatalf("deliveries: %v", items)
			}
			attempts := 0.0
			for _, it := range items {
				dl := it.(map[string]any)
				attempts += dl["attempts"].(float64)
				if dl["status"] != "delivered" || dl["response_code"] != 200.0 || dl["source"] != "agent" {
					t.Errorf("delivery %v", dl)
				}
			}
			if attempts != float64(len(items)+2) {
				t.Errorf("%v attempts for %d deliveries; want two more (the receiver failed twice)", attempts, len(items))
			}
		})
	}
}
