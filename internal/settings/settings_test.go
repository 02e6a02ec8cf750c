package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// env is a fixed environment for a Set.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
}

type values struct {
	text  string
	n     int
	on    bool
	d     time.Duration
	ports PortRange
	key   string
}

func newSet(vars map[string]string) (*Set, *values) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := New(fs, env(vars))
	v := new(values)
	s.Text(&v.text, "format", "T_FORMAT", "text", "", OneOf("text", "json"))
	s.Int(&v.n, "max-calls", "T_MAX_CALLS", 2000, 0, NoMax, "")
	s.Bool(&v.on, "webrtc", "T_WEBRTC", true, "")
	s.Duration(&v.d, "timeout", "T_TIMEOUT", 30*time.Second, "")
	s.Ports(&v.ports, "rtp-ports", "T_RTP_PORTS", 4, "")
	s.Secret(&v.key, "secret", "T_SECRET", "", 16)
	return s, v
}

func TestDefaultsEnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	s, v := newSet(nil)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if (*v != values{text: "text", n: 2000, on: true, d: 30 * time.Second}) {
		t.Errorf("defaults: %+v", *v)
	}
	// The variable sets what no flag does; an empty variable is unset; the flag wins.
	s, v = newSet(map[string]string{"T_MAX_CALLS": "10", "T_TIMEOUT": "", "T_WEBRTC": "off", "T_RTP_PORTS": " 10000 - 20000 ", "T_FORMAT": "json"})
	if err := s.Parse([]string{"--max-calls", "20", "--webrtc"}); err != nil {
		t.Fatal(err)
	}
	if (*v != values{text: "json", n: 20, on: true, d: 30 * time.Second, ports: PortRange{10000, 20000}}) {
		t.Errorf("environment and flags: %+v", *v)
	}
}

// TestRefusals: a value that does not parse is refused with the variable, the flag and the
// value named, however it came, and never replaced by the default.
func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env, value, want string
	}{
		{"T_MAX_CALLS", "ten", `T_MAX_CALLS (--max-calls): "ten" is not a whole number`},
		{"T_MAX_CALLS", "-1", `T_MAX_CALLS (--max-calls): "-1" must be 0 or more`},
		{"T_MAX_CALLS", "2.5", `T_MAX_CALLS (--max-calls): "2.5" is not a whole number`},
		{"T_WEBRTC", "maybe", `T_WEBRTC (--webrtc): "maybe" is not true or false (true/false, yes/no, on/off or 1/0)`},
		{"T_WEBRTC", "t", `T_WEBRTC (--webrtc): "t" is not true or false`},
		{"T_TIMEOUT", "30", `T_TIMEOUT (--timeout): "30" is not a duration (such as 500ms, 30s or 1h30m)`},
		{"T_TIMEOUT", "-5s", `T_TIMEOUT (--timeout): "-5s" must not be negative`},
		{"T_RTP_PORTS", "10000", `T_RTP_PORTS (--rtp-ports): "10000" is not a port range (min-max, such as 10000-20000)`},
		{"T_RTP_PORTS", "80-90", `T_RTP_PORTS (--rtp-ports): "80-90" must lie within 1024-65535, the lower port first`},
		{"T_RTP_PORTS", "20000-10000", `must lie within 1024-65535, the lower port first`},
		{"T_RTP_PORTS", "10000-10002", `T_RTP_PORTS (--rtp-ports): "10000-10002" must hold at least 4 ports`},
		{"T_FORMAT", "xml", `T_FORMAT (--format): "xml" must be one of text, json`},
		{"T_SECRET", "short-secret", `T_SECRET (--secret): the value given (not shown) must be at least 16 characters`},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			s, _ := newSet(map[string]string{tt.env: tt.value})
			err := s.Parse(nil)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse: %v, want an *Error", err)
			}
			if got := err.Error(); !contains(got, tt.want) {
				t.Errorf("error %q, want %q in it", got, tt.want)
			}
			if tt.env == "T_SECRET" && contains(err.Error(), tt.value) {
				t.Errorf("the secret is repeated: %q", err)
			}
		})
	}
	// The flag's value is read by the same parser.
	s, _ := newSet(nil)
	if err := s.Parse([]string{"--max-calls=ten"}); err == nil || err.Error() != `T_MAX_CALLS (--max-calls): "ten" is not a whole number` {
		t.Errorf("flag: %v", err)
	}
}

