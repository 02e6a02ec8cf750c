package config

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/internal/settings"
)

// serveNames are the settings serve reads, as its reader registers them.
func serveNames() []settings.Name {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	s := settings.New(fs, func(string) (string, bool) { return "", false })
	new(Config).ServeSettings(s)
	return s.Names()
}

// parseServe reads serve's settings from args and vars alone, as a node would at start.
func parseServe(args []string, vars ...string) (*Config, error) {
	env := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Serve(fs, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// isUsage reports whether err is a usage error, for which switchboard exits with status 2.
func isUsage(err error) bool {
	var ue settings.UsageError
	return errors.As(err, &ue)
}

// badValues is a value of each kind that its parser refuses.
var badValues = map[string]string{"int": "ten", "bool": "maybe", "duration": "30", "ports": "10000", "secret": "short"}

// TestEverySettingRefusesABadValue: whatever setting is given a value of the wrong shape,
// by its variable or its flag, the node refuses to start, naming both, and never falls back
// to the default.
func TestEverySettingRefusesABadValue(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, n := range serveNames() {
		bad, ok := badValues[n.Kind]
		if !ok {
			continue // text: checked where it has a check (TestTextSettingsChecked)
		}
		checked++
		for _, how := range []string{"env", "flag"} {
			var err error
			if how == "env" {
				_, err = parseServe(nil, n.Env+"="+bad)
			} else {
				_, err = parseServe([]string{"--" + n.Flag + "=" + bad})
			}
			var se *settings.Error
			if !errors.As(err, &se) || !isUsage(err) {
				t.Errorf("%s %s=%q: %v (usage error %v), want a refusal, a usage error", how, n.Env, bad, err, isUsage(err))
				continue
			}
			if se.Env != n.Env || se.Flag != n.Flag || !strings.Contains(err.Error(), n.Env+" (--"+n.Flag+"): ") {
				t.Errorf("%s %s=%q: %q does not name %s and --%s", how, n.Env, bad, err, n.Env, n.Flag)
			}
		}
	}
	if checked < 30 {
		t.Errorf("only %d settings checked; the reader lost its kinds?", checked)
	}
}

// TestTextSettingsChecked: the settings kept as text that can be wrong are refused too.
func TestTextSettingsChecked(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ env, want string }{
		{"LOG_LEVEL=loud", `LOG_LEVEL (--log-level): "loud" must be debug, info, warn or error`},
		{"LOG_FORMAT=xml", `LOG_FORMAT (--log-format): "xml" must be one of text, json`},
		{"SWITCHBOARD_ICE_SERVERS=ftp://example.com", `SWITCHBOARD_ICE_SERVERS (--ice-servers): "ftp://example.com"`},
		{"SWITCHBOARD_WEBRTC_UDP_PORT=70000", `SWITCHBOARD_WEBRTC_UDP_PORT (--webrtc-udp-port): "70000" must be from 0 to 65535`},
		{"SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB=0", `SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB (--knowledge-max-upload-mib): "0" must be 1 or more`},
		{"SWITCHBOARD_MAX_CALLS=-5", `SWITCHBOARD_MAX_CALLS (--max-calls): "-5" must be 0 or more`},
		{"SWITCHBOARD_WEBRTC_PORTS=30000-20000", `SWITCHBOARD_WEBRTC_PORTS (--webrtc-ports): "30000-20000" must lie within 1024-65535`},
		{"OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318", `OTEL_EXPORTER_OTLP_ENDPOINT (--otel-endpoint): "collector:4318" must be an http:// or https:// URL`},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=grpc://c/v1/traces", `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (--otel-traces-endpoint): "grpc://c/v1/traces" must be an http://`},
		{"OTEL_TRACES_SAMPLER=sometimes", `OTEL_TRACES_SAMPLER (--otel-traces-sampler): "sometimes" must be one of always_on`},
		{"OTEL_TRACES_SAMPLER_ARG=2", `OTEL_TRACES_SAMPLER_ARG (--otel-traces-sampler-arg): "2" must be a ratio from 0 to 1`},
	} {
		_, err := parseServe(nil, tt.env)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !isUsage(err) {
			t.Errorf("%s: %v, want %q", tt.env, err, tt.want)
		}
	}
}

// TestBooleanSpellings: every boolean setting takes the usual spellings in any case, and
// each means what it says.
func TestBooleanSpellings(t *testing.T) {
	t.Parallel()
	spellings := map[bool][]string{
		true:  {"true", "TRUE", "True", "1", "yes", "YES", "Yes", "on", "ON", "On"},
		false: {"false", "FALSE", "False", "0", "no", "NO", "No", "off", "OFF", "Off"},
	}
	bools := 0
	for _, n := range serveNames() {
		if n.Kind != "bool" {
			continue
		}
		bools++
		want := map[bool]*Config{}
		for _, b := range []bool{true, false} {
			c, err := parseServe([]string{"--" + n.Flag + "=" + map[bool]string{true: "true", false: "false"}[b]})
			if err != nil {
				t.Fatal(err)
			}
			want[b] = c
		}
		if reflect.DeepEqual(want[true], want[false]) {
			t.Fatalf("%s: true and false read the same", n.Env)
		}
		for b, words := range spellings {
			for _, w := range words {
				c, err := parseServe(nil, n.Env+"="+w)
				if err != nil {
					t.Errorf("%s=%s: %v", n.Env, w, err)
				} else if !reflect.DeepEqual(c, want[b]) {
					t.Errorf("%s=%s did not read as %v", n.Env, w, b)
				}
			}
		}
		// The flag alone is true.
		if c, err := parseServe([]string{"--" + n.Flag}); err != nil || !reflect.DeepEqual(c, want[true]) {
			t.Errorf("--%s alone: %v, want true", n.Flag, err)
		}
	}
	if bools < 8 {
		t.Errorf("only %d boolean settings", bools)
	}
}

// TestFlagsWin: a flag wins over its variable, and an empty variable is unset.
func TestFlagsWin(t *testing.T) {
	t.Parallel()
	c, err := parseServe([]string{"--max-calls", "7"}, "SWITCHBOARD_MAX_CALLS=9", "SWITCHBOARD_RATE_LIMIT=", "SWITCHBOARD_RTP_PORTS=10000-10099")
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxCalls != 7 || c.RateLimit != 100 || c.RTPPorts != (settings.PortRange{Min: 10000, Max: 10099}) {
		t.Errorf("max calls %d (want 7), rate limit %d (want 100), RTP ports %v", c.MaxCalls, c.RateLimit, c.RTPPorts)
	}
}

// TestREADMEConfigurationTable: README's configuration table lists every setting serve
// reads, with its flag, and nothing the reader does not know. Rows without a flag are
// variables that others read (model providers, Go's runtime) and are left out.
func TestREADMEConfigurationTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	code := regexp.MustCompile("`([^`]+)`")
	documented := map[string]string{} // variable → flag
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		vars, flags := code.FindAllStringSubmatch(cells[1], -1), code.FindAllStringSubmatch(cells[2], -1)
		if len(flags) == 0 {
			continue
		}
		if len(vars) != len(flags) {
			t.Errorf("README row %q: %d variables, %d flags", strings.TrimSpace(cells[1]), len(vars), len(flags))
			continue
		}
		for i := range vars {
			documented[vars[i][1]] = strings.TrimPrefix(flags[i][1], "--")
		}
	}
	known := map[string]bool{}
	for _, n := range serveNames() {
		known[n.Env] = true
		if f, ok := documented[n.Env]; !ok {
			t.Errorf("%s (--%s) is not in README's configuration table", n.Env, n.Flag)
		} else if f != n.Flag {
			t.Errorf("README gives %s the flag --%s; the reader --%s", n.Env, f, n.Flag)
		}
	}
	for env, f := range documented {
		if !known[env] {
			t.Errorf("README's configuration table lists %s (--%s), which serve does not read", env, f)
		}
	}
}

// TestOneReader: no Go code of Switchboard but the reader reads a setting's variable, so
// that none can be parsed a second way, or fall back in silence again. The model
// registries' FromEnv helpers, which read the providers file's name for programs other than
// the node, are the one exception.
func TestOneReader(t *testing.T) {
	t.Parallel()
	allowed := map[string]string{
		"agent/llm/registry.go":    "SWITCHBOARD_PROVIDERS_FILE",
		"agent/speech/registry.go": "SWITCHBOARD_PROVIDERS_FILE",
	}
	names := serveNames()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel("../..", path)
		if rel == "internal/config/config.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.Contains(string(b), `"`+n.Env+`"`) && allowed[rel] != n.Env {
				t.Errorf("%s reads %s: settings are read by internal/config/config.go alone", rel, n.Env)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
