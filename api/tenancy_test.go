package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// openAPIDoc is the part of the OpenAPI document the tests walk.
type openAPIDoc struct {
	OpenAPI string                               `json:"openapi"`
	Paths   map[string]map[string]map[string]any `json:"paths"`
}

func (ts *testServer) openAPI() openAPIDoc {
	ts.t.Helper()
	r := ts.do(http.MethodGet, "/openapi.json", "", nil)
	wantStatus(ts.t, r, http.StatusOK, "GET /openapi.json")
	var doc openAPIDoc
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		ts.t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// operations lists the documented method and path pairs, sorted.
func (doc openAPIDoc) operations() [][2]string {
	var ops [][2]string
	for path, methods := range doc.Paths {
		for m := range methods {
			ops = append(ops, [2]string{strings.ToUpper(m), path})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i][1]+ops[i][0] < ops[j][1]+ops[j][0] })
	return ops
}

// fixtures makes one of every tenant-owned resource with key, tagged so that unique values
// (numbers, emails, names) differ between tenants, and returns their ids by collection name;
// "tenants" is the key's own tenant.
func (ts *testServer) fixtures(key string, tag int) map[string]string {
	ts.t.Helper()
	ids := map[string]string{}
	ids["tools"] = ts.createID("/api/v1/tools", key, obj{"name": fmt.Sprintf("lookup_%d", tag), "webhook": obj{"url": "https://example.com/x"}})
	ids["workflows"] = ts.createID("/api/v1/workflows", key, obj{"name": "menu", "graph": validGraph()})
	ids["knowledge-bases"] = ts.createID("/api/v1/knowledge-bases", key, obj{"name": "faq"})
	ids["agents"] = ts.createID("/api/v1/agents", key, obj{"name": "desk", "tool_ids": arr{ids["tools"]}, "workflow_id": ids["workflows"],
		"knowledge_base_ids": arr{ids["knowledge-bases"]}})
	ids["trunks"] = ts.createID("/api/v1/trunks", key, obj{"name": "carrier", "inbound": obj{"allowed_cidrs": arr{"203.0.113.0/24"}}})
	ids["phone-numbers"] = ts.createID("/api/v1/phone-numbers", key, obj{"number": fmt.Sprintf("+1415555%04d", tag), "agent_id": ids["agents"], "trunk_id": ids["trunks"]})
	ids["users"] = ts.createID("/api/v1/users", key, obj{"email": fmt.Sprintf("user%d@example.com", tag), "password": "correct horse battery"})
	ids["keys"] = ts.createID("/api/v1/keys", key, obj{"name": "ci", "scopes": arr{"read"}})
	ids["providers"] = ts.createID("/api/v1/providers", key, obj{"name": "groq", "kind": "openai", "base_url": "https://api.groq.com/openai/v1", "api_key": "gsk_secret"})
	ids["sessions"] = ts.createID("/api/v1/sessions", key, obj{"agent_id": ids["agents"], "label": "chat"})
	ids["deployments"] = ts.createID("/api/v1/agents/"+ids["agents"]+"/deployments", key, obj{"label": "v1"})
	ids["tenants"] = ts.get("/api/v1/auth/me", key)["tenant_id"].(string)
	// Calls are written by the SIP server, not through the API: a live one, in the store.
	ids["calls"] = ts.storeCall(ids["tenants"], func(c *store.Call) {
		c.To, c.Destination, c.Status = fmt.Sprintf("+1415555%04d", tag), "", store.CallInProgress
		c.AgentID, c.TrunkID = ptr(ids["agents"]), ptr(ids["trunks"])
	})
	// A browser's WebRTC session is its call, under the same id.
	ids["webrtc"] = ids["calls"]
	// Call webhooks' deliveries are written by the node's hooks, not through the API.
	ids["webhook-deliveries"] = ts.storeDelivery(ids["tenants"], ids["calls"])
	return ids
}

// collection is the collection a path of the form /api/v1/{collection}/... names, or
// AmaStudio's /v1/agents/{collection}/..., or Amarsia's runner (/v1/runner/{id}: deployments).
func collection(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/runner/"):
		return "deployments"
	case strings.HasPrefix(path, "/v1/knowledge/"):
		return "knowledge-bases" // AmaStudio's name for them
	}
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		if rest, ok = strings.CutPrefix(path, "/v1/agents/"); !ok {
			return ""
		}
	}
	c, _, _ := strings.Cut(rest, "/")
	return c
}

