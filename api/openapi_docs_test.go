package api_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// docServer is a server with every optional surface on (event streams, runtime profiles),
// so that its document holds every route a node can serve.
func docServer(t *testing.T) *testServer {
	t.Helper()
	streams := realtime.NewServer(realtime.NewHub(realtime.Options{}), nil, realtime.Limits{}, nil)
	return newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret},
		api.Config{Pprof: true, Streams: streams, DefaultRateLimit: 1_000_000})
}

// TestOpenAPITeaches: every operation of the document has a short summary and a description,
// an example of its request body when it takes one and of its answer when it has one, and
// each example is valid against the operation's own schema: a request example sends no
// read-only field and every required one, an answer shows no write-only field. A route
// added without docs (api/openapi_docs.go) fails here, naming it.
func TestOpenAPITeaches(t *testing.T) {
	t.Parallel()
	ts := docServer(t)
	raw := ts.do(http.MethodGet, "/openapi.json", "", nil)
	wantStatus(t, raw, http.StatusOK, "openapi.json")
	var doc map[string]any
	if err := json.Unmarshal(raw.Body, &doc); err != nil {
		t.Fatal(err)
	}
	v := &exampleValidator{doc: doc}
	paths := doc["paths"].(map[string]any)
	var undocumented, problems []string
	ops := 0
	usedTags := map[string]bool{}
	for _, path := range sortedKeys(paths) {
		methods := paths[path].(map[string]any)
		for _, method := range sortedKeys(methods) {
			ops++
			op := methods[method].(map[string]any)
			name := strings.ToUpper(method) + " " + path
			for _, tag := range asStrings(op["tags"]) {
				usedTags[tag] = true
			}
			summary, _ := op["summary"].(string)
			desc, _ := op["description"].(string)
			if strings.TrimSpace(desc) == "" {
				undocumented = append(undocumented, name)
				continue
			}
			if summary == "" || len(summary) > 60 || strings.HasSuffix(summary, ".") {
				problems = append(problems, fmt.Sprintf("%s: summary %q: want a short phrase (at most 60 characters, no full stop)", name, summary))
			}
			if body, ok := op["requestBody"].(map[string]any); ok {
				for ct, m := range body["content"].(map[string]any) {
					media := m.(map[string]any)
					ex, ok := media["example"]
					if !ok {
						problems = append(problems, fmt.Sprintf("%s: no example of its %s request", name, ct))
						continue
					}
					for _, e := range v.check(media["schema"], ex, "request") {
						problems = append(problems, fmt.Sprintf("%s: request example: %s", name, e))
					}
					for _, e := range v.requiredReadOnly(media["schema"], "request") {
						problems = append(problems, fmt.Sprintf("%s: %s", name, e))
					}
				}
			}
			for status, r := range op["responses"].(map[string]any) {
				resp := r.(map[string]any)
				if _, ref := resp["$ref"]; ref || status[0] != '2' && status[0] != '1' {
					continue
				}
				content, _ := resp["content"].(map[string]any)
				for ct, m := range content {
					media := m.(map[string]any)
					ex, ok := media["example"]
					if !ok {
						// Audio is shown by playing it, not as text.
						if s, _ := media["schema"].(map[string]any); strings.HasPrefix(fmt.Sprint(s["contentMediaType"]), "audio/") {
							continue
						}
						problems = append(problems, fmt.Sprintf("%s: no example of its %s %s answer", name, status, ct))
						continue
					}
					for _, e := range v.check(media["schema"], ex, "answer") {
						problems = append(problems, fmt.Sprintf("%s: answer example: %s", name, e))
					}
				}
			}
		}
	}
	if len(undocumented) > 0 {
		t.Errorf("%d operations have no description (add them to operationDocs in api/openapi_docs.go):\n  %s", len(undocumented), strings.Join(undocumented, "\n  "))
	}
	if len(problems) > 0 {
		t.Errorf("%d problems:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	if ops < 100 {
		t.Fatalf("only %d operations in the document", ops)
	}
	// The shared error answers teach their shapes too, each surface's its own.
	errResps := doc["components"].(map[string]any)["responses"].(map[string]any)
	for _, name := range sortedKeys(errResps) {
		media := errResps[name].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)
		if ex, ok := media["example"]; !ok {
			t.Errorf("the %s answer has no example", name)
		} else if errs := v.check(media["schema"], ex, "answer"); len(errs) > 0 {
			t.Errorf("the %s example: %v", name, errs)
		}
	}
	// The introductions of the groups name groups that exist.
	for _, tag := range asAnys(doc["tags"]) {
		tag := tag.(map[string]any)
		if !usedTags[fmt.Sprint(tag["name"])] || tag["description"] == "" {
			t.Errorf("tag %v introduces no operation, or says nothing", tag)
		}
	}
	// Docs written for a route that is gone are found.
	for _, op := range api.DocumentedOperations() {
		method, path, _ := strings.Cut(op, " ")
		if _, ok := paths[path].(map[string]any)[strings.ToLower(method)]; !ok {
			t.Errorf("operationDocs has %q, which is not a route", op)
		}
	}
}

