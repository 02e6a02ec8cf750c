package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// crudCase describes one resource of /api/v1 for the create, list, get, update, delete walk.
type crudCase struct {
	plural string
	prefix string // of its ids
	// body is a valid create body; i tells apart rows that must be unique.
	body func(i int) map[string]any
	// writeOnly fields of the body are accepted but never answered (secrets).
	writeOnly []string
	// patch changes some fields; everything else must keep its value.
	patch map[string]any
	// typedPatch: the PATCH body is a request type of its own, so that id, tenant_id and
	// created_at are unknown fields (422) rather than ignored.
	typedPatch bool
	// shownOnce is a field the create answer holds and nothing else ever does (a key's
	// secret), with the prefixes it may have.
	shownOnce string
	// revokes: DELETE marks the row revoked and keeps it (API keys).
	revokes bool
	// global: the rows are not owned by a tenant (tenants themselves).
	global bool
}

func validGraph() map[string]any {
	return map[string]any{
		"start": "greet",
		"nodes": []any{
			map[string]any{"id": "greet", "type": "say", "text": "Hello, press 1 for sales."},
			map[string]any{"id": "menu", "type": "gather", "input": "dtmf", "max_digits": 1},
			map[string]any{"id": "bye", "type": "hangup"},
		},
		"edges": []any{
			map[string]any{"from": "greet", "to": "menu", "when": nil},
			map[string]any{"from": "menu", "to": "bye", "when": map[string]any{"dtmf": "1"}},
		},
	}
}

func fullAgent(i int) map[string]any {
	return map[string]any{
		"name": fmt.Sprintf("Front desk %d", i), "instructions": "Answer briefly.", "first_message": "Hello!",
		"language": "en", "model": "openai/gpt-4o-mini", "temperature": 0.7,
		"voice":              map[string]any{"provider": "espeak", "voice": "en-us", "speed": 1.0},
		"transcriber":        map[string]any{"provider": "openai", "model": "whisper-1"},
		"tool_ids":           []any{},
		"knowledge_base_ids": []any{},
		"transfer_targets":   []any{"+15551230000", "sip:desk@pbx.example.com"},
		"workflow_id":        nil,
		"limits":             map[string]any{"max_duration_s": 1800, "idle_timeout_s": 30},
		"turn":               map[string]any{"endpointing_ms": 600, "interruptions": true, "min_interruption_ms": 250},
		"metadata":           map[string]any{"team": "support"},
	}
}

var crudCases = []crudCase{
	{plural: "agents", prefix: "agt_", body: fullAgent,
		patch: map[string]any{"name": "Reception", "temperature": 1.1, "metadata": map[string]any{"floor": 2.0}}},
	{plural: "workflows", prefix: "wf_",
		body: func(i int) map[string]any {
			return map[string]any{"name": fmt.Sprintf("menu %d", i), "description": "IVR", "graph": validGraph(), "metadata": map[string]any{}}
		},
		patch: map[string]any{"description": "Main menu"}},
	{plural: "tools", prefix: "tool_",
		body: func(i int) map[string]any {
			return map[string]any{
				"name": fmt.Sprintf("lookup_order_%d", i), "description": "Finds an order",
				"parameters": map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string", "description": "Order number"}}, "required": []any{"id"}},
				"webhook":    map[string]any{"url": "https://example.com/orders", "method": "POST", "headers": map[string]any{"X-Token": "t"}, "timeout_ms": 5000},
			}
		},
		patch: map[string]any{"description": "Looks up an order by number"}},
	{plural: "knowledge-bases", prefix: "kb_",
		body: func(i int) map[string]any {
			return map[string]any{"name": fmt.Sprintf("faq %d", i), "description": "Questions callers ask", "chunk_size": 800, "chunk_overlap": 100, "embedding_model": ""}
		},
		patch: map[string]any{"description": "Frequently asked"}},
	{plural: "phone-numbers", prefix: "pn_",
		body: func(i int) map[string]any {
			return map[string]any{"number": fmt.Sprintf("+1415555%04d", i), "name": "Main", "destination": "echo", "metadata": map[string]any{}}
		},
		patch: map[string]any{"name": "Main line"}},
	{plural: "trunks", prefix: "trk_",
		body: func(i int) map[string]any {
			return map[string]any{
				"name": fmt.Sprintf("carrier %d", i), "direction": "both",
				"inbound":  map[string]any{"allowed_cidrs": []any{"203.0.113.0/24", "198.51.100.7"}, "username": "in", "password": "inbound-secret"},
				"outbound": map[string]any{"address": "sip.example.com:5060", "transport": "udp", "username": "out", "password": "outbound-secret", "caller_id": "+14155550100", "register": true},
			}
		},
		writeOnly: []string{"inbound.password", "outbound.password"},
		patch:     map[string]any{"name": "carrier renamed"}},
	{plural: "users", prefix: "usr_",
		body: func(i int) map[string]any {
			return map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "name": "User", "password": "correct horse battery", "scopes": []any{"read", "write"}}
		},
		writeOnly: []string{"password"},
		patch:     map[string]any{"name": "Ops"}},
	{plural: "keys", prefix: "key_",
		body: func(i int) map[string]any {
			return map[string]any{"name": fmt.Sprintf("ci %d", i), "scopes": []any{"read"}, "rate_limit": 50}
		},
		patch: map[string]any{"name": "renamed"}, typedPatch: true, revokes: true, shownOnce: "key"},
	{plural: "tenants", prefix: "ten_",
		body: func(i int) map[string]any {
			return map[string]any{"slug": fmt.Sprintf("acme-%d", i), "name": "Acme", "metadata": map[string]any{"plan": "pro"}}
		},
		patch: map[string]any{"name": "Acme Corp"}, typedPatch: true, global: true},
}

