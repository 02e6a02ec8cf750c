// Command switchboard runs the Switchboard voice agent server and its administration
// commands: serve (the default), migrate, keys, users, load and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Set by the build (make build: -ldflags "-X main.version=… -X main.commit=…").
var (
	version = "0.1.0-dev"
	commit  = "unknown"
)

// command is one of switchboard's commands, as help lists it.
type command struct {
	name, summary string
	run           func(ctx context.Context, stopSignals context.CancelFunc, args []string) error
}

// commands are switchboard's commands, in the order help lists them.
var commands = []command{
	{"serve", "run the server: HTTP API, SIP, WebRTC and media streams (the default command)", serve},
	{"migrate", "apply, undo the last group of, or list the database migrations", withoutSignals(migrateCmd)},
	{"keys", "create, list and revoke API keys", withoutSignals(keysCmd)},
	{"users", "create users who sign in to the dashboard and the login routes", withoutSignals(usersCmd)},
	{"load", "place concurrent calls at a SIP URI and report loss, jitter, latency and CPU", withoutSignals(loadCmd)},
	{"version", "print the version", func(context.Context, context.CancelFunc, []string) error { printVersion(); return nil }},
	{"help", "print this list", nil}, // main's own: the list cannot run itself
}

func withoutSignals(run func(context.Context, []string) error) func(context.Context, context.CancelFunc, []string) error {
	return func(ctx context.Context, _ context.CancelFunc, args []string) error { return run(ctx, args) }
}

// printUsage lists the commands, one line each.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "Switchboard: a telephony-first realtime voice agent server.\n\nUsage: switchboard [COMMAND] [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"switchboard COMMAND --help\" for the flags of a command. Every setting of serve is a\n"+
		"flag and an environment variable, named in its help; \"switchboard --version\" prints the version.\n")
}

func printVersion() { fmt.Printf("switchboard %s (commit %s)\n", version, commit) }

// usageError is a command line or a setting switchboard cannot use: exit status 2, as for
// an unknown command, so that scripts can tell it from a failure of the work.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitStatus is the process's exit status after a command returned err.
func exitStatus(err error) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

func main() {
	// The steady state of a node is small (agents, keys, calls in flight) while requests
	// and media frames churn through short-lived buffers: collecting less often costs
	// little memory and takes collection work and its pauses off the request path.
	// GOGC and GOMEMLIMIT, when set, win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	name := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			name, args = "help", nil
		case "-version", "--version":
			name, args = "version", nil
		default:
			if args[0] != "" && args[0][0] != '-' {
				name, args = args[0], args[1:]
			}
		}
	}
	if name == "help" && len(args) > 0 {
		name, args = args[0], append(args[1:], "--help") // help keys is keys --help
	}
	if name == "help" {
		printUsage(os.Stdout)
		return
	}
	for _, c := range commands {
		if c.name == name {
			err := c.run(ctx, stop, args)
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(os.Stderr, "switchboard:", err)
			}
			stop()
			os.Exit(exitStatus(err))
		}
	}
	fmt.Fprintf(os.Stderr, "switchboard: unknown command %q\n\n", name)
	printUsage(os.Stderr)
	stop()
	os.Exit(2)
}
