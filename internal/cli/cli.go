// Package cli is switchboard's command line: the list of commands and its help, the version,
// exit statuses, and the commands besides serve: migrate, keys, users (the administration
// commands, on the store serve uses) and load. main gives it serve and the process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchboard-go/switchboard/internal/settings"
)

// Process is what a command is given of the process that runs it.
type Process struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// StopSignals makes the next SIGINT or SIGTERM kill the process at once: serve calls it
	// when the first has begun its drain.
	StopSignals func()
}

// Command is one of switchboard's commands, as help lists it. Run's error is printed after
// "switchboard: " and sets the exit status (ExitStatus).
type Command struct {
	Name, Summary string
	Run           func(ctx context.Context, args []string, p Process) error
}

// Commands are the commands of this package, in the order help lists them after serve.
func Commands() []Command {
	return []Command{
		{"migrate", "apply, undo the last group of, or list the database migrations", migrateCmd},
		{"keys", "create, list and revoke API keys", keysCmd},
		{"users", "create users who sign in to the dashboard and the login routes", usersCmd},
		{"load", "place concurrent calls at a SIP URI and report loss, jitter, latency and CPU", loadCmd},
	}
}

// Program is the whole command line: its commands, the first of which runs when none is
// named, and the version the build set.
type Program struct {
	Commands        []Command
	Version, Commit string
}

// Run runs the command args name and returns the process's exit status: 0 for success and
// for help, 2 for a command line it cannot use (an unknown command, a bad flag or setting),
// 1 for a failure of the work.
func Run(ctx context.Context, prog Program, args []string, p Process) int {
	name := prog.Commands[0].Name
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
	switch name {
	case "help":
		prog.printUsage(p.Stdout)
		return 0
	case "version":
		fmt.Fprintf(p.Stdout, "switchboard %s (commit %s)\n", prog.Version, prog.Commit)
		return 0
	}
	for _, c := range prog.Commands {
		if c.Name == name {
			err := c.Run(ctx, args, p)
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(p.Stderr, "switchboard:", err)
			}
			return ExitStatus(err)
		}
	}
	fmt.Fprintf(p.Stderr, "switchboard: unknown command %q\n\n", name)
	prog.printUsage(p.Stderr)
	return 2
}

// printUsage lists the commands, one line each.
func (prog Program) printUsage(w io.Writer) {
	fmt.Fprint(w, "Switchboard: a telephony-first realtime voice agent server.\n\nUsage: switchboard [COMMAND] [flags]\n\nCommands:\n")
	list := append(prog.Commands[:len(prog.Commands):len(prog.Commands)],
		Command{Name: "version", Summary: "print the version"}, Command{Name: "help", Summary: "print this list"})
	for _, c := range list {
		fmt.Fprintf(w, "  %-9s %s\n", c.Name, c.Summary)
	}
	fmt.Fprint(w, "\nRun \"switchboard COMMAND --help\" for the flags of a command. Every setting of serve is a\n"+
		"flag and an environment variable, named in its help; \"switchboard --version\" prints the version.\n")
}

// ExitStatus is the process's exit status after a command returned err. A
// settings.UsageError is 2, as for an unknown command, so that scripts can tell it from a
// failure of the work.
func ExitStatus(err error) int {
	var ue settings.UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}
