package cli

import (
	"context"
	"fmt"

	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/store"
)

// migrateCmd applies, undoes or lists migrations. The action is required: a bare migrate
// prints its usage rather than change the database.
func migrateCmd(ctx context.Context, args []string, p Process) error {
	fs := newFlags(p, "migrate", "[flags] up|down|status",
		"up applies the pending migrations, down undoes the last group applied, status lists them all.")
	c, err := adminConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return settings.UsageError{Err: fmt.Errorf("migrate: want one action: up, down or status")}
	}
	action := fs.Arg(0)
	if action != "up" && action != "down" && action != "status" {
		fs.Usage()
		return settings.UsageError{Err: fmt.Errorf("migrate: unknown action %q (want up, down or status)", action)}
	}
	secret, err := c.ReadSecret()
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
			fmt.Fprintln(p.Stdout, "nothing to apply: the database is up to date")
		}
		for _, n := range names {
			fmt.Fprintln(p.Stdout, "applied", n)
		}
	case "down":
		names, err := st.Rollback(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintln(p.Stdout, "nothing to undo")
		}
		for _, n := range names {
			fmt.Fprintln(p.Stdout, "undid", n)
		}
	case "status":
		return st.MigrationStatus(ctx, p.Stdout)
	}
	return nil
}
