package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// migrateCmd applies, undoes or lists migrations.
func migrateCmd(ctx context.Context, args []string) error {
	var c config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	c.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: switchboard migrate [flags] up|down|status")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	action := "up"
	if fs.NArg() > 0 {
		action = fs.Arg(0)
	}
	secret, err := c.secret()
	if err != nil {
		return err
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
	default:
		return fmt.Errorf("migrate: unknown action %q (want up, down or status)", action)
	}
	return nil
}

// keysCmd makes API keys from the command line: the first key of a new server comes from
// here. The key alone goes to stdout, so a script can capture it.
func keysCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("keys: usage: switchboard keys create --name NAME [--tenant SLUG] [--kind agent_studio|alumia] [--env live|test] [--scopes read,write,admin]")
	}
	var c config
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	c.register(fs)
	tenant := fs.String("tenant", store.DefaultTenantSlug, "slug of the tenant the key acts for; created if missing")
	name := fs.String("name", "", "name of the key (required)")
	kindName := fs.String("kind", "agent_studio", "agent_studio (as_live_, as_test_) or alumia (alm_live_, alm_test_)")
	envName := fs.String("env", "live", "live (as_live_, alm_live_) or test (as_test_, alm_test_)")
	scopes := fs.String("scopes", "read,write,admin", "comma-separated scopes: read, write, admin")
	rateLimit := fs.Int("rate-limit", 0, "requests a minute (0: the server default)")
	expires := fs.Duration("expires-in", 0, "lifetime of the key, such as 720h (0: no expiry)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("keys create: --name is required")
	}
	kind, kindOK, envOK := store.KeyPrefix(*kindName, *envName)
	switch {
	case !kindOK:
		return fmt.Errorf("keys create: --kind must be %s, not %q", store.KeySurfaces, *kindName)
	case !envOK:
		return fmt.Errorf("keys create: --env must be live or test, not %q", *envName)
	}
	log, err := c.logger(io.Discard)
	if err != nil {
		return err
	}
	st, _, err := openStore(ctx, &c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.EnsureTenant(ctx, *tenant)
	if err != nil {
		return fmt.Errorf("keys create: tenant %q: %w", *tenant, err)
	}
	k := &store.APIKey{Name: *name, Kind: kind, Scopes: splitList(*scopes), RateLimit: *rateLimit}
	if *expires > 0 {
		at := time.Now().UTC().Add(*expires)
		k.ExpiresAt = &at
	}
	secret, err := st.CreateAPIKey(ctx, t.ID, k)
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	fmt.Println(secret)
	fmt.Fprintf(os.Stderr, "created key %s (%s) for tenant %s with scopes %s; it is not shown again\n", k.ID, k.Name, t.Slug, strings.Join(k.Scopes, ","))
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
