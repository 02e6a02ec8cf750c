package main

// The command line as an operator meets it, through the built binary: help and versions,
// settings refused by name, booleans however they are spelt, and the administration
// commands (keys list and revoke, users create, migrate) against real SQLite and PostgreSQL.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHelpAndVersion: every way of asking for help or the version answers and exits 0.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := run(t, nil, args...)
		if r.code != 0 {
			t.Errorf("exit %d\n%s", r.code, r)
		}
		for _, c := range commands {
			if !strings.Contains(r.stdout, "\n  "+c.Name+" ") {
				t.Errorf("%s does not list %s:\n%s", strings.Join(args, " "), c.Name, r.stdout)
			}
		}
	}
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		if r := run(t, nil, args...); r.code != 0 || r.stdout != "switchboard "+testVersion+" (commit "+testCommit+")\n" {
			t.Errorf("%s:\n%s", strings.Join(args, " "), r)
		}
	}
	// Every command's and verb's help: its usage line, exit 0.
	for _, args := range [][]string{
		{"serve", "--help"}, {"serve", "-h"}, {"migrate", "--help"}, {"load", "--help"},
		{"keys", "--help"}, {"keys", "help"}, {"keys", "create", "--help"}, {"keys", "list", "--help"}, {"keys", "revoke", "--help"},
		{"users", "--help"}, {"users", "create", "--help"}, {"help", "keys"}, {"help", "migrate"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir()}, args...)
			cmd := args[0]
			if cmd == "help" {
				cmd = args[1]
			}
			want := "usage: switchboard " + cmd
			if args[0] == "serve" {
				want = "usage: switchboard [serve]"
			}
			if r.code != 0 || !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("exit %d, want 0 and %q:\n%s", r.code, want, r)
			}
			if strings.Contains(r.stderr, "switchboard serving") || strings.Contains(r.stderr, "switchboard: ") {
				t.Errorf("help did more than help:\n%s", r)
			}
		})
	}
}

// TestUnknownCommandAndBareMigrate: what switchboard cannot run is a usage error, exit 2,
// with what it can run, and changes nothing.
func TestUnknownCommandAndBareMigrate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "  keys ", "  users ", "  migrate "}},
		{[]string{"migrate"}, []string{"usage: switchboard migrate [flags] up|down|status", "-database-url", "want one action: up, down or status"}},
		{[]string{"migrate", "--log-level", "debug"}, []string{"usage: switchboard migrate"}},
		{[]string{"keys", "rotate"}, []string{`keys: unknown command "rotate"`, "  revoke "}},
		{[]string{"users"}, []string{"users: which command? (create)"}},
		{[]string{"serve", "now"}, []string{`serve takes flags only, not "now"`}},
		{[]string{"keys", "revoke"}, []string{"usage: switchboard keys revoke", "name one key"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := run(t, []string{"SWITCHBOARD_DATA_DIR=" + dir}, tt.args...)
			if r.code != 2 || r.stdout != "" {
				t.Errorf("exit %d with stdout %q, want 2 and nothing:\n%s", r.code, r.stdout, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the data directory was touched: %v", entries)
			}
		})
	}
}

