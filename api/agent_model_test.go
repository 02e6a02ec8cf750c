package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// An agent that talks through its model needs a model this node can reach: an unknown
// provider, or one without its key, is a 422 naming the model at save time; an agent with
// a workflow may keep any model.
func TestAgentModelMustBeConfigured(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts
		for _, model := range []string{"nowhere/gpt-x", "keyless/hidden"} {
			r := ts.do("POST", "/api/v1/agents", ts.Key, obj{"name": "desk", "model": model})
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"field":"model"`) {
				t.Errorf("agent with model %s: %d %s, want 422 on model", model, r.Status, r.Body)
			}
		}
		id := ts.createID("/api/v1/agents", ts.Key, obj{"name": "desk", "model": "oai/gpt-test"})
		if r := ts.do("PATCH", "/api/v1/agents/"+id, ts.Key, obj{"model": "keyless/hidden"}); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("PATCH to an unusable model: %d %s, want 422", r.Status, r.Body)
		}
		wf := ts.createID("/api/v1/workflows", ts.Key, obj{"name": "menu", "graph": obj{"start": "bye",
			"nodes": []obj{{"id": "bye", "type": "hangup"}}, "edges": []obj{}}})
		if r := ts.do("POST", "/api/v1/agents", ts.Key, obj{"name": "menu", "model": "keyless/hidden", "workflow_id": wf}); r.Status != http.StatusCreated {
			t.Errorf("workflow agent with an unusable model: %d %s, want 201", r.Status, r.Body)
		}
	})
}
