package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// canonicalOperations are the operations issue 2 asks of the canonical surface; the document
// must hold each of them.
var canonicalOperations = func() []string {
	ops := []string{
		"GET /", "GET /health", "GET /version", "GET /openapi.json", "GET /docs", "GET /redoc",
		"POST /api/v1/auth/login", "POST /api/v1/auth/refresh", "GET /api/v1/auth/me",
	}
	for _, c := range []string{"tenants", "keys", "users", "agents", "workflows", "tools", "phone-numbers", "trunks"} {
		ops = append(ops, "POST /api/v1/"+c, "GET /api/v1/"+c, "GET /api/v1/"+c+"/{id}", "PATCH /api/v1/"+c+"/{id}", "DELETE /api/v1/"+c+"/{id}")
	}
	return ops
}()

// TestOpenAPIDocument: the document is OpenAPI 3.1 JSON, holds every canonical operation, and
// every $ref in it resolves.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		r := ts.do(http.MethodGet, "/openapi.json", "", nil)
		wantStatus(t, r, http.StatusOK, "openapi.json")
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("Content-Type %q", ct)
		}
		var raw map[string]any
		if err := json.Unmarshal(r.Body, &raw); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if raw["openapi"] != "3.1.0" {
			t.Fatalf("openapi %v, want 3.1.0", raw["openapi"])
		}
		if info, _ := raw["info"].(map[string]any); info["title"] == nil || info["version"] != "test" {
			t.Fatalf("info: %v", raw["info"])
		}
		doc := ts.openAPI()
		var have []string
		opIDs := map[string]string{}
		for _, op := range doc.operations() {
			method, path := op[0], op[1]
			have = append(have, method+" "+path)
			o := doc.Paths[path][strings.ToLower(method)]
			id, _ := o["operationId"].(string)
			if id == "" || o["summary"] == "" || o["responses"] == nil {
				t.Fatalf("%s %s: operation lacks operationId, summary or responses: %v", method, path, o)
			}
			if prev, dup := opIDs[id]; dup {
				t.Fatalf("operationId %q of both %s and %s %s", id, prev, method, path)
			}
			opIDs[id] = method + " " + path
			// Parameters of the path are declared.
			for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
				found := false
				params, _ := o["parameters"].([]any)
				for _, p := range params {
					if p := p.(map[string]any); p["name"] == m[1] && p["in"] == "path" && p["required"] == true {
						found = true
					}
				}
				if !found {
					t.Fatalf("%s %s does not declare path parameter %s", method, path, m[1])
				}
			}
			// Authenticated operations say so.
			if strings.HasPrefix(path, "/api/v1/") && path != "/api/v1/health" && !strings.HasPrefix(path, "/api/v1/auth/login") && !strings.HasPrefix(path, "/api/v1/auth/refresh") {
				if sec, _ := o["security"].([]any); len(sec) == 0 {
					t.Fatalf("%s %s: no security requirement", method, path)
				}
				if _, ok := o["responses"].(map[string]any)["401"]; !ok {
					t.Fatalf("%s %s: no 401 answer documented", method, path)
				}
			}
		}
		for _, want := range canonicalOperations {
			if !slices.Contains(have, want) {
				t.Fatalf("the document lacks %s", want)
			}
		}
		// Every $ref points at something in the document.
		var walk func(v any)
		refs := 0
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if ref, ok := v["$ref"].(string); ok {
					refs++
					target := any(raw)
					for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
						m, _ := target.(map[string]any)
						target = m[part]
					}
					if target == nil {
						t.Fatalf("$ref %s resolves to nothing", ref)
					}
				}
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(raw)
		if refs == 0 {
			t.Fatal("the document has no $ref: schemas are missing")
		}
		// The schemas describe the bodies: an agent has its fields, snake_case.
		agent := raw["components"].(map[string]any)["schemas"].(map[string]any)["Agent"].(map[string]any)["properties"].(map[string]any)
		for _, f := range []string{"id", "tenant_id", "name", "first_message", "voice", "tool_ids", "workflow_id", "turn", "created_at"} {
			if agent[f] == nil {
				t.Fatalf("Agent schema lacks %s: %v", f, agent)
			}
		}
	})
}

// TestOpenAPIMatchesRouter: every documented operation is routed (never the router's 404 or a
// 405), and every other method on a documented path is a 405 whose Allow lists exactly the
// documented methods.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		doc := ts.openAPI()
		if len(doc.Paths) < 20 {
			t.Fatalf("only %d paths documented", len(doc.Paths))
		}
		fill := strings.NewReplacer("{id}", "missing", "{file}", "swagger-ui.css", "{document_id}", "missing")
		for path, methods := range doc.Paths {
			url := fill.Replace(path)
			if strings.Contains(url, "{") {
				t.Fatalf("the walk cannot fill the parameters of %s", path)
			}
			var documented []string
			for m := range methods {
				method := strings.ToUpper(m)
				documented = append(documented, method)
				var body any
				if method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut {
					body = "{}"
				}
				r := ts.do(method, url, ts.Key, body)
				if r.Status == http.StatusMethodNotAllowed || r.Status >= 500 ||
					r.Status == http.StatusNotFound && strings.Contains(string(r.Body), "No such route") {
					t.Fatalf("documented %s %s is not served: %d %s", method, path, r.Status, r.Body)
				}
			}
			if slices.Contains(documented, http.MethodGet) {
				documented = append(documented, http.MethodHead)
			}
			sort.Strings(documented)
			for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
				if slices.Contains(documented, method) {
					continue
				}
				r := ts.do(method, url, ts.Key, nil)
				if r.Status != http.StatusMethodNotAllowed {
					t.Fatalf("undocumented %s %s answers %d, want 405: %s", method, path, r.Status, r.Body)
				}
				if allow := r.Header.Get("Allow"); allow != strings.Join(documented, ", ") {
					t.Fatalf("%s: Allow %q, documented %v", path, allow, documented)
				}
			}
		}
	})
}

