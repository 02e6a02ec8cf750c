// Command switchboard runs the Switchboard voice agent server and its administration
// commands: serve (the default), migrate, keys, load and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

const usage = `Switchboard: a telephony-first realtime voice agent server.

Usage:
  switchboard [serve] [flags]        run the server (HTTP API; SIP and media in later releases)
  switchboard migrate up|down|status apply, undo the last group of, or list the migrations
  switchboard keys create --name NAME [--tenant SLUG] [--env live|test] [--scopes read,write,admin]
                                     make an API key and print it alone on stdout
  switchboard load [flags] sip:echo@HOST:PORT
                                     place concurrent calls and report loss, jitter, latency, CPU
  switchboard version                print the version

Run "switchboard COMMAND -h" for the flags of a command. Every flag has an environment
variable, named in its help.
`

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
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, stop, args)
	case "migrate":
		err = migrateCmd(ctx, args)
	case "keys":
		err = keysCmd(ctx, args)
	case "load":
		err = loadCmd(ctx, args)
	case "version":
		fmt.Printf("switchboard %s (commit %s)\n", version, commit)
	case "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "switchboard: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}
