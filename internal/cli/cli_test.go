package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/internal/settings"
)

// outcome is what a command line left: its exit status and the two streams.
type outcome struct {
	code           int
	stdout, stderr string
}

// runWith runs args against prog with stdin, in this process.
func runWith(t *testing.T, prog Program, stdin string, args ...string) outcome {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), prog, args, Process{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, StopSignals: func() {}})
	return outcome{code, out.String(), errOut.String()}
}

// TestRunExitStatuses: what a command returns decides the exit status, and only a failure
// is printed: help is 0 and silent, a usage error 2, any other error 1.
func TestRunExitStatuses(t *testing.T) {
	t.Parallel()
	var ran []string
	cmd := func(name string, err error) Command {
		return Command{Name: name, Summary: "the " + name + " command", Run: func(_ context.Context, args []string, _ Process) error {
			ran = append(ran, name+" "+strings.Join(args, " "))
			return err
		}}
	}
	prog := Program{Version: "1.2.3", Commit: "abc", Commands: []Command{
		cmd("serve", nil), cmd("helped", flag.ErrHelp),
		cmd("misused", settings.UsageError{Err: errors.New("bad flag")}), cmd("broken", errors.New("disk full")),
	}}
	for _, tt := range []struct {
		args    []string
		code    int
		stderr  string
		ran     string
		listing bool
	}{
		{nil, 0, "", "serve ", false},
		{[]string{"--max-calls", "3"}, 0, "", "serve --max-calls 3", false},
		{[]string{"helped"}, 0, "", "helped ", false},
		{[]string{"help", "broken", "x"}, 1, "switchboard: disk full\n", "broken x --help", false},
		{[]string{"misused"}, 2, "switchboard: bad flag\n", "misused ", false},
		{[]string{"broken"}, 1, "switchboard: disk full\n", "broken ", false},
		{[]string{"frobnicate"}, 2, "switchboard: unknown command \"frobnicate\"\n", "", true},
	} {
		ran = nil
		r := runWith(t, prog, "", tt.args...)
		if r.code != tt.code || !strings.HasPrefix(r.stderr, tt.stderr) || (tt.stderr == "" && r.stderr != "") {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.stderr)
		}
		if got := strings.Join(ran, ","); got != tt.ran {
			t.Errorf("%q ran %q, want %q", tt.args, got, tt.ran)
		}
		if listed := strings.Contains(r.stderr, "  broken    the broken command\n"); listed != tt.listing {
			t.Errorf("%q: the list on stderr %v, want %v:\n%s", tt.args, listed, tt.listing, r.stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := runWith(t, prog, "", args...)
		for _, name := range []string{"serve", "helped", "misused", "broken", "version", "help"} {
			if !strings.Contains(r.stdout, "\n  "+name+" ") {
				t.Errorf("%q does not list %s:\n%s", args, name, r.stdout)
			}
		}
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		if r := runWith(t, prog, "", args...); r.code != 0 || r.stdout != "switchboard 1.2.3 (commit abc)\n" {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
}

// TestAdminCommandsUseTheirProcess: the administration commands read and write the streams
// they are given, never the process's own, so that what a script captures is what they
// said: a key alone on stdout, a password read from stdin.
func TestAdminCommandsUseTheirProcess(t *testing.T) {
	t.Parallel()
	prog := Program{Commands: Commands()}
	store := []string{"--data-dir", t.TempDir(), "--database-url="}
	admin := func(stdin string, args ...string) outcome {
		t.Helper()
		// The store's flags go before the verb's arguments, which end the flags.
		verb := 2
		if args[0] == "migrate" {
			verb = 1
		}
		line := append(append(append([]string{}, args[:verb]...), store...), args[verb:]...)
		return runWith(t, prog, stdin, line...)
	}

	r := admin("", "keys", "create", "--name", "ci")
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(key, "as_live_") || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "created key") {
		t.Fatalf("keys create: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = admin("", "keys", "list", "--json")
	var listed []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(r.stdout), &listed); r.code != 0 || err != nil || len(listed) != 1 || listed[0].Name != "ci" {
		t.Fatalf("keys list --json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	r = admin("", "keys", "revoke", key)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "revoked "+listed[0].ID+" ") {
		t.Fatalf("keys revoke by the key: exit %d\n%q\n%q", r.code, r.stdout, r.stderr)
	}

	r = admin("correct horse battery\n", "users", "create", "--email", "ops@example.com", "--password-stdin")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "created user") {
		t.Fatalf("users create --password-stdin: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = admin("", "users", "create", "--email", "ops@example.com", "--password-stdin")
	if r.code != 2 || !strings.Contains(r.stderr, "stdin held no password") {
		t.Fatalf("users create with nothing on stdin: exit %d\n%q", r.code, r.stderr)
	}
	r = admin("", "users", "create", "--email", "ops@example.com")
	if r.code != 1 || !strings.Contains(r.stderr, "already has a user of the email ops@example.com") {
		t.Fatalf("users create twice: exit %d\n%q", r.code, r.stderr)
	}

	r = admin("", "keys", "list", "--help")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "usage: switchboard keys list [flags]") {
		t.Fatalf("keys list --help: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}

	r = admin("", "migrate", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("migrate status: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
}