// TestBadSettingsRefused: a bad value stops the command before it opens anything, exit 2,
// naming the variable, the flag and the value; a bad SWITCHBOARD_MAX_CALLS no longer falls
// back to the default.
func TestBadSettingsRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"max calls", []string{"SWITCHBOARD_MAX_CALLS=ten"}, []string{"serve"}, `SWITCHBOARD_MAX_CALLS (--max-calls): "ten" is not a whole number`},
		{"--max-calls", nil, []string{"serve", "--max-calls", "-3"}, `SWITCHBOARD_MAX_CALLS (--max-calls): "-3" must be 0 or more`},
		{"boolean", []string{"SWITCHBOARD_WEBRTC=enabled"}, []string{"serve"}, `SWITCHBOARD_WEBRTC (--webrtc): "enabled" is not true or false`},
		{"--record-calls", nil, []string{"--record-calls=sure"}, `SWITCHBOARD_RECORD_CALLS (--record-calls): "sure" is not true or false`},
		{"duration", []string{"SWITCHBOARD_MEDIA_TIMEOUT=30"}, []string{"serve"}, `SWITCHBOARD_MEDIA_TIMEOUT (--media-timeout): "30" is not a duration`},
		{"RTP ports", []string{"SWITCHBOARD_RTP_PORTS=10000:20000"}, []string{"serve"}, `SWITCHBOARD_RTP_PORTS (--rtp-ports): "10000:20000" is not a port range`},
		{"WebRTC ports", nil, []string{"serve", "--webrtc-ports", "80-90"}, `SWITCHBOARD_WEBRTC_PORTS (--webrtc-ports): "80-90" must lie within 1024-65535`},
		{"size", []string{"SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB=64MB"}, []string{"serve"}, `SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB (--gateway-body-budget-mib): "64MB" is not a whole number`},
		{"log level of keys list", []string{"LOG_LEVEL=loud"}, []string{"keys", "list"}, `LOG_LEVEL (--log-level): "loud" must be debug, info, warn or error`},
		{"secret of migrate", []string{"SWITCHBOARD_SECRET=too-short"}, []string{"migrate", "status"}, `SWITCHBOARD_SECRET (--secret): the value given (not shown) must be at least 16 characters`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := append([]string{"SWITCHBOARD_DATA_DIR=" + dir, "SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0"}, tt.env...)
			r := run(t, env, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", r.code, tt.want, r)
			}
			if r.stdout != "" || strings.Contains(r.stderr, "switchboard serving") || strings.Contains(r.stderr, "too-short") {
				t.Errorf("it went on regardless, or repeated the secret:\n%s", r)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the data directory was touched: %v", entries)
			}
		})
	}
}

// TestBooleanSpellingsServe: a node takes a boolean however it is spelt, and does what it
// says: SWITCHBOARD_DEMO makes the demo agent at start, or does not.
func TestBooleanSpellingsServe(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		spelling string
		want     bool
	}{{"YES", true}, {"on", true}, {"1", true}, {"True", true}, {"No", false}, {"OFF", false}, {"0", false}, {"false", false}} {
		t.Run(tt.spelling, func(t *testing.T) {
			t.Parallel()
			n := startServe(t, []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_DEMO=" + tt.spelling})
			// The demo is made before the node serves, so its line is in the log by now.
			if got := strings.Contains(n.log.String(), "demo agent created"); got != tt.want {
				t.Errorf("SWITCHBOARD_DEMO=%s: demo agent created %v, want %v\n%s", tt.spelling, got, tt.want, n.log)
			}
		})
	}
}

// keyRow is a line of keys list.
type keyRow struct{ id, prefix, name, created, lastUsed, revoked string }