// TestTenantIsolation walks every route of the OpenAPI document that takes an {id} with a second
// tenant's admin key against the first tenant's resources: each must answer 404, never 403 and
// never the data, and change nothing. Lists of the second tenant must not hold the first's rows.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		keyA, keyB := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		a, b := ts.fixtures(keyA, 1), ts.fixtures(keyB, 2)
		snapshot := func() map[string]string {
			out := map[string]string{}
			for c, id := range a {
				out[c] = string(ts.do(http.MethodGet, "/api/v1/"+c+"/"+id, keyA, nil).Body)
			}
			return out
		}
		before := snapshot()
		ampA, ampB := ts.amplifierFixtures(keyA, 1), ts.amplifierFixtures(keyB, 2)
		ampBefore := ts.amplifierSnapshot(ampA, keyA)
		// A document of A's knowledge base, for the routes that name one.
		docA := ts.storeDocument(a["tenants"], a["knowledge-bases"])

		doc := ts.openAPI()
		walked := map[string]bool{}
		for _, op := range doc.operations() {
			method, path := op[0], op[1]
			if !strings.Contains(path, "{id}") {
				continue
			}
			if root := amplifierRoot(path); root != "" {
				ts.amplifierIsolated(t, method, path, ampA[root], keyB)
				walked[method+" "+root] = true
				continue
			}
			c := collection(path)
			id, ok := a[c]
			if !ok {
				t.Fatalf("%s %s: the isolation test has no resource of %q; add one to fixtures", method, path, c)
			}
			url := strings.ReplaceAll(strings.ReplaceAll(path, "{id}", id), "{document_id}", docA)
			var body any
			if method == http.MethodPatch || method == http.MethodPost || method == http.MethodPut {
				body = obj{"name": "stolen"}
			}
			r := ts.do(method, url, keyB, body)
			if r.Status != http.StatusNotFound {
				t.Fatalf("%s %s with another tenant's key: %d, want 404: %s", method, path, r.Status, r.Body)
			}
			if strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/runner/") {
				gwAmaError(t, r, http.StatusNotFound) // AmaStudio's routes answer in its shape
			} else {
				wantJSONError(t, r, http.StatusNotFound, "not_found")
			}
			if strings.Contains(string(r.Body), id) || strings.Contains(string(r.Body), "No such route") {
				t.Fatalf("%s %s: the 404 tells too much or is the router's: %s", method, path, r.Body)
			}
			walked[method+" "+c] = true
		}
		for c := range a {
			for _, m := range []string{"GET", "PATCH", "DELETE"} {
				if (c == "calls" || c == "webhook-deliveries") && m != "GET" {
					continue // calls are steered (hangup, transfer), deliveries redelivered; neither patched nor deleted
				}
				if c == "webrtc" && m == "GET" {
					continue // a WebRTC session is read as its call
				}
				if c == "deployments" && m == "PATCH" {
					continue // a deployment is immutable
				}
				if !walked[m+" "+c] {
					t.Fatalf("the document has no %s /api/v1/%s/{id}", m, c)
				}
			}
		}
		ts.amplifierIsolationDone(t, walked, ampA, ampB, keyA, keyB, ampBefore)
		if after := snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("another tenant's requests changed the first tenant's rows:\n%v\n%v", before, after)
		}
		// The first tenant's key was not revoked by the walk.
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/keys/"+a["keys"], keyA, nil), http.StatusOK, "A's key")

		// Lists: the second tenant sees its own rows and none of the first's.
		lists := 0
		for _, op := range doc.operations() {
			method, path := op[0], op[1]
			c := collection(path)
			if method != http.MethodGet || path != "/api/v1/"+c || a[c] == "" {
				continue
			}
			lists++
			ids := ts.allIDs(path, keyB)
			if slices.Contains(ids, a[c]) {
				t.Fatalf("GET %s with B's key lists A's %s", path, a[c])
			}
			if !slices.Contains(ids, b[c]) {
				t.Fatalf("GET %s with B's key misses B's own %s: %v", path, b[c], ids)
			}
		}
		if lists != len(a)-1 { // WebRTC sessions are listed as calls
			t.Fatalf("walked %d lists, want %d", lists, len(a)-1)
		}

		// References across tenants do not resolve: A's rows do not exist for B.
		// (B's agents talk through B's own provider: the model is not what is wrong here.)
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", keyB, obj{"name": "x", "model": "groq/llama", "tool_ids": arr{a["tools"]}}), 422, "validation_error", "tool_ids[0]")
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", keyB, obj{"name": "x", "workflow_id": a["workflows"]}), 422, "validation_error", "workflow_id")
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", keyB, obj{"name": "x", "model": "groq/llama", "knowledge_base_ids": arr{a["knowledge-bases"]}}), 422, "validation_error", "knowledge_base_ids[0]")
		wantError(t, ts.do(http.MethodPatch, "/api/v1/phone-numbers/"+b["phone-numbers"], keyB, obj{"agent_id": a["agents"]}), 422, "validation_error", "agent_id")
		wantError(t, ts.do(http.MethodPatch, "/api/v1/phone-numbers/"+b["phone-numbers"], keyB, obj{"trunk_id": a["trunks"]}), 422, "validation_error", "trunk_id")
		wantError(t, ts.do(http.MethodPost, "/api/v1/workflows", keyB, obj{"name": "w", "graph": obj{"start": "t", "nodes": arr{obj{"id": "t", "type": "tool", "tool_id": a["tools"]}}}}), 422, "validation_error", "graph.nodes[0].tool_id")

		// The operator is a tenant too: it sees other tenants, but not their resources.
		for c, id := range a {
			r := ts.do(http.MethodGet, "/api/v1/"+c+"/"+id, ts.Key, nil)
			want := http.StatusNotFound
			if c == "tenants" {
				want = http.StatusOK
			}
			wantStatus(t, r, want, "operator GET "+c)
		}
	})
}

