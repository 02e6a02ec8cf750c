package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// An agent used as a model (agent/{id}) runs its tools itself: the model's call to the
// agent's tool goes to the tool's webhook, its answer goes back to the model, and the client
// sees only the final answer.
func TestAgentModelRunsItsTools(t *testing.T) {
	for _, allowPrivate := range []bool{true, false} {
		name := "webhook reached"
		if !allowPrivate {
			name = "private webhook refused"
		}
		t.Run(name, func(t *testing.T) {
			up := llmtest.NewOpenAI(t)
			reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"}})
			if err != nil {
				t.Fatal(err)
			}
			var hookBody string
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				hookBody = string(b)
				if r.Header.Get("Authorization") != "Bearer hook-secret" {
					http.Error(w, "no", http.StatusUnauthorized)
					return
				}
				_, _ = io.WriteString(w, `{"status":"shipped","eta":"today"}`)
			}))
			defer hook.Close()
			ts := newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret},
				api.Config{Models: reg, Webhooks: agent.NewWebhooks(allowPrivate), DefaultRateLimit: 1000})
			tool := ts.do(http.MethodPost, "/api/v1/tools", ts.Key, map[string]any{
				"name": "lookup_order", "description": "Look up an order",
				"parameters": map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}, "required": []any{"id"}},
				"webhook":    map[string]any{"url": hook.URL, "headers": map[string]any{"Authorization": "Bearer hook-secret"}},
			})
			if tool.Status != http.StatusCreated {
				t.Fatalf("tool: %d %s", tool.Status, tool.Body)
			}
			ag := ts.do(http.MethodPost, "/api/v1/agents", ts.Key, map[string]any{
				"name": "Orders", "instructions": "You answer questions about orders.", "model": "up/small",
				"tool_ids": []any{tool.JSON(t)["id"]},
			})
			if ag.Status != http.StatusCreated {
				t.Fatalf("agent: %d %s", ag.Status, ag.Body)
			}
			up.Enqueue(
				llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "lookup_order", Arguments: `{"id":"42"}`}}, Usage: llm.Usage{InputTokens: 20, OutputTokens: 5}},
				llmtest.Reply{Text: "Order 42 ships today.", Usage: llm.Usage{InputTokens: 40, OutputTokens: 6}},
			)
			body := `{"model":"agent/` + ag.JSON(t)["id"].(string) + `","stream":true,"stream_options":{"include_usage":true},` +
				`"messages":[{"role":"user","content":"Where is order 42?"}]}`
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+ts.Key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var text strings.Builder
			var toolDeltas, roles int
			var usage map[string]any
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok || line == "[DONE]" {
					continue
				}
				var chunk struct {
					Choices []struct {
						Delta struct {
							Role      string  `json:"role"`
							Content   *string `json:"content"`
							ToolCalls []any   `json:"tool_calls"`
						} `json:"delta"`
					} `json:"choices"`
					Usage map[string]any `json:"usage"`
				}
				if err := json.Unmarshal([]byte(line), &chunk); err != nil {
					t.Fatalf("chunk %q: %v", line, err)
				}
				if chunk.Usage != nil {
					usage = chunk.Usage
				}
				for _, c := range chunk.Choices {
					if c.Delta.Role != "" {
						roles++
					}
					if c.Delta.Content != nil {
						text.WriteString(*c.Delta.Content)
					}
					toolDeltas += len(c.Delta.ToolCalls)
				}
			}
			if text.String() != "Order 42 ships today." || toolDeltas != 0 || roles != 1 {
				t.Fatalf("client saw text %q, %d tool deltas, %d role chunks", text.String(), toolDeltas, roles)
			}
			if usage == nil || usage["prompt_tokens"] != float64(60) || usage["completion_tokens"] != float64(11) {
				t.Fatalf("usage of both rounds not summed: %v", usage)
			}
			reqs := up.Requests()
			if len(reqs) != 2 {
				t.Fatalf("upstream saw %d requests, want 2", len(reqs))
			}
			first, second := reqs[0].Map(), string(reqs[1].Body)
			if tools, _ := first["tools"].([]any); len(tools) != 1 || !strings.Contains(string(reqs[0].Body), "You answer questions about orders.") {
				t.Fatalf("first upstream request lacks the agent's tool or instructions: %s", reqs[0].Body)
			}
			if allowPrivate {
				if hookBody != `{"id":"42"}` || !strings.Contains(second, `shipped`) {
					t.Fatalf("webhook got %q; second request %s", hookBody, second)
				}
			} else if hookBody != "" || !strings.Contains(second, "private") {
				t.Fatalf("a private webhook was called (%q) or the refusal did not reach the model: %s", hookBody, second)
			}
		})
	}
}