// TestResourceCRUD walks every resource through create, list (pages), get, PATCH and delete.
func TestResourceCRUD(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		for _, c := range crudCases {
			t.Run(c.plural, func(t *testing.T) { checkCRUD(t, ts.with(t), c) })
		}
	})
}

func checkCRUD(t *testing.T, ts *testServer, c crudCase) {
	path := "/api/v1/" + c.plural
	before := ts.total(path, ts.Key)

	// Create: 201, an id of the right kind, the tenant of the key, and what was sent.
	var ids []string
	var created []map[string]any
	for i := range 3 {
		body := c.body(i)
		r := ts.do(http.MethodPost, path, ts.Key, body)
		wantStatus(t, r, http.StatusCreated, "create")
		m := r.JSON(t)
		id, _ := m["id"].(string)
		if !strings.HasPrefix(id, c.prefix) {
			t.Fatalf("created id %q, want prefix %q", id, c.prefix)
		}
		if !c.global && m["tenant_id"] != ts.Default.ID {
			t.Fatalf("tenant_id %v, want %s", m["tenant_id"], ts.Default.ID)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["created_at"])); err != nil {
			t.Fatalf("created_at %v: %v", m["created_at"], err)
		}
		for _, f := range c.writeOnly {
			if v := lookup(m, f); v != nil {
				t.Fatalf("write-only %s answered: %v", f, v)
			}
			deletePath(body, f)
		}
		if c.shownOnce != "" {
			if secret, _ := m[c.shownOnce].(string); !strings.HasPrefix(secret, "as_live_") {
				t.Fatalf("create answer %s = %q, want an as_live_ key", c.shownOnce, secret)
			}
			delete(m, c.shownOnce)
		}
		if err := subset(normalize(t, body), m, ""); err != nil {
			t.Fatalf("created %s does not hold what was sent: %v\n%s", c.plural, err, r.Body)
		}
		ids = append(ids, id)
		created = append(created, m)
	}

	// List: the envelope, the default page, pages that add up, newest first.
	p := ts.list(path, ts.Key)
	if *p.Total != before+3 || *p.Limit != 20 || *p.Offset != 0 {
		t.Fatalf("list: total/limit/offset %d/%d/%d, want %d/20/0", *p.Total, *p.Limit, *p.Offset, before+3)
	}
	first := ts.list(path+"?limit=2&offset=0", ts.Key)
	if len(first.Items) != 2 || first.Items[0]["id"] != ids[2] || first.Items[1]["id"] != ids[1] {
		t.Fatalf("first page of 2 is not the two newest: %v", first.Items)
	}
	second := ts.list(path+"?limit=2&offset=2", ts.Key)
	if len(second.Items) != min(2, before+1) || second.Items[0]["id"] != ids[0] {
		t.Fatalf("second page: %v", second.Items)
	}
	all := ts.allIDs(path, ts.Key)
	seen := map[string]bool{}
	for _, id := range all {
		if seen[id] {
			t.Fatalf("pages repeat %s", id)
		}
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("pages miss %s", id)
		}
	}
	far := ts.list(path+"?offset=1000", ts.Key)
	if len(far.Items) != 0 || *far.Total != before+3 {
		t.Fatalf("page past the end: %d items, total %d", len(far.Items), *far.Total)
	}
	for _, q := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=101", "limit"}, {"limit=ten", "limit"}, {"offset=-1", "offset"}, {"offset=x", "offset"},
	} {
		wantError(t, ts.do(http.MethodGet, path+"?"+q.query, ts.Key, nil), http.StatusUnprocessableEntity, "validation_error", q.field)
	}

	// Get: exactly what create answered.
	got := ts.get(path+"/"+ids[0], ts.Key)
	if !reflect.DeepEqual(got, created[0]) {
		t.Fatalf("get differs from create:\n%v\n%v", got, created[0])
	}

	// PATCH: the named fields change, everything else keeps its value, and identity and
	// creation time cannot be changed by a body.
	item := path + "/" + ids[0]
	forged := map[string]any{"id": c.prefix + strings.Repeat("0", 26), "tenant_id": "ten_" + strings.Repeat("1", 26), "created_at": "2000-01-01T00:00:00Z"}
	if c.typedPatch {
		for f, v := range forged {
			wantError(t, ts.do(http.MethodPatch, item, ts.Key, map[string]any{f: v}), http.StatusUnprocessableEntity, "validation_error", f)
		}
		if now := ts.get(item, ts.Key); !reflect.DeepEqual(now, got) {
			t.Fatalf("a refused PATCH changed the row:\n%v\n%v", now, got)
		}
	}
	body := map[string]any{}
	for k, v := range c.patch {
		body[k] = v
	}
	if !c.typedPatch {
		for k, v := range forged {
			body[k] = v
		}
	}
	r := ts.do(http.MethodPatch, item, ts.Key, body)
	wantStatus(t, r, http.StatusOK, "patch")
	patched := r.JSON(t)
	for k, v := range got {
		switch _, changed := c.patch[k]; {
		case changed:
			if err := subset(normalize(t, c.patch[k]), patched[k], k); err != nil {
				t.Fatalf("PATCH did not set %s: %v", k, err)
			}
		case k == "updated_at":
			b, _ := time.Parse(time.RFC3339Nano, v.(string))
			a, err := time.Parse(time.RFC3339Nano, fmt.Sprint(patched[k]))
			if err != nil || a.Before(b) {
				t.Fatalf("updated_at went from %v to %v", v, patched[k])
			}
		default:
			if !reflect.DeepEqual(v, patched[k]) {
				t.Fatalf("PATCH changed %s, which it did not name: %v -> %v", k, v, patched[k])
			}
		}
	}
	if now := ts.get(item, ts.Key); !reflect.DeepEqual(now, patched) {
		t.Fatalf("get after PATCH differs from the PATCH answer:\n%v\n%v", now, patched)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(patched["updated_at"])); err != nil {
		t.Fatal(err)
	}

	// Delete: 204 with no body, then the row is gone (or, for keys, revoked and kept).
	r = ts.do(http.MethodDelete, item, ts.Key, nil)
	wantStatus(t, r, http.StatusNoContent, "delete")
	if len(r.Body) != 0 {
		t.Fatalf("204 with a body: %s", r.Body)
	}
	if c.revokes {
		k := ts.get(item, ts.Key)
		if k["revoked_at"] == nil {
			t.Fatalf("deleted key is not revoked: %v", k)
		}
		if n := ts.total(path, ts.Key); n != before+3 {
			t.Fatalf("revoked key left the list: total %d, want %d", n, before+3)
		}
		return
	}
	wantError(t, ts.do(http.MethodGet, item, ts.Key, nil), http.StatusNotFound, "not_found", "")
	wantError(t, ts.do(http.MethodDelete, item, ts.Key, nil), http.StatusNotFound, "not_found", "")
	wantError(t, ts.do(http.MethodPatch, item, ts.Key, c.patch), http.StatusNotFound, "not_found", "")
	if n := ts.total(path, ts.Key); n != before+2 {
		t.Fatalf("total after delete %d, want %d", n, before+2)
	}
	for _, id := range ids[1:] {
		ts.get(path+"/"+id, ts.Key)
	}
}

