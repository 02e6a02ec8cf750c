package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/store"
)

// speechServer is a server whose node has the environment's providers as a fresh node
// without keys has them, plus an ElevenLabs stand-in ("el") and a Cartesia one whose list
// of voices fails ("down").
func speechServer(t *testing.T, d store.Dialect) (*testServer, *speechtest.ElevenLabs, *speechtest.Cartesia) {
	t.Helper()
	el := speechtest.NewElevenLabs(t, speechtest.StreamOptions{Key: "xi"})
	down := speechtest.NewCartesia(t, speechtest.StreamOptions{VoicesStatus: 503})
	cfgs := append(llm.EnvProviders(func(string) string { return "" }),
		llm.ProviderConfig{Name: "el", Kind: llm.KindElevenLabs, BaseURL: el.URL, APIKey: "xi"},
		llm.ProviderConfig{Name: "down", Kind: llm.KindCartesia, BaseURL: down.URL})
	models, err := llm.NewRegistry(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	tenantHTTP := netguard.NewTenantClient(true)
	t.Cleanup(tenantHTTP.CloseIdleConnections)
	sp := speech.NewRegistry(cfgs, speech.RegistryOptions{TenantClient: tenantHTTP})
	return newTestServerConfig(t, d, api.Config{DefaultRateLimit: 1_000_000, Models: models, Speech: sp, AllowPrivateProviders: true}), el, down
}

// TestAgentSpeechMustBeConfigured: an agent that names a voice or a transcriber the node
// cannot use is a 422 naming voice.provider or transcriber.provider and saying what to set;
// a kind that cannot do the job is one too. The defaults still make an agent on a node
// without keys (a workflow agent: no model needed), and a tenant's own provider counts.
func TestAgentSpeechMustBeConfigured(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ts, _, _ := speechServer(t, d)
			wf := ts.createID("/api/v1/workflows", ts.Key, obj{"name": "menu", "graph": obj{"start": "bye",
				"nodes": []obj{{"id": "bye", "type": "hangup"}}, "edges": []obj{}}})
			agent := func(extra obj) obj {
				o := obj{"name": "desk", "workflow_id": wf}
				for k, v := range extra {
					o[k] = v
				}
				return o
			}
			cases := []struct {
				body        obj
				field, says string
			}{
				{agent(obj{"voice": obj{"provider": "elevenlabs", "voice": "x"}}), "voice.provider", "ELEVENLABS_API_KEY"},
				{agent(obj{"voice": obj{"provider": "cartesia", "voice": "x"}}), "voice.provider", "CARTESIA_API_KEY"},
				{agent(obj{"voice": obj{"provider": "nowhere", "voice": "x"}}), "voice.provider", "/api/v1/providers"},
				{agent(obj{"voice": obj{"provider": "anthropic", "voice": "x"}}), "voice.provider", "no audio API"},
				{agent(obj{"transcriber": obj{"provider": "el"}}), "transcriber.provider", "does not transcribe"},
				{agent(obj{"transcriber": obj{"provider": "espeak"}}), "transcriber.provider", "does not transcribe"},
				{agent(obj{"transcriber": obj{"provider": "groq", "model": "whisper"}}), "transcriber.provider", "SWITCHBOARD_PROVIDERS_FILE"},
			}
			for _, c := range cases {
				r := ts.do(http.MethodPost, "/api/v1/agents", ts.Key, c.body)
				wantError(t, r, http.StatusUnprocessableEntity, "validation_error", c.field)
				if !strings.Contains(string(r.Body), c.says) {
					t.Errorf("%v: %s; want it to say %q", c.body, r.Body, c.says)
				}
			}
			if n := ts.total("/api/v1/agents", ts.Key); n != 0 {
				t.Fatalf("%d agents stored by refused requests", n)
			}
			// The defaults (espeak, and openai's transcriber though it has no key here).
			id := ts.createID("/api/v1/agents", ts.Key, agent(nil))
			if r := ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, obj{"name": "renamed"}); r.Status != http.StatusOK {
				t.Errorf("PATCH of the name: %d %s", r.Status, r.Body)
			}
			if r := ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, obj{"voice": obj{"provider": "el", "voice": "21m00Tcm4TlvDq8ikWAM"}}); r.Status != http.StatusOK {
				t.Errorf("PATCH to a configured ElevenLabs voice: %d %s", r.Status, r.Body)
			}
			r := ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, obj{"voice": obj{"provider": "cartesia"}})
			wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "voice.provider")
			// A provider the tenant configures makes the same voice usable.
			ts.createID("/api/v1/providers", ts.Key, obj{"name": "cartesia", "kind": "cartesia", "base_url": "https://api.cartesia.ai", "api_key": "sk_car_x"})
			if r := ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, obj{"voice": obj{"provider": "cartesia"}}); r.Status != http.StatusOK {
				t.Errorf("PATCH to the tenant's Cartesia: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestVoicesList: GET /api/v1/voices lists espeak's, ElevenLabs' and (for the openai kind)
// OpenAI's voices; a provider whose list fails is named in errors, not a 500; ?provider=
// narrows it; another tenant's provider is not listed.
func TestVoicesList(t *testing.T) {
	t.Parallel()
	ts, el, down := speechServer(t, store.SQLite)
	r := ts.do(http.MethodGet, "/api/v1/voices", ts.Key, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/v1/voices: %d %s", r.Status, r.Body)
	}
	body := r.JSON(t)
	byProvider := map[string]int{}
	for _, v := range body["data"].([]any) {
		byProvider[v.(map[string]any)["provider"].(string)]++
	}
	if byProvider["espeak"] == 0 || byProvider["el"] != 2 || byProvider["down"] != 0 {
		t.Errorf("voices by provider %v", byProvider)
	}
	errs := body["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["provider"] != "down" || !strings.Contains(errs[0].(map[string]any)["message"].(string), "503") {
		t.Errorf("errors %v, want the failing provider named", errs)
	}
	// Asked again at once, neither provider is asked again: the list is kept, and so is
	// the failure, which is still named.
	r = ts.do(http.MethodGet, "/api/v1/voices", ts.Key, nil)
	if errs := r.JSON(t)["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["provider"] != "down" {
		t.Errorf("asked again: errors %v, want the failing provider named", errs)
	}
	if el.VoiceListings() != 1 || down.VoiceListings() != 1 {
		t.Errorf("the providers were asked %d and %d times for two lists, want once each", el.VoiceListings(), down.VoiceListings())
	}
	r = ts.do(http.MethodGet, "/api/v1/voices?provider=el", ts.Key, nil)
	if data := r.JSON(t)["data"].([]any); r.Status != http.StatusOK || len(data) != 2 || data[0].(map[string]any)["name"] != "Rachel" {
		t.Errorf("?provider=el: %d %s", r.Status, r.Body)
	}
	wantError(t, ts.do(http.MethodGet, "/api/v1/voices?provider=elevenlabs", ts.Key, nil), http.StatusUnprocessableEntity, "validation_error", "provider")

	// A tenant's own provider is listed for it alone.
	other := ts.newKey("acme", "acme admin", 0, "admin")
	ts.createID("/api/v1/providers", other, obj{"name": "mine", "kind": "elevenlabs", "base_url": ts.URL, "api_key": "k"})
	if r := ts.do(http.MethodGet, "/api/v1/voices?provider=mine", ts.Key, nil); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("another tenant's provider: %d %s, want 422", r.Status, r.Body)
	}
	if r := ts.do(http.MethodGet, "/api/v1/voices", "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("without a key: %d", r.Status)
	}
}