func TestParseBool(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"true", "TRUE", "True", "1", "yes", "Yes", "YES", "on", "On", "ON", " true "} {
		if b, err := ParseBool(v); err != nil || !b {
			t.Errorf("ParseBool(%q) = %v, %v; want true", v, b, err)
		}
	}
	for _, v := range []string{"false", "FALSE", "False", "0", "no", "No", "NO", "off", "Off", "OFF"} {
		if b, err := ParseBool(v); err != nil || b {
			t.Errorf("ParseBool(%q) = %v, %v; want false", v, b, err)
		}
	}
	for _, v := range []string{"", "t", "f", "y", "n", "2", "enabled", "truee"} {
		if _, err := ParseBool(v); err == nil {
			t.Errorf("ParseBool(%q) accepted", v)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		min  int
		want PortRange
		ok   bool
	}{
		{"", 4, PortRange{}, true},
		{"10000-20000", 4, PortRange{10000, 20000}, true},
		{"1024-65535", 1, PortRange{1024, 65535}, true},
		{"20000-20000", 1, PortRange{20000, 20000}, true},
		{"20000-20000", 4, PortRange{}, false},
		{"1023-2000", 1, PortRange{}, false},
		{"2000-65536", 1, PortRange{}, false},
		{"2000-", 1, PortRange{}, false},
		{"-2000", 1, PortRange{}, false},
		{"a-b", 1, PortRange{}, false},
		{"10000:20000", 1, PortRange{}, false},
	} {
		got, err := ParsePortRange(tt.in, tt.min)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePortRange(%q, %d) = %v, %v", tt.in, tt.min, got, err)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "[]", true},
		{"10.0.0.0/8", "[10.0.0.0/8]", true},
		{" 10.0.0.0/8 , 192.168.1.7,fd00::/8 ", "[10.0.0.0/8 192.168.1.7/32 fd00::/8]", true},
		{"::ffff:10.1.2.3", "[10.1.2.3/32]", true},
		{"10.0.0.1/8", "", false},
		{"10.0.0.0/33", "", false},
		{"example.com", "", false},
		{"10.0.0.0-10.0.0.9", "", false},
	} {
		got, err := ParseNetworks(tt.in)
		if (err == nil) != tt.ok || (tt.ok && fmt.Sprint(got) != tt.want) {
			t.Errorf("ParseNetworks(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"10000-20000", "", "1-2-3", "65535-1024", " 2000 - 3000 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePortRange(s, 1)
		if err == nil && !r.IsZero() && (r.Min < 1024 || r.Max > 65535 || r.Max < r.Min) {
			t.Errorf("ParsePortRange(%q) = %v", s, r)
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestPrintDefaults: each setting's help names its value by kind, its variable and default.
func TestPrintDefaults(t *testing.T) {
	t.Parallel()
	s, _ := newSet(nil)
	var b strings.Builder
	s.fs.SetOutput(&b)
	s.fs.String("tenant", "default", "a command's own flag")
	PrintDefaults(s.fs)
	for _, want := range []string{
		"  -max-calls n\n    \t [T_MAX_CALLS] (default 2000)\n",
		"  -rtp-ports min-max\n", "  -timeout duration\n", "  -webrtc\n", "[T_WEBRTC] (default true)",
		"  -tenant string\n    \ta command's own flag (default default)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, b.String())
		}
	}
}