// TestPatchKeepsNestedFields: a PATCH of one field of a nested object keeps its siblings, a
// PATCH that fails validation changes nothing, and a PATCH may clear a reference.
func TestPatchKeepsNestedFields(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		wf := ts.createID("/api/v1/workflows", ts.Key, map[string]any{"name": "menu", "graph": validGraph()})
		body := fullAgent(0)
		body["workflow_id"] = wf
		id := ts.createID("/api/v1/agents", ts.Key, body)
		item := "/api/v1/agents/" + id

		r := ts.do(http.MethodPatch, item, ts.Key, `{"voice":{"speed":1.5},"turn":{"interruptions":false}}`)
		wantStatus(t, r, http.StatusOK, "patch")
		a := r.JSON(t)
		voice, turn := a["voice"].(map[string]any), a["turn"].(map[string]any)
		if voice["speed"] != 1.5 || voice["provider"] != "espeak" || voice["voice"] != "en-us" {
			t.Fatalf("voice after PATCH of speed: %v", voice)
		}
		if turn["interruptions"] != false || turn["endpointing_ms"] != 600.0 || turn["min_interruption_ms"] != 250.0 {
			t.Fatalf("turn after PATCH of interruptions: %v", turn)
		}
		if a["workflow_id"] != wf || a["first_message"] != "Hello!" {
			t.Fatalf("PATCH lost fields: %v", a)
		}

		for _, c := range []struct {
			body  string
			field string
		}{
			{`{"temperature":3}`, "temperature"},
			{`{"voice":{"speed":0}}`, "voice.speed"},
			{`{"model":"gpt-4o"}`, "model"},
			{`{"tool_ids":["tool_00000000000000000000000000"]}`, "tool_ids[0]"},
			{`{"name":""}`, "name"},
		} {
			wantError(t, ts.do(http.MethodPatch, item, ts.Key, c.body), http.StatusUnprocessableEntity, "validation_error", c.field)
			if now := ts.get(item, ts.Key); !reflect.DeepEqual(now, a) {
				t.Fatalf("refused PATCH %s changed the agent:\n%v\n%v", c.body, now, a)
			}
		}

		r = ts.do(http.MethodPatch, item, ts.Key, `{"workflow_id":null,"metadata":{"x":"y"}}`)
		wantStatus(t, r, http.StatusOK, "clear workflow")
		a = r.JSON(t)
		if a["workflow_id"] != nil || !reflect.DeepEqual(a["metadata"], map[string]any{"x": "y"}) {
			t.Fatalf("workflow_id not cleared or metadata merged rather than replaced: %v %v", a["workflow_id"], a["metadata"])
		}
		// Now nothing uses the workflow: it may go.
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/workflows/"+wf, ts.Key, nil), http.StatusNoContent, "delete workflow")
	})
}