// TestOpenAPISchemasStateTheRules: identity and times are read-only, the fields a create
// refuses without are required, enums and the defaults of a new agent are stated, and a
// PATCH body requires nothing.
func TestOpenAPISchemasStateTheRules(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, store.SQLite)
	var doc map[string]any
	if err := json.Unmarshal(ts.do(http.MethodGet, "/openapi.json", "", nil).Body, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	prop := func(schema, field string) map[string]any {
		t.Helper()
		s, _ := schemas[schema].(map[string]any)
		p, _ := s["properties"].(map[string]any)[field].(map[string]any)
		if p == nil {
			t.Fatalf("%s has no %s", schema, field)
		}
		return p
	}
	for _, schema := range []string{"Agent", "Tool", "PhoneNumber", "Trunk", "Workflow", "User", "APIKey", "KnowledgeBase", "Call", "WebhookDelivery", "SessionOut", "Deployment"} {
		for _, f := range []string{"id", "created_at"} {
			if prop(schema, f)["readOnly"] != true {
				t.Errorf("%s.%s is not readOnly", schema, f)
			}
		}
	}
	for _, f := range []string{"tenant_id", "updated_at"} {
		if prop("Agent", f)["readOnly"] != true {
			t.Errorf("Agent.%s is not readOnly", f)
		}
	}
	if prop("User", "password")["writeOnly"] != true || prop("Trunk", "registration")["readOnly"] != true {
		t.Error("User.password is not writeOnly or Trunk.registration not readOnly")
	}
	for schema, want := range map[string][]string{
		"Agent": {"name"}, "Tool": {"name", "webhook"}, "PhoneNumber": {"number"}, "User": {"email", "password"},
		"CallRequest": {"to"}, "LoginRequest": {"email", "password"}, "KeyCreateRequest": {"name"},
	} {
		var got []string
		for _, r := range schemas[schema].(map[string]any)["required"].([]any) {
			got = append(got, r.(string))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s requires %v, want %v", schema, got, want)
		}
	}
	enum := func(p map[string]any) []any {
		if e, ok := p["enum"].([]any); ok {
			return e
		}
		return nil
	}
	if e := enum(prop("Call", "status")); !slices.Contains(e, any("in-progress")) || !slices.Contains(e, any("completed")) {
		t.Errorf("Call.status enum %v", e)
	}
	if e := enum(prop("Call", "direction")); len(e) != 3 {
		t.Errorf("Call.direction enum %v", e)
	}
	if e := enum(prop("Trunk", "srtp")); len(e) != 3 || prop("Trunk", "srtp")["default"] != "off" {
		t.Errorf("Trunk.srtp: %v", prop("Trunk", "srtp"))
	}
	if prop("Agent", "model")["default"] != "openai/gpt-4o-mini" || prop("Agent", "temperature")["default"] != 0.7 || prop("Agent", "language")["default"] != "en" {
		t.Errorf("Agent defaults: model %v, temperature %v, language %v", prop("Agent", "model")["default"], prop("Agent", "temperature")["default"], prop("Agent", "language")["default"])
	}
	if voice, _ := prop("Agent", "voice")["default"].(map[string]any); voice["provider"] != "espeak" {
		t.Errorf("Agent.voice default %v", voice)
	}
	// PATCH takes any subset.
	patch := doc["paths"].(map[string]any)["/api/v1/agents/{id}"].(map[string]any)["patch"].(map[string]any)
	ref := patch["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["$ref"].(string)
	update := schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
	if _, req := update["required"]; req || update["properties"] == nil {
		t.Errorf("the PATCH body of an agent is %s: %v", ref, update)
	}
	// Bodies kept as the client sent them are any JSON, not bytes.
	if s := prop("WebhookDelivery", "payload"); s["type"] != nil {
		t.Errorf("WebhookDelivery.payload: %v", s)
	}
}

// exampleValidator checks an example against the subset of JSON Schema (2020-12) the
// document's generator emits: $ref, anyOf, type, properties, required, additionalProperties,
// items, enum, readOnly, writeOnly and the date-time format. Objects are closed: a property
// the schema does not name is an error, so that a misspelt field in an example is caught.
type exampleValidator struct {
	doc map[string]any
}

func (v *exampleValidator) resolve(s any) map[string]any {
	m, _ := s.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		target := any(v.doc)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			target = target.(map[string]any)[part]
		}
		// Siblings of $ref (readOnly, default) apply as well.
		merged := map[string]any{}
		for k, x := range target.(map[string]any) {
			merged[k] = x
		}
		for k, x := range m {
			if k != "$ref" {
				merged[k] = x
			}
		}
		m = merged
	}
	return m
}