// TestTenantManagement: operators (admins of the default tenant) manage tenants; the admin of
// another tenant sees and may rename only its own, and never learns that others exist.
func TestTenantManagement(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		r := ts.do(http.MethodPost, "/api/v1/tenants", ts.Key, obj{"slug": "acme"})
		wantStatus(t, r, http.StatusCreated, "operator creates a tenant")
		acme := r.JSON(t)
		if acme["name"] != "acme" || !strings.HasPrefix(acme["id"].(string), "ten_") {
			t.Fatalf("new tenant: %s", r.Body)
		}
		acmeID := acme["id"].(string)
		admin := ts.tenantAdmin("acme")
		writer := ts.newKey("acme", "writer", 0, "read", "write")

		wantError(t, ts.do(http.MethodPost, "/api/v1/tenants", admin, obj{"slug": "evil"}), http.StatusForbidden, "authorization_error", "")
		wantError(t, ts.do(http.MethodGet, "/api/v1/tenants/"+ts.Default.ID, admin, nil), http.StatusNotFound, "not_found", "")
		wantError(t, ts.do(http.MethodPatch, "/api/v1/tenants/"+ts.Default.ID, admin, obj{"name": "mine"}), http.StatusNotFound, "not_found", "")
		wantError(t, ts.do(http.MethodDelete, "/api/v1/tenants/"+ts.Default.ID, admin, nil), http.StatusNotFound, "not_found", "")
		wantError(t, ts.do(http.MethodDelete, "/api/v1/tenants/"+acmeID, admin, nil), http.StatusForbidden, "authorization_error", "")
		wantError(t, ts.do(http.MethodGet, "/api/v1/tenants", writer, nil), http.StatusForbidden, "authorization_error", "")
		if n := ts.total("/api/v1/tenants", ts.Key); n != 2 {
			t.Fatalf("tenants after refused creates: %d, want 2", n)
		}

		own := ts.list("/api/v1/tenants", admin)
		if *own.Total != 1 || len(own.Items) != 1 || own.Items[0]["id"] != acmeID {
			t.Fatalf("a tenant admin lists %v", own.Items)
		}
		if got := ts.get("/api/v1/tenants/"+acmeID, admin); got["slug"] != "acme" {
			t.Fatalf("own tenant: %v", got)
		}
		r = ts.do(http.MethodPatch, "/api/v1/tenants/"+acmeID, admin, obj{"name": "Acme Corp"})
		wantStatus(t, r, http.StatusOK, "rename own tenant")
		if got := r.JSON(t); got["name"] != "Acme Corp" || got["slug"] != "acme" {
			t.Fatalf("rename: %v", got)
		}

		all := ts.allIDs("/api/v1/tenants", ts.Key)
		if len(all) != 2 || !slices.Contains(all, acmeID) || !slices.Contains(all, ts.Default.ID) {
			t.Fatalf("operator lists %v, want default and acme", all)
		}
		wantError(t, ts.do(http.MethodPatch, "/api/v1/tenants/"+ts.Default.ID, ts.Key, obj{"slug": "renamed"}), http.StatusUnprocessableEntity, "validation_error", "slug")

		// Deleting a tenant takes its keys with it, at once.
		agent := ts.createID("/api/v1/agents", admin, obj{"name": "desk"})
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents/"+agent, writer, nil), http.StatusOK, "before delete")
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/tenants/"+acmeID, ts.Key, nil), http.StatusNoContent, "operator deletes a tenant")
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", writer, nil), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, ts.do(http.MethodGet, "/api/v1/tenants/"+acmeID, ts.Key, nil), http.StatusNotFound, "not_found", "")
		if n := ts.total("/api/v1/tenants", ts.Key); n != 1 {
			t.Fatalf("tenants after delete: %d, want 1", n)
		}
	})
}
