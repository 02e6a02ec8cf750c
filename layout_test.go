package switchboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// module is Switchboard's import path; a rule names our packages relative to it.
const module = "github.com/switchboard-go/switchboard"

// layoutRule says what a package (and every package under it) must not import, and why,
// in the words of the map in README.md's layout section and DESIGN.md. A forbidden entry
// without a dot in its first element is ours ("sip" is module+"/sip"); one with a dot is
// another module's ("github.com/pion/") and "net/http" is the standard library's. A rule
// for a package that does not exist yet (call, provider) holds from the day it does.
type layoutRule struct {
	pkg    string
	deny   []string
	reason string
}

var layoutRules = []layoutRule{
	{"media", []string{"store", "sip", "api", "realtime", "rtc", "mediastream", "call", "agent", "session", "knowledge", "provider", "web", "net/http", "github.com/emiago/sipgo", "github.com/uptrace/bun"},
		"media is the seam every transport adapts to: frames, codecs, RTP; it knows nothing of SIP, HTTP or the database"},
	{"realtime", []string{"sip", "rtc", "mediastream", "media", "store", "github.com/pion/"},
		"realtime is the event hub, SSE and the events WebSocket; it carries events and knows no transport"},
	{"rtc", []string{"sip", "store", "realtime", "mediastream"},
		"rtc is the WebRTC adapter to a call; it knows nothing of SIP, the hub or the other transports"},
	{"mediastream", []string{"sip", "realtime", "rtc"},
		"mediastream is the media-stream socket adapter to a call; it knows nothing of SIP, the hub or the other transports"},
	{"sip", []string{"agent", "session", "rtc", "mediastream", "realtime", "web"},
		"sip is the SIP adapter to a call; it knows nothing of agents, HTTP or the other transports"},
	{"call", []string{"sip", "rtc", "mediastream", "agent", "session"},
		"call is the transport-neutral call; it knows neither how a call is carried nor who answers it"},
	{"agent", []string{"sip", "rtc", "mediastream"},
		"agent sees a call only through its line and media.Stream; it knows no transport"},
	{"agent/s2s", []string{"store", "call", "media", "provider", "knowledge", "realtime", "agent/voice", "agent/llm", "sip", "rtc", "mediastream"},
		"agent/s2s is the client of the Realtime speech-to-speech protocol; it knows nothing of calls, agents, providers or the store"},
	{"session", []string{"sip", "rtc", "mediastream"},
		"session answers text conversations with the agent's brain; it knows no transport"},
	{"knowledge", []string{"sip", "rtc", "mediastream", "realtime"},
		"knowledge ingests and searches documents; it knows no transport"},
	{"provider", []string{"sip", "rtc", "mediastream", "realtime"},
		"provider is the per-tenant registry of model and speech providers; it knows no transport and no HTTP routing"},
	{"metrics", []string{"api", "sip", "rtc", "mediastream", "realtime", "call", "agent", "session", "knowledge", "provider", "media", "store", "web"},
		"metrics is the node's Prometheus registry at the bottom of the map, so that any package can register on it; what it measures comes in as plain values"},
	{"webhook", []string{"sip", "rtc", "mediastream", "agent", "session", "knowledge", "provider", "web"},
		"webhook posts calls' events to their servers from the hub's events and the store; it knows no transport and no agent"},

	{"telemetry", []string{"api", "sip", "rtc", "mediastream", "realtime", "call", "agent", "session", "knowledge", "provider", "media", "store", "metrics", "web"},
		"telemetry is the node's tracing at the bottom of the map, so that any package can start its spans; it knows nothing of what it traces"},
	{"store", []string{"api", "sip", "rtc", "mediastream", "realtime", "call", "agent", "session", "knowledge", "provider", "media", "web"},
		"store is at the bottom: models, migrations and queries; nothing of ours above it"},
}

// goPackage is what the layout needs of `go list -json`.
type goPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// listPackages asks the go command, which resolves build tags and files exactly as a
// build does, for every package of the module and what it imports.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// under reports whether path is pkg or a package below it.
func under(path, pkg string) bool {
	return path == pkg || strings.HasPrefix(path, pkg+"/")
}

// ours turns a rule's name into an import path.
func ours(name string) string {
	first, _, _ := strings.Cut(name, "/")
	if strings.Contains(first, ".") || name == "net/http" {
		return strings.TrimSuffix(name, "/")
	}
	return module + "/" + name
}

// TestLayout holds the one-way imports of the map (README.md's layout section): a package
// that imports what the map forbids fails here, naming both and the rule. The package rules
// bind what a package ships (its non-test imports); a test may reach across layers for a
// real peer (a SIP test watching events on the hub). No one imports cmd, and only cmd and
// api itself import api, tests included: api is the top of the server, not a library.
func TestLayout(t *testing.T) {
	pkgs := listPackages(t)
	for _, p := range pkgs {
		for _, r := range layoutRules {
			if !under(p.ImportPath, ours(r.pkg)) {
				continue
			}
			for _, imp := range p.Imports {
				for _, d := range r.deny {
					if under(imp, ours(d)) {
						t.Errorf("%s imports %s, which the map forbids: %s", p.ImportPath, imp, r.reason)
					}
				}
			}
		}
		for by, imps := range map[string][]string{"": p.Imports, " (in its tests)": append(p.TestImports, p.XTestImports...)} {
			for _, imp := range imps {
				if under(imp, ours("cmd")) {
					t.Errorf("%s%s imports %s: nothing imports cmd, which is wiring only", p.ImportPath, by, imp)
				}
				if under(imp, ours("api")) && !under(p.ImportPath, ours("api")) && !under(p.ImportPath, ours("cmd")) {
					t.Errorf("%s%s imports %s: only cmd imports api, the top of the server", p.ImportPath, by, imp)
				}
			}
		}
	}
}

// TestLayoutRulesNameRealPackages keeps the rules honest: a rule whose package exists
// must match it, so a rename cannot silently switch a rule off.
func TestLayoutRulesNameRealPackages(t *testing.T) {
	pkgs := listPackages(t)
	for _, want := range []string{"media", "media/amd", "realtime", "rtc", "mediastream", "sip", "agent", "agent/s2s", "knowledge", "store", "api", "metrics", "telemetry"} {
		found := false
		for _, p := range pkgs {
			if p.ImportPath == ours(want) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no package %s: the layout rules and the map need updating together", ours(want))
		}
	}
}