// check returns what is wrong with value as an instance of schema, in a request or an
// answer (required fields apply to requests).
func (v *exampleValidator) check(schema, value any, dir string) []string {
	return v.walk(schema, value, "$", dir)
}

func (v *exampleValidator) walk(schema, value any, at, dir string) []string {
	s := v.resolve(schema)
	if s == nil {
		return []string{at + ": no schema"}
	}
	var errs []string
	if dir == "request" && s["readOnly"] == true {
		errs = append(errs, at+": read-only, yet in a request")
	}
	if dir == "answer" && s["writeOnly"] == true {
		errs = append(errs, at+": write-only, yet in an answer")
	}
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(value) {
		errs = append(errs, fmt.Sprintf("%s: %v is not %v", at, value, c))
	}
	// A list of types is any of them; oneOf is checked as anyOf (an example matching two
	// alternatives is still an instance).
	if types, ok := s["type"].([]any); ok {
		alts := make([]any, len(types))
		for i, ty := range types {
			alt := map[string]any{}
			for k, x := range s {
				alt[k] = x
			}
			alt["type"] = ty
			alts[i] = alt
		}
		s = map[string]any{"anyOf": alts}
	}
	alts, ok := s["anyOf"].([]any)
	if !ok {
		alts, ok = s["oneOf"].([]any)
	}
	if ok {
		var best []string
		for _, alt := range alts {
			e := v.walk(alt, value, at, dir)
			if len(e) == 0 {
				return errs
			}
			if best == nil || len(e) < len(best) {
				best = e
			}
		}
		return append(errs, best...)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(value) }) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, value, enum))
	}
	switch s["type"] {
	case nil:
		return errs
	case "null":
		if value != nil {
			errs = append(errs, at+": want null")
		}
	case "string":
		str, ok := value.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %v is not a string", at, value))
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not an RFC 3339 time", at, str))
			}
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: %v is not a boolean", at, value))
		}
	case "number", "integer":
		n, ok := value.(float64)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %v is not a number", at, value))
		}
		if s["type"] == "integer" && n != math.Trunc(n) {
			errs = append(errs, fmt.Sprintf("%s: %v is not an integer", at, value))
		}
	case "array":
		arr, ok := value.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %v is not an array", at, value))
		}
		for i, x := range arr {
			errs = append(errs, v.walk(s["items"], x, fmt.Sprintf("%s[%d]", at, i), dir)...)
		}
	case "object":
		obj, ok := value.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %v is not an object", at, value))
		}
		props, _ := s["properties"].(map[string]any)
		if dir == "request" {
			for _, r := range asStrings(s["required"]) {
				if _, ok := obj[r]; !ok {
					errs = append(errs, fmt.Sprintf("%s: lacks the required %s", at, r))
				}
			}
		}
		for _, k := range sortedKeys(obj) {
			if p, ok := props[k]; ok {
				errs = append(errs, v.walk(p, obj[k], at+"."+k, dir)...)
			} else if extra, ok := s["additionalProperties"]; ok {
				errs = append(errs, v.walk(extra, obj[k], at+"."+k, dir)...)
			} else {
				errs = append(errs, fmt.Sprintf("%s: %s is not a field of the schema", at, k))
			}
		}
	default:
		errs = append(errs, fmt.Sprintf("%s: the validator does not know type %v", at, s["type"]))
	}
	return errs
}

// requiredReadOnly finds read-only fields listed as required in any object a request body
// holds: a client cannot send what the server alone sets.
func (v *exampleValidator) requiredReadOnly(schema any, at string) []string {
	seen := map[string]bool{}
	var errs []string
	var walk func(s any, at string)
	walk = func(s any, at string) {
		m, _ := s.(map[string]any)
		if m == nil {
			return
		}
		if ref, ok := m["$ref"].(string); ok {
			if seen[ref] {
				return
			}
			seen[ref] = true
		}
		r := v.resolve(m)
		props, _ := r["properties"].(map[string]any)
		for _, name := range asStrings(r["required"]) {
			if p := v.resolve(props[name]); p["readOnly"] == true {
				errs = append(errs, fmt.Sprintf("%s.%s is read-only and required", at, name))
			}
		}
		for _, k := range sortedKeys(props) {
			walk(props[k], at+"."+k)
		}
		walk(r["items"], at+"[]")
		walk(r["additionalProperties"], at+"{}")
		for _, alt := range asAnys(r["anyOf"]) {
			walk(alt, at)
		}
	}
	walk(schema, at)
	return errs
}