var assetRef = regexp.MustCompile(`(?:src|href|spec-url)="([^"]*)"|url:\s*"([^"]*)"|Redoc\.init\("([^"]*)"`)

// TestDocumentationPages: /docs and /redoc are HTML that loads only same-origin assets, and
// those assets are served, non-empty, with the right content type.
func TestDocumentationPages(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		for _, page := range []struct {
			path, marker string
		}{{"/docs", "SwaggerUIBundle"}, {"/redoc", "redoc"}} {
			r := ts.do(http.MethodGet, page.path, "", nil)
			wantStatus(t, r, http.StatusOK, page.path)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("%s: Content-Type %q", page.path, ct)
			}
			html := string(r.Body)
			if !strings.Contains(strings.ToLower(html), "<html") || !strings.Contains(html, page.marker) {
				t.Fatalf("%s is not the documentation page: %s", page.path, html)
			}
			if strings.Contains(html, "http://") || strings.Contains(html, "https://") || strings.Contains(html, `"//`) {
				t.Fatalf("%s refers to another origin: %s", page.path, html)
			}
			if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Fatalf("%s: Content-Security-Policy %q", page.path, csp)
			}
			var refs []string
			for _, m := range assetRef.FindAllStringSubmatch(html, -1) {
				refs = append(refs, m[1]+m[2]+m[3])
			}
			scripts := 0
			for _, ref := range refs {
				if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
					t.Fatalf("%s loads %q, which is not same-origin", page.path, ref)
				}
				a := ts.do(http.MethodGet, ref, "", nil)
				wantStatus(t, a, http.StatusOK, page.path+" asset "+ref)
				if len(a.Body) < 100 {
					t.Fatalf("asset %s is nearly empty: %d bytes", ref, len(a.Body))
				}
				ct := a.Header.Get("Content-Type")
				switch {
				case strings.HasSuffix(ref, ".js"):
					scripts++
					if !strings.HasPrefix(ct, "text/javascript") && !strings.HasPrefix(ct, "application/javascript") {
						t.Fatalf("%s: Content-Type %q", ref, ct)
					}
				case strings.HasSuffix(ref, ".css"):
					if !strings.HasPrefix(ct, "text/css") {
						t.Fatalf("%s: Content-Type %q", ref, ct)
					}
				case ref == "/favicon.ico":
					if !strings.HasPrefix(ct, "image/") {
						t.Fatalf("%s: Content-Type %q", ref, ct)
					}
				case strings.HasSuffix(ref, ".json"):
					if !strings.HasPrefix(ct, "application/json") || !json.Valid(a.Body) {
						t.Fatalf("%s: Content-Type %q or not JSON", ref, ct)
					}
				default:
					t.Fatalf("%s loads %s, of a kind the test does not know", page.path, ref)
				}
			}
			if scripts == 0 || !slices.Contains(refs, "/openapi.json") {
				t.Fatalf("%s loads no script or not the document: %v", page.path, refs)
			}
		}
		if b := ts.do(http.MethodGet, "/docs/assets/swagger-ui-bundle.js", "", nil); !strings.Contains(string(b.Body), "SwaggerUIBundle") {
			t.Fatal("swagger-ui-bundle.js is not Swagger UI")
		}
		// The vendored bundles fetch nothing of their own from another origin: ReDoc's logo
		// and fonts (see api/docs/README.md).
		for _, asset := range []string{"redoc.standalone.js", "swagger-ui-bundle.js", "swagger-ui.css"} {
			body := string(ts.do(http.MethodGet, "/docs/assets/"+asset, "", nil).Body)
			for _, cdn := range []string{"cdn.redoc.ly", "fonts.googleapis.com", "fonts.gstatic.com", "unpkg.com", "cdn.jsdelivr.net"} {
				if strings.Contains(body, cdn) {
					t.Fatalf("%s names %s", asset, cdn)
				}
			}
		}
		// Every page's icon, asked for at the root as browsers do.
		icon := ts.do(http.MethodGet, "/favicon.ico", "", nil)
		wantStatus(t, icon, http.StatusOK, "/favicon.ico")
		if ct := icon.Header.Get("Content-Type"); ct != "image/svg+xml" || !strings.Contains(string(icon.Body), "<svg") {
			t.Fatalf("/favicon.ico: %q %.80s", ct, icon.Body)
		}
		for _, bad := range []string{"/docs/assets/nothing.js", "/docs/assets/..%2fopenapi.go", "/docs/assets/..%2f..%2fserver.go"} {
			r := ts.do(http.MethodGet, bad, "", nil)
			wantJSONError(t, r, http.StatusNotFound, "not_found")
			if strings.Contains(string(r.Body), "package api") {
				t.Fatalf("%s serves source", bad)
			}
		}
	})
}
