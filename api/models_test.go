package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// A provider configured without a models list is asked for its own (once, then the answer is
// remembered), so that /v1/models shows what clients can use.
func TestModelsAskUpstreamsWithoutAList(t *testing.T) {
	up := llmtest.NewOpenAI(t)
	up.SetModels("gpt-small", "gpt-large")
	reg, err := llm.NewRegistry([]llm.ProviderConfig{
		{Name: "asked", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"},
		{Name: "listed", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k", Models: []string{"only-this"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret}, api.Config{Models: reg, DefaultRateLimit: 1000})
	for range 2 {
		r := ts.do(http.MethodGet, "/v1/models", ts.Key, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("models: %d %s", r.Status, r.Body)
		}
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &list); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.ID)
		}
		for _, want := range []string{"asked/gpt-small", "asked/gpt-large", "listed/only-this"} {
			if !slices.Contains(ids, want) {
				t.Fatalf("models %v lack %s", ids, want)
			}
		}
		if slices.Contains(ids, "listed/gpt-small") {
			t.Fatalf("a provider with a models list was asked: %v", ids)
		}
	}
	asked := 0
	for _, req := range up.Requests() {
		if req.Path == "/v1/models" {
			asked++
		}
	}
	if asked != 1 {
		t.Fatalf("the upstream was asked %d times for its models, want once", asked)
	}
}
