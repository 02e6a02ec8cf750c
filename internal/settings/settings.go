// Package settings reads what Switchboard is told at start: every setting is a flag and an
// environment variable (the flag wins), parsed by one parser per kind of value, and a value
// that does not parse is refused with both names and the value, never replaced by the
// default.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Error is a setting whose value was refused. It names the variable and the flag, so that an
// operator finds it whichever way the value was given.
type Error struct {
	Env, Flag, Value string
	// Problem says what is wrong, such as "is not a whole number".
	Problem string
	// Hidden is a value that is not repeated in messages: a secret.
	Hidden bool
}

func (e *Error) Error() string {
	if e.Hidden {
		return fmt.Sprintf("%s (--%s): the value given (not shown) %s", e.Env, e.Flag, e.Problem)
	}
	return fmt.Sprintf("%s (--%s): %q %s", e.Env, e.Flag, e.Value, e.Problem)
}

// UsageError is a command line or a setting a command cannot use. Switchboard exits with
// status 2 for it, as for an unknown command, so that scripts can tell it from a failure of
// the work.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Name is a setting's flag (without dashes), its environment variable, and the kind of its
// value: text, secret, int, bool, duration or ports.
type Name struct{ Flag, Env, Kind string }

// Set is the settings of one command, registered on its flag set.
type Set struct {
	fs      *flag.FlagSet
	lookup  func(string) (string, bool)
	entries []*entry
}

// entry is one setting: the text it was given and how that text becomes its value.
type entry struct {
	name   Name
	def    string
	text   string
	given  bool // by its flag
	isBool bool
	hidden bool
	parse  func(string) error
}

// String and Set make an entry a flag.Value: the flag only records its text, which is parsed
// with the environment's in Parse, so that both are refused the same way.
func (e *entry) String() string {
	if e == nil {
		return ""
	}
	return e.def
}

func (e *entry) Set(s string) error { e.text, e.given = s, true; return nil }

// IsBoolFlag lets a boolean's flag stand alone (--webrtc is --webrtc=true).
func (e *entry) IsBoolFlag() bool { return e.isBool }

// New returns a set that registers its flags on fs and reads variables through lookupEnv
// (os.LookupEnv; tests pass their own).
func New(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) *Set {
	return &Set{fs: fs, lookup: lookupEnv}
}

// Names lists the settings in the order they were registered.
func (s *Set) Names() []Name {
	out := make([]Name, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.name
	}
	return out
}

func (s *Set) add(kind, flagName, env, def, usage string, parse func(string) error) *entry {
	e := &entry{name: Name{Flag: flagName, Env: env, Kind: kind}, def: def, isBool: kind == "bool", parse: parse}
	s.entries = append(s.entries, e)
	s.fs.Var(e, flagName, usage+" ["+env+"]")
	return e
}

// Parse parses the command line, then every setting from its flag, else its variable (an
// empty variable is unset), else its default. The first value refused is an *Error.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	for _, e := range s.entries {
		text := e.def
		if e.given {
			text = e.text
		} else if v, ok := s.lookup(e.name.Env); ok && v != "" {
			text = v
		}
		if err := e.parse(text); err != nil {
			if e.hidden {
				text = ""
			}
			return &Error{Env: e.name.Env, Flag: e.name.Flag, Value: text, Problem: err.Error(), Hidden: e.hidden}
		}
	}
	return nil
}

// placeholders name each kind's value in PrintDefaults.
var placeholders = map[string]string{"text": "string", "secret": "string", "int": "n", "duration": "duration", "ports": "min-max", "networks": "cidrs"}

// PrintDefaults prints the flags of fs as flag.PrintDefaults does, each setting's value
// named by its kind (--max-calls n, --rtp-ports min-max) rather than "value".
func PrintDefaults(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if e, ok := f.Value.(*entry); ok {
			name = placeholders[e.name.Kind]
		}
		line := "  -" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		// A setting's default is always worth saying; a command's own flag's, unless zero.
		_, setting := f.Value.(*entry)
		if def := f.DefValue; def != "" && (setting || (def != "0" && def != "false" && def != "0s")) {
			line += " (default " + def + ")"
		}
		fmt.Fprintln(w, line)
	})
}

// Text is a setting kept as it is written; check, when not nil, refuses what it cannot use.
func (s *Set) Text(p *string, flagName, env, def, usage string, check func(string) error) {
	s.add("text", flagName, env, def, usage, func(v string) error {
		if check != nil {
			if err := check(v); err != nil {
				return err
			}
		}
		*p = v
		return nil
	})
}

// Secret is text that messages never repeat, empty or at least minLen characters long.
func (s *Set) Secret(p *string, flagName, env, usage string, minLen int) {
	e := s.add("secret", flagName, env, "", usage, func(v string) error {
		if v != "" && len(v) < minLen {
			return fmt.Errorf("must be at least %d characters", minLen)
		}
		*p = v
		return nil
	})
	e.hidden = true
}

