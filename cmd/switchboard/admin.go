package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/store"
)

// The administration commands: migrate here, keys and users beside it. Each reads the
// store's settings (--data-dir, --database-url, --secret, …) the way serve does.

// newFlags makes the flag set of a command: its usage line, what it does, then its flags.
func newFlags(name, usage, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: switchboard %s %s\n\n%s\n\nflags (each has an environment variable, in brackets, unless it is the command's own):\n", name, usage, about)
		settings.PrintDefaults(fs)
	}
	return fs
}

// adminConfig reads from args the store's settings and the command's own flags, which the
// command registered on fs before.
func adminConfig(fs *flag.FlagSet, args []string) (*config, error) {
	return parseConfig(fs, args, os.LookupEnv, (*config).storeSettings)
}

// openAdmin opens the store for an administration command, migrated, with the secret read
// once; its log goes nowhere, since the command's output is its answer.
func openAdmin(ctx context.Context, c *config) (*store.Store, error) {
	secret, err := c.secret()
	if err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	st, _, err := openStore(ctx, c, secret, c.logger(io.Discard))
	return st, err
}

// subcommand is one verb of a command of several (keys create, keys list, …).
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

// dispatch runs the verb args[0] of command name. No verb, or one it does not know, prints
// the verbs and is a usage error; help, -h or --help prints them and is not.
func dispatch(ctx context.Context, name string, subs []subcommand, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: switchboard %s COMMAND [flags]\n\ncommands:\n", name)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-7s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun \"switchboard %s COMMAND --help\" for the flags of a command.\n", name)
	}
	if len(args) == 0 {
		usage(os.Stderr)
		return usageError{fmt.Errorf("%s: which command? (%s)", name, verbs(subs))}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(os.Stdout)
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:])
		}
	}
	usage(os.Stderr)
	return usageError{fmt.Errorf("%s: unknown command %q (want %s)", name, args[0], verbs(subs))}
}

func verbs(subs []subcommand) string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// migrateCmd applies, undoes or lists migrations. The action is required: a bare migrate
// prints its usage rather than change the database.
func migrateCmd(ctx context.Context, args []string) error {
	fs := newFlags("migrate", "[flags] up|down|status",
		"up applies the pending migrations, down undoes the last group applied, status lists them all.")
	c, err := adminConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("migrate: want one action: up, down or status")}
	}
	action := fs.Arg(0)
	if action != "up" && action != "down" && action != "status" {
		fs.Usage()
		return usageError{fmt.Errorf("migrate: unknown action %q (want up, down or status)", action)}
	}
	secret, err := c.secret()
	if err != nil {
		return fmt.Errorf("server secret: %w", err)
	}
	st, err := store.Open(ctx, store.Options{URL: c.DatabaseURL, DataDir: c.DataDir, Secret: secret})
	if err != nil {
		return err
	}
	defer st.Close()
	switch action {
	case "up":
		names, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Println("nothing to apply: the database is up to date")
		}
		for _, n := range names {
			fmt.Println("applied", n)
		}
	case "down":
		names, err := st.Rollback(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Println("nothing to undo")
		}
		for _, n := range names {
			fmt.Println("undid", n)
		}
	case "status":
		return st.MigrationStatus(ctx, os.Stdout)
	}
	return nil
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
