package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchboard-go/switchboard/internal/config"
	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/store"
)

// The administration commands (migrate, keys, users) read the store's settings
// (--data-dir, --database-url, --secret, …) the way serve does, beside their own flags.

// newFlags makes the flag set of a command: its usage line, what it does, then its flags,
// written to the command's stderr.
func newFlags(p Process, name, usage, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: switchboard %s %s\n\n%s\n\nflags (each has an environment variable, in brackets, unless it is the command's own):\n", name, usage, about)
		settings.PrintDefaults(fs)
	}
	return fs
}

// adminConfig reads from args the store's settings and the command's own flags, which the
// command registered on fs before.
func adminConfig(fs *flag.FlagSet, args []string) (*config.Config, error) {
	return config.Parse(fs, args, os.LookupEnv, (*config.Config).StoreSettings)
}

// openAdmin opens the store for an administration command, migrated, with the secret read
// once; its log goes nowhere, since the command's output is its answer.
func openAdmin(ctx context.Context, c *config.Config) (*store.Store, error) {
	secret, err := c.ReadSecret()
	if err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	st, _, err := c.OpenStore(ctx, secret, c.Logger(io.Discard))
	return st, err
}

// subcommand is one verb of a command of several (keys create, keys list, …).
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string, p Process) error
}

// dispatch runs the verb args[0] of command name. No verb, or one it does not know, prints
// the verbs and is a usage error; help, -h or --help prints them and is not.
func dispatch(ctx context.Context, name string, subs []subcommand, args []string, p Process) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: switchboard %s COMMAND [flags]\n\ncommands:\n", name)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-7s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun \"switchboard %s COMMAND --help\" for the flags of a command.\n", name)
	}
	if len(args) == 0 {
		usage(p.Stderr)
		return settings.UsageError{Err: fmt.Errorf("%s: which command? (%s)", name, verbs(subs))}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(p.Stdout)
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], p)
		}
	}
	usage(p.Stderr)
	return settings.UsageError{Err: fmt.Errorf("%s: unknown command %q (want %s)", name, args[0], verbs(subs))}
}

func verbs(subs []subcommand) string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