func listKeys(t *testing.T, env []string, args ...string) []keyRow {
	t.Helper()
	r := run(t, env, append([]string{"keys", "list"}, args...)...)
	if r.code != 0 {
		t.Fatalf("keys list:\n%s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID PREFIX NAME CREATED LAST USED REVOKED" {
		t.Fatalf("keys list header %q", lines[0])
	}
	var rows []keyRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 {
			t.Fatalf("keys list row %q: want 6 columns", l)
		}
		rows = append(rows, keyRow{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	return rows
}

// TestKeysListAndRevoke: keys list shows a tenant's keys without their secrets; keys revoke
// takes a key by id, by enough of its prefix, or by the key itself, refuses a prefix that
// names several, and a revoked key no longer opens the API; on SQLite and PostgreSQL.
func TestKeysListAndRevoke(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + d.url(t), "SWITCHBOARD_SECRET=" + testSecret}
			ci := createKey(t, env, "--name", "ci")
			ops := createKey(t, env, "--name", "ops")
			deploy := createKey(t, env, "--name", "deploy", "--scopes", "read")
			createKey(t, env, "--name", "elsewhere", "--tenant", "acme")

			rows := listKeys(t, env)
			if len(rows) != 3 || rows[0].name != "deploy" || rows[2].name != "ci" {
				t.Fatalf("keys list: %+v, want deploy, ops, ci (newest first, tenant default only)", rows)
			}
			r := run(t, env, "keys", "list")
			for _, secret := range []string{ci, ops, deploy} {
				if strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, secret[8:20]) {
					t.Errorf("keys list shows a secret:\n%s", r.stdout)
				}
			}
			byName := map[string]keyRow{}
			for _, row := range rows {
				byName[row.name] = row
				if !strings.HasPrefix(row.id, "key_") || !strings.HasPrefix(row.prefix, "as_live_") || row.lastUsed != "-" || row.revoked != "-" {
					t.Errorf("keys list row %+v", row)
				}
				if _, err := time.Parse(time.RFC3339, row.created); err != nil {
					t.Errorf("created %q: %v", row.created, err)
				}
			}
			if start, _, _ := strings.Cut(byName["ci"].prefix, "…"); !strings.HasPrefix(ci, start) {
				t.Errorf("ci's prefix %q is not the start of its key", byName["ci"].prefix)
			}

			// A prefix that names several keys is refused, naming them; nothing is revoked.
			if r := run(t, env, "keys", "revoke", "as_live_"); r.code != 1 || !strings.Contains(r.stderr, `"as_live_" names 3 keys`) {
				t.Errorf("keys revoke as_live_:\n%s", r)
			}
			if r := run(t, env, "keys", "revoke", "key_doesnotexist"); r.code != 1 || !strings.Contains(r.stderr, "no key has the id or prefix") {
				t.Errorf("keys revoke of no key:\n%s", r)
			}
			// Another tenant's key is not found from this one.
			acme := listKeys(t, env, "--tenant", "acme")
			if r := run(t, env, "keys", "revoke", acme[0].id); r.code != 1 {
				t.Errorf("keys revoke of another tenant's key:\n%s", r)
			}
			if r := run(t, env, "keys", "list", "--tenant", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, `no tenant "nosuch"`) {
				t.Errorf("keys list of no tenant:\n%s", r)
			}

			// By enough of the prefix, by the key itself, and by id.
			start, _, _ := strings.Cut(byName["ci"].prefix, "…")
			if r := run(t, env, "keys", "revoke", start); r.code != 0 || !strings.Contains(r.stdout, "revoked "+byName["ci"].id) {
				t.Errorf("keys revoke %s:\n%s", start, r)
			}
			if r := run(t, env, "keys", "revoke", ops); r.code != 0 || !strings.Contains(r.stdout, "revoked "+byName["ops"].id) || strings.Contains(r.stdout, ops) {
				t.Errorf("keys revoke by the key:\n%s", r)
			}
			if r := run(t, env, "keys", "revoke", "--tenant", "acme", acme[0].id); r.code != 0 || !strings.Contains(r.stdout, "revoked "+acme[0].id) {
				t.Errorf("keys revoke by id:\n%s", r)
			}
			rows = listKeys(t, env)
			for _, row := range rows {
				if revoked := row.revoked != "-"; revoked != (row.name != "deploy") {
					t.Errorf("after revoking ci and ops: %+v", row)
				}
			}
			if rows := listKeys(t, env, "--tenant", "acme"); rows[0].revoked == "-" {
				t.Errorf("acme's key not revoked: %+v", rows[0])
			}
			var listed []map[string]any
			if r := run(t, env, "keys", "list", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &listed) != nil || len(listed) != 3 || strings.Contains(r.stdout, deploy) {
				t.Errorf("keys list --json:\n%s", r)
			}

			// A node started afterwards refuses the revoked keys. (A running node refuses
			// them once its cache of keys forgets them, within 30 s: README, Commands.)
			n := startServe(t, env)
			for key, want := range map[string]int{ci: http.StatusUnauthorized, ops: http.StatusUnauthorized, deploy: http.StatusOK} {
				if status, body := n.call("GET", "/api/v1/agents", key, ""); status != want {
					t.Errorf("GET /api/v1/agents with %s…: %d %v, want %d", key[:12], status, body, want)
				}
			}
			if d.name != "postgres" {
				return // one node on SQLite: it refuses a key revoked while it runs within 30 s
			}
			// Nodes on PostgreSQL hear of a revocation from the command line at once, as of
			// one through the API: well before the 30 s their cache of keys would take.
			revokedAt := time.Now()
			if r := run(t, env, "keys", "revoke", byName["deploy"].id); r.code != 0 || strings.Contains(r.stderr, "not told") {
				t.Fatalf("keys revoke of a key in use:\n%s", r)
			}
			for {
				status, _ := n.call("GET", "/api/v1/agents", deploy, "")
				if status == http.StatusUnauthorized {
					break
				}
				if time.Since(revokedAt) > 15*time.Second {
					t.Fatalf("the node still takes a key revoked from the command line %v later: %d", time.Since(revokedAt), status)
				}
				time.Sleep(500 * time.Millisecond) // well within the key's 100 requests a minute
			}
		})
	}
}

