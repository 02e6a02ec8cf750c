// Command switchboard runs the Switchboard voice agent server and its administration
// commands: serve (the default), migrate, keys, users, load and version. main is wiring:
// the commands live in internal/cli, serve's construction in serve.go.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/switchboard-go/switchboard/internal/cli"
)

// Set by the build (make build: -ldflags "-X main.version=… -X main.commit=…").
var (
	version = "0.1.0-dev"
	commit  = "unknown"
)

// commands are switchboard's commands, in the order help lists them.
var commands = append([]cli.Command{
	{Name: "serve", Summary: "run the server: HTTP API, SIP, WebRTC and media streams (the default command)",
		Run: func(ctx context.Context, args []string, p cli.Process) error { return serve(ctx, p.StopSignals, args) }},
}, cli.Commands()...)

func main() {
	// The steady state of a node is small (agents, keys, calls in flight) while requests
	// and media frames churn through short-lived buffers: collecting less often costs
	// little memory and takes collection work and its pauses off the request path.
	// GOGC and GOMEMLIMIT, when set, win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Program{Commands: commands, Version: version, Commit: commit}, os.Args[1:],
		cli.Process{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, StopSignals: stop})
	stop()
	os.Exit(code)
}
