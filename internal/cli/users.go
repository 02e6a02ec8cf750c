package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/store"
)

// usersCmd manages the users who sign in with an email and password: the studio (dashboard)
// and the login routes of the compatible surfaces. Their passwords are stored as bcrypt
// hashes (store.User).
func usersCmd(ctx context.Context, args []string, p Process) error {
	return dispatch(ctx, "users", []subcommand{
		{"create", "make a user who signs in with an email and password", usersCreate},
	}, args, p)
}

// usersCreate makes a user. The password is read from stdin (--password-stdin), never from
// the command line where other users of the machine could read it; without it, one is made
// and printed alone on stdout.
func usersCreate(ctx context.Context, args []string, p Process) error {
	fs := newFlags(p, "users create", "--email EMAIL [flags]", "Makes a user of a tenant (created if missing) who signs in to the studio and the login routes. "+
		"The password is read from the first line of stdin with --password-stdin; otherwise one is made and printed alone on stdout, not shown again.")
	tenant := fs.String("tenant", store.DefaultTenantSlug, "slug of the user's tenant; created if missing")
	email := fs.String("email", "", "the user's email, unique within the tenant (required)")
	name := fs.String("name", "", "the user's name")
	scopes := fs.String("scopes", "read,write,admin", "comma-separated scopes: read, write, admin")
	fromStdin := fs.Bool("password-stdin", false, "read the password (8 to 72 characters) from the first line of stdin")
	c, err := adminConfig(fs, args)
	if err != nil {
		return err
	}
	if *email == "" {
		return settings.UsageError{Err: errors.New("users create: --email is required")}
	}
	if fs.NArg() > 0 {
		return settings.UsageError{Err: fmt.Errorf("users create: unexpected %q (the password is read from stdin with --password-stdin)", fs.Arg(0))}
	}
	password, made := "", false
	if *fromStdin {
		line, err := bufio.NewReader(p.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return settings.UsageError{Err: errors.New("users create: --password-stdin: stdin held no password")}
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		password, made = rand.Text(), true
	}
	if len(password) < 8 || len(password) > 72 {
		return settings.UsageError{Err: errors.New("users create: the password must be 8 to 72 characters")}
	}
	u := &store.User{Email: *email, Name: *name, Password: password, Scopes: splitList(*scopes)}
	// The user's own mistakes are named by the flag that carries them, before the store is
	// opened: nothing is written for a user that cannot be made.
	if err := u.Validate(); err != nil && !passwordHashMissing(err) {
		return settings.UsageError{Err: fmt.Errorf("users create: %s", flagsOf(err))}
	}
	st, err := openAdmin(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.EnsureTenant(ctx, *tenant)
	if err != nil {
		return fmt.Errorf("users create: tenant %q: %w", *tenant, err)
	}
	if err := store.Create(ctx, st, t.ID, u); err != nil {
		var conflict *store.ConflictError
		if errors.As(err, &conflict) {
			return fmt.Errorf("users create: tenant %s already has a user of the email %s", t.Slug, u.Email)
		}
		return fmt.Errorf("users create: %s", flagsOf(err))
	}
	if made {
		fmt.Fprintln(p.Stdout, password)
	}
	fmt.Fprintf(p.Stderr, "created user %s (%s) of tenant %s with scopes %s\n", u.ID, u.Email, t.Slug, strings.Join(u.Scopes, ","))
	return nil
}

// passwordHashMissing reports whether Validate found fault only with the password, which
// it cannot judge before the store hashes it (its length was checked already).
func passwordHashMissing(err error) bool {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	for _, f := range ve.Fields {
		if f.Field != "password" {
			return false
		}
	}
	return true
}

// flagsOf says a store's validation error in the flags' names.
func flagsOf(err error) string {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	parts := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		field := f.Field
		switch {
		case field == "password":
			field = "the password"
		case strings.HasPrefix(field, "scopes"):
			field = "--scopes"
		default:
			field = "--" + field
		}
		parts[i] = field + " " + f.Message
	}
	return strings.Join(parts, "; ")
}