// TestUsersCreate: a user made from the command line signs in with the password given on
// stdin, or the one made and printed; a bad email or password is refused by its flag, and an
// email taken in the tenant is refused; on SQLite and PostgreSQL.
func TestUsersCreate(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := []string{"SWITCHBOARD_DATA_DIR=" + dir, "DATABASE_URL=" + d.url(t), "SWITCHBOARD_SECRET=" + testSecret}
			r := runStdin(t, env, "correct horse battery\n", "users", "create", "--email", "Ada@Example.com", "--name", "Ada", "--password-stdin")
			if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "created user usr_") || !strings.Contains(r.stderr, "ada@example.com") {
				t.Fatalf("users create --password-stdin:\n%s", r)
			}
			r = run(t, env, "users", "create", "--email", "grace@example.com", "--scopes", "read")
			made := strings.TrimSuffix(r.stdout, "\n")
			if r.code != 0 || len(made) < 16 || strings.Contains(made, "\n") {
				t.Fatalf("users create without a password: want the made one alone on stdout:\n%s", r)
			}
			for _, tt := range []struct {
				args  []string
				stdin string
				code  int
				want  string
			}{
				{[]string{"--email", "not-an-email"}, "", 2, "--email is not an email address"},
				{[]string{"--email", "x@example.com", "--scopes", "root"}, "", 2, "--scopes must be read, write or admin"},
				{[]string{"--email", "x@example.com", "--password-stdin"}, "short\n", 2, "the password must be 8 to 72 characters"},
				{[]string{"--email", "x@example.com", "--password-stdin"}, "", 2, "stdin held no password"},
				{[]string{}, "", 2, "--email is required"},
				{[]string{"--email", "ada@example.com"}, "", 1, "tenant default already has a user of the email ada@example.com"},
			} {
				r := runStdin(t, env, tt.stdin, append([]string{"users", "create"}, tt.args...)...)
				if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
					t.Errorf("users create %v: exit %d, want %d and %q:\n%s", tt.args, r.code, tt.code, tt.want, r)
				}
				if strings.Contains(r.stderr, "short") {
					t.Errorf("the password is repeated:\n%s", r)
				}
			}

			n := startServe(t, env)
			for _, login := range []struct{ email, password string }{{"ada@example.com", "correct horse battery"}, {"grace@example.com", made}} {
				body, _ := json.Marshal(map[string]string{"email": login.email, "password": login.password})
				if status, tok := n.call("POST", "/api/v1/auth/login", "", string(body)); status != http.StatusOK || tok["access_token"] == nil {
					t.Errorf("login as %s: %d %v", login.email, status, tok)
				}
			}
			body, _ := json.Marshal(map[string]string{"email": "ada@example.com", "password": "wrong password"})
			if status, _ := n.call("POST", "/api/v1/auth/login", "", string(body)); status != http.StatusUnauthorized {
				t.Errorf("login with a wrong password: %d", status)
			}
		})
	}
}

// runStdin is run with stdin.
func runStdin(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = environ(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("switchboard %s: still running after %v\n%s", strings.Join(args, " "), commandTimeout, r)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("switchboard %s: %v", strings.Join(args, " "), err)
	}
	checkClean(t, "switchboard "+strings.Join(args, " "), r.stderr)
	return r
}