// TestTrunkPasswordsAreWriteOnly: trunk passwords are taken, kept across a PATCH that leaves
// them out, and never answered.
func TestTrunkPasswordsAreWriteOnly(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		r := ts.do(http.MethodPost, "/api/v1/trunks", ts.Key, map[string]any{
			"name": "pbx", "inbound": map[string]any{"username": "pbx", "password": "s3cret-in"},
		})
		wantStatus(t, r, http.StatusCreated, "create")
		if strings.Contains(string(r.Body), "s3cret") || strings.Contains(string(r.Body), "password_enc") {
			t.Fatalf("create answers the password: %s", r.Body)
		}
		tr := r.JSON(t)
		item := "/api/v1/trunks/" + tr["id"].(string)
		if tr["inbound"].(map[string]any)["has_password"] != true {
			t.Fatalf("has_password not set: %s", r.Body)
		}
		r = ts.do(http.MethodPatch, item, ts.Key, `{"name":"pbx 2","inbound":{"username":"pbx","has_password":false}}`)
		wantStatus(t, r, http.StatusOK, "patch")
		if r.JSON(t)["inbound"].(map[string]any)["has_password"] != true {
			t.Fatalf("PATCH without a password dropped it: %s", r.Body)
		}
		r = ts.do(http.MethodGet, item, ts.Key, nil)
		if strings.Contains(string(r.Body), "s3cret") {
			t.Fatalf("get answers the password: %s", r.Body)
		}
		// What is stored is sealed, and opens to the password first sent.
		stored, err := store.Get[store.Trunk](t.Context(), ts.Store, ts.Default.ID, tr["id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored.InboundPasswordEnc, "s3cret") {
			t.Fatalf("password stored in the clear: %q", stored.InboundPasswordEnc)
		}
		if in, _, err := stored.Passwords(ts.Store); err != nil || in != "s3cret-in" {
			t.Fatalf("stored password opens to %q, %v", in, err)
		}
	})
}