func asStrings(v any) []string {
	var out []string
	for _, x := range asAnys(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asAnys(v any) []any {
	a, _ := v.([]any)
	return a
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestExampleValidatorCatches: the validator of the document's examples finds what a wrong
// example would hold, so that TestOpenAPITeaches passing means the examples are right.
func TestExampleValidatorCatches(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, store.SQLite)
	var doc map[string]any
	if err := json.Unmarshal(ts.do(http.MethodGet, "/openapi.json", "", nil).Body, &doc); err != nil {
		t.Fatal(err)
	}
	v := &exampleValidator{doc: doc}
	ref := func(name string) any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	for _, c := range []struct {
		schema, dir, example, want string
	}{
		{"Agent", "request", `{"name":"Front desk","id":"agt_01m98eg3ffzx45hy43kwjrp1xp"}`, "read-only"},
		{"Agent", "request", `{"name":"Front desk","temperature":"warm"}`, "not a number"},
		{"Agent", "request", `{"title":"Front desk"}`, "lacks the required name"},
		{"Agent", "request", `{"name":"Front desk","voice":{"provider":"espeak","pitch":2}}`, "pitch is not a field"},
		{"Agent", "request", `{"name":"Front desk","knowledge":{"mode":"sometimes"}}`, "not one of"},
		{"Agent", "answer", `{"created_at":"yesterday"}`, "not an RFC 3339 time"},
		{"Call", "answer", `{"status":"ringing-ish"}`, "not one of"},
		{"Call", "answer", `{"turns":1.5}`, "not an integer"},
		{"User", "answer", `{"email":"dana@acme-dental.example","password":"hunter2"}`, "write-only"},
		{"AgentList", "answer", `{"items":{"name":"Front desk"}}`, "not an array"},
	} {
		var ex any
		if err := json.Unmarshal([]byte(c.example), &ex); err != nil {
			t.Fatal(err)
		}
		errs := strings.Join(v.check(ref(c.schema), ex, c.dir), "; ")
		if !strings.Contains(errs, c.want) {
			t.Errorf("%s %s %s: %q, want it to say %q", c.dir, c.schema, c.example, errs, c.want)
		}
	}
	if errs := v.check(ref("Agent"), map[string]any{"name": "Front desk", "voice": map[string]any{"voice": "en-gb"}}, "request"); len(errs) > 0 {
		t.Errorf("a good agent: %v", errs)
	}
}

// TestOpenAPIExamplesAreReal: the document's request examples of the resources that need
// nothing made before them are taken by the server as they stand (the documented success),
// and what it answers is valid against the operation's answer schema: the schemas say what
// the server really sends, read-only and write-only included.
func TestOpenAPIExamplesAreReal(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, store.SQLite)
	var doc map[string]any
	if err := json.Unmarshal(ts.do(http.MethodGet, "/openapi.json", "", nil).Body, &doc); err != nil {
		t.Fatal(err)
	}
	v := &exampleValidator{doc: doc}
	paths := doc["paths"].(map[string]any)
	for _, path := range []string{"/api/v1/users", "/api/v1/keys", "/api/v1/tools", "/api/v1/workflows", "/api/v1/trunks", "/api/v1/knowledge-bases"} {
		op := paths[path].(map[string]any)["post"].(map[string]any)
		media := op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)
		body, err := json.Marshal(media["example"])
		if err != nil {
			t.Fatal(err)
		}
		r := ts.do(http.MethodPost, path, ts.Key, string(body))
		wantStatus(t, r, http.StatusCreated, "POST "+path+" with the document's example")
		var got any
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		answer := op["responses"].(map[string]any)["201"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)
		if errs := v.check(answer["schema"], got, "answer"); len(errs) > 0 {
			t.Errorf("POST %s answered what its schema does not describe: %v\n%s", path, errs, r.Body)
		}
		// And the list of them, as GET answers it.
		list := paths[path].(map[string]any)["get"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)
		lr := ts.do(http.MethodGet, path, ts.Key, nil)
		wantStatus(t, lr, http.StatusOK, "GET "+path)
		if err := json.Unmarshal(lr.Body, &got); err != nil {
			t.Fatal(err)
		}
		if errs := v.check(list["schema"], got, "answer"); len(errs) > 0 {
			t.Errorf("GET %s answered what its schema does not describe: %v", path, errs)
		}
	}
}