// SecretOf is a secret of a shape check accepts (the empty value always is): a refusal says
// what check says, never the value. check's message must not quote the value either.
func (s *Set) SecretOf(p *string, flagName, env, usage string, check func(string) error) {
	e := s.add("secret", flagName, env, "", usage, func(v string) error {
		if v != "" {
			if err := check(v); err != nil {
				return err
			}
		}
		*p = v
		return nil
	})
	e.hidden = true
}

// OneOf is a check of Text: the value must be one of choices, in any case.
func OneOf(choices ...string) func(string) error {
	return func(v string) error {
		for _, c := range choices {
			if strings.EqualFold(v, c) {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(choices, ", "))
	}
}

// Int is a whole number from min to max.
func (s *Set) Int(p *int, flagName, env string, def, minimum, maximum int, usage string) {
	s.add("int", flagName, env, strconv.Itoa(def), usage, func(v string) error {
		n, err := ParseInt(v, minimum, maximum)
		if err != nil {
			return err
		}
		*p = n
		return nil
	})
}

// Bool is true or false, spelt any of the usual ways (see ParseBool).
func (s *Set) Bool(p *bool, flagName, env string, def bool, usage string) {
	s.add("bool", flagName, env, strconv.FormatBool(def), usage, func(v string) error {
		b, err := ParseBool(v)
		if err != nil {
			return err
		}
		*p = b
		return nil
	})
}

// Duration is a Go duration, such as 30s or 1h30m, not negative.
func (s *Set) Duration(p *time.Duration, flagName, env string, def time.Duration, usage string) {
	s.add("duration", flagName, env, def.String(), usage, func(v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
		return nil
	})
}

// Ports is a range of UDP ports, min-max, of at least minPorts ports; empty is none (any
// free port).
func (s *Set) Ports(p *PortRange, flagName, env string, minPorts int, usage string) {
	s.add("ports", flagName, env, "", usage, func(v string) error {
		r, err := ParsePortRange(v, minPorts)
		if err != nil {
			return err
		}
		*p = r
		return nil
	})
}

// Networks is a comma list of networks (CIDR, such as 10.0.0.0/8) and single addresses;
// empty is none.
func (s *Set) Networks(p *[]netip.Prefix, flagName, env, usage string) {
	s.add("networks", flagName, env, "", usage, func(v string) error {
		n, err := ParseNetworks(v)
		if err != nil {
			return err
		}
		*p = n
		return nil
	})
}

// ParseInt reads a whole number from minimum to maximum.
func ParseInt(v string, minimum, maximum int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil:
		return 0, errors.New("is not a whole number")
	case n < minimum && maximum == NoMax:
		return 0, fmt.Errorf("must be %d or more", minimum)
	case n < minimum || n > maximum:
		return 0, fmt.Errorf("must be from %d to %d", minimum, maximum)
	}
	return n, nil
}

// NoMax is the maximum of an Int with no upper bound.
const NoMax = int(^uint(0) >> 1)

// ParseBool reads true and false as true/false, yes/no, on/off or 1/0, in any case.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, errors.New("is not true or false (true/false, yes/no, on/off or 1/0)")
}

// ParseDuration reads a duration that is not negative, such as 30s or 1h30m.
func ParseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	switch {
	case err != nil:
		return 0, errors.New("is not a duration (such as 500ms, 30s or 1h30m)")
	case d < 0:
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// PortRange is a range of ports, both ends included; the zero value is no range.
type PortRange struct{ Min, Max int }

// IsZero reports whether no range was given.
func (r PortRange) IsZero() bool { return r == PortRange{} }

func (r PortRange) String() string {
	if r.IsZero() {
		return ""
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// ParsePortRange reads min-max within 1024-65535, at least minPorts ports wide; empty is
// the zero range. It is the one reader of every port range Switchboard is given.
func ParsePortRange(v string, minPorts int) (PortRange, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return PortRange{}, nil
	}
	lo, hi, ok := strings.Cut(v, "-")
	a, aerr := strconv.Atoi(strings.TrimSpace(lo))
	b, berr := strconv.Atoi(strings.TrimSpace(hi))
	switch {
	case !ok || aerr != nil || berr != nil:
		return PortRange{}, errors.New("is not a port range (min-max, such as 10000-20000)")
	case a < 1024 || b > 65535 || b < a:
		return PortRange{}, errors.New("must lie within 1024-65535, the lower port first")
	case b-a+1 < minPorts:
		return PortRange{}, fmt.Errorf("must hold at least %d ports", minPorts)
	}
	return PortRange{Min: a, Max: b}, nil
}

// ParseNetworks reads a comma list of networks (10.0.0.0/8, fd00::/8) and addresses (a
// single address is a network of one); empty is none. An address with bits set past the
// prefix (10.0.0.1/8) is refused: it is more likely a mistake than meant as 10.0.0.0/8.
func ParseNetworks(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or a network (such as 10.0.0.0/8)", item)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a network (such as 10.0.0.0/8)", item)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has bits set past its prefix; the network is %s", item, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}