// TestUserPasswordChange: users are admin-only, never answer their password or its hash, and a
// PATCH of the password changes what logs in.
func TestUserPasswordChange(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		writer := ts.newKey("default", "writer", 0, "read", "write")
		wantError(t, ts.do(http.MethodGet, "/api/v1/users", writer, nil), http.StatusForbidden, "authorization_error", "")
		wantError(t, ts.do(http.MethodPost, "/api/v1/users", writer, map[string]any{"email": "x@example.com", "password": "correct horse"}), http.StatusForbidden, "authorization_error", "")

		r := ts.do(http.MethodPost, "/api/v1/users", ts.Key, map[string]any{"email": "Ops@Example.COM", "password": "first password"})
		wantStatus(t, r, http.StatusCreated, "create user")
		for _, secret := range []string{"first password", "password_hash", `"password"`, "$2a$"} {
			if strings.Contains(string(r.Body), secret) {
				t.Fatalf("user answer holds %q: %s", secret, r.Body)
			}
		}
		u := r.JSON(t)
		if u["email"] != "ops@example.com" || !reflect.DeepEqual(u["scopes"], []any{"read", "write"}) {
			t.Fatalf("email not normalised or default scopes wrong: %s", r.Body)
		}
		login := func(pw string) int {
			return ts.do(http.MethodPost, "/api/v1/auth/login", "", map[string]any{"email": "ops@example.com", "password": pw}).Status
		}
		if s := login("first password"); s != http.StatusOK {
			t.Fatalf("login: %d", s)
		}
		wantStatus(t, ts.do(http.MethodPatch, "/api/v1/users/"+u["id"].(string), ts.Key, `{"password":"second password"}`), http.StatusOK, "change password")
		if s := login("first password"); s != http.StatusUnauthorized {
			t.Fatalf("old password after change: %d", s)
		}
		if s := login("second password"); s != http.StatusOK {
			t.Fatalf("new password: %d", s)
		}
		// A PATCH without a password keeps it.
		wantStatus(t, ts.do(http.MethodPatch, "/api/v1/users/"+u["id"].(string), ts.Key, `{"name":"Ops"}`), http.StatusOK, "rename")
		if s := login("second password"); s != http.StatusOK {
			t.Fatalf("password lost by a rename: %d", s)
		}
	})
}

// lookup follows a dotted path through nested objects.
func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

func deletePath(m map[string]any, path string) {
	parts := strings.Split(path, ".")
	for _, part := range parts[:len(parts)-1] {
		next, ok := m[part].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, parts[len(parts)-1])
}

// normalize turns a Go value into what JSON decoding would make of it.
func normalize(t testing.TB, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// subset reports where got does not hold want: every key of a wanted object must be in got
// with a value that holds the wanted one; arrays match element by element; other values are
// equal.
func subset(want, got any, at string) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %v, want an object", at, got)
		}
		for k, v := range w {
			if err := subset(v, g[k], strings.TrimPrefix(at+"."+k, ".")); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: got %v, want %v", at, got, want)
		}
		for i := range w {
			if err := subset(w[i], g[i], fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Errorf("%s: got %v, want %v", at, got, want)
		}
	}
	return nil
}

// TestPatchReplacesArrays: an array in a PATCH body is taken as sent, element by element; an
// element does not inherit fields of the element stored at its index. Free-form objects
// (metadata, parameters, webhook headers) are taken as sent too.
func TestPatchReplacesArrays(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		wf := ts.create("/api/v1/workflows", ts.Key, obj{"name": "menu", "graph": validGraph()})
		item := "/api/v1/workflows/" + wf["id"].(string)
		newGraph := obj{
			"start": "ask",
			"nodes": arr{obj{"id": "ask", "type": "llm", "instructions": "Help"}, obj{"id": "end", "type": "hangup"}},
			"edges": arr{obj{"from": "ask", "to": "end"}},
		}
		r := ts.do(http.MethodPatch, item, ts.Key, obj{"graph": newGraph})
		wantStatus(t, r, http.StatusOK, "replace graph")
		want := normalize(t, obj{
			"start": "ask",
			"nodes": arr{obj{"id": "ask", "type": "llm", "instructions": "Help"}, obj{"id": "end", "type": "hangup"}},
			"edges": arr{obj{"from": "ask", "to": "end", "when": nil}},
		})
		for _, got := range []any{r.JSON(t)["graph"], ts.get(item, ts.Key)["graph"]} {
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("graph after PATCH:\n got %v\nwant %v", got, want)
			}
		}

		tool := ts.create("/api/v1/tools", ts.Key, obj{"name": "t", "webhook": obj{"url": "https://example.com/x", "headers": obj{"A": "1"}}})
		r = ts.do(http.MethodPatch, "/api/v1/tools/"+tool["id"].(string), ts.Key, obj{"webhook": obj{"headers": obj{"B": "2"}}})
		wantStatus(t, r, http.StatusOK, "replace headers")
		hook := r.JSON(t)["webhook"].(map[string]any)
		if !reflect.DeepEqual(hook["headers"], map[string]any{"B": "2"}) || hook["url"] != "https://example.com/x" {
			t.Fatalf("webhook after PATCH of headers: %v", hook)
		}
	})
}
