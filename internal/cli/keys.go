package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/switchboard-go/switchboard/internal/config"
	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// keysCmd makes, lists and revokes API keys from the command line: the first key of a new
// server comes from here, and so does the way out when every admin key is lost.
func keysCmd(ctx context.Context, args []string, p Process) error {
	return dispatch(ctx, "keys", []subcommand{
		{"create", "make an API key and print it alone on stdout", keysCreate},
		{"list", "list a tenant's keys: id, prefix, name, created, last used, revoked", keysList},
		{"revoke", "revoke a key, by id or prefix, and every key it made", keysRevoke},
	}, args, p)
}

// keysCreate makes a key. The key alone goes to stdout, so a script can capture it.
func keysCreate(ctx context.Context, args []string, p Process) error {
	fs := newFlags(p, "keys create", "--name NAME [flags]", "Makes an API key and prints it alone on stdout; it is not shown again. The tenant is created if it does not exist.")
	tenant := fs.String("tenant", store.DefaultTenantSlug, "slug of the tenant the key acts for; created if missing")
	name := fs.String("name", "", "name of the key (required)")
	kindName := fs.String("kind", "agent_studio", "agent_studio (as_live_, as_test_) or alumia (alm_live_, alm_test_)")
	envName := fs.String("env", "live", "live (as_live_, alm_live_) or test (as_test_, alm_test_)")
	scopes := fs.String("scopes", "read,write,admin", "comma-separated scopes: read, write, admin")
	rateLimit := fs.Int("rate-limit", 0, "requests a minute (0: the server default)")
	expires := fs.Duration("expires-in", 0, "lifetime of the key, such as 720h (0: no expiry)")
	c, err := adminConfig(fs, args)
	if err != nil {
		return err
	}
	if *name == "" {
		return settings.UsageError{Err: errors.New("keys create: --name is required")}
	}
	kind, kindOK, envOK := store.KeyPrefix(*kindName, *envName)
	switch {
	case !kindOK:
		return settings.UsageError{Err: fmt.Errorf("keys create: --kind must be %s, not %q", store.KeySurfaces, *kindName)}
	case !envOK:
		return settings.UsageError{Err: fmt.Errorf("keys create: --env must be live or test, not %q", *envName)}
	}
	st, err := openAdmin(ctx, c)
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
	fmt.Fprintln(p.Stdout, secret)
	fmt.Fprintf(p.Stderr, "created key %s (%s) for tenant %s with scopes %s; it is not shown again\n", k.ID, k.Name, t.Slug, strings.Join(k.Scopes, ","))
	return nil
}

// keysList prints a tenant's keys, newest first. Only what the store keeps is shown: the
// key's start and end, never the key.
func keysList(ctx context.Context, args []string, p Process) error {
	fs := newFlags(p, "keys list", "[flags]", "Lists a tenant's API keys, newest first: id, prefix (the key's start and end), name, created, last used, revoked. The keys themselves are not kept, so never shown.")
	tenant := fs.String("tenant", store.DefaultTenantSlug, "slug of the tenant whose keys to list")
	asJSON := fs.Bool("json", false, "print the keys as a JSON array")
	c, err := adminConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return settings.UsageError{Err: fmt.Errorf("keys list: unexpected %q", fs.Arg(0))}
	}
	st, err := openAdmin(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	_, keys, err := tenantKeys(ctx, st, *tenant)
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(p.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(keys)
	}
	w := tabwriter.NewWriter(p.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tPREFIX\tNAME\tCREATED\tLAST USED\tREVOKED")
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Display, k.Name, k.CreatedAt.UTC().Format(time.RFC3339), when(k.LastUsedAt), when(k.RevokedAt))
	}
	return w.Flush()
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// tenantKeys reads the tenant of that slug and all its keys, newest first. A tenant that
// does not exist is not created: listing or revoking changes no tenant.
func tenantKeys(ctx context.Context, st *store.Store, slug string) (*store.Tenant, []store.APIKey, error) {
	t, err := st.TenantBySlug(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("no tenant %q", slug)
	} else if err != nil {
		return nil, nil, err
	}
	var keys []store.APIKey
	for page := (store.Page{Limit: 500}); ; page.Offset += page.Limit {
		items, total, err := store.List[store.APIKey](ctx, st, t.ID, page)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, items...)
		if len(items) < page.Limit || len(keys) >= total {
			return t, keys, nil
		}
	}
}

// keysRevoke revokes one key of the tenant, named by its id (key_…), by the start of its
// prefix as keys list shows it (as_live_AbCd, enough of it to name one key), or by the key
// itself; every key it made goes with it.
func keysRevoke(ctx context.Context, args []string, p Process) error {
	fs := newFlags(p, "keys revoke", "[flags] ID|PREFIX", "Revokes a key, named by its id, by enough of its prefix (as keys list shows it) to name one key, or by the key itself; "+
		"every key it made goes with it. Nodes on the same PostgreSQL are told at once, through the cluster's events; a running node on SQLite refuses it within 30 seconds.")
	tenant := fs.String("tenant", store.DefaultTenantSlug, "slug of the tenant of the key")
	c, err := adminConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return settings.UsageError{Err: errors.New("keys revoke: name one key: its id or prefix")}
	}
	ref := fs.Arg(0)
	st, err := openAdmin(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	t, keys, err := tenantKeys(ctx, st, *tenant)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	k, err := findKey(keys, ref)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	revoked, err := st.RevokeAPIKey(ctx, t.ID, k.ID)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	for _, r := range revoked {
		fmt.Fprintf(p.Stdout, "revoked %s %s %s\n", r.ID, r.Display, r.Name)
	}
	if err := announceRevocations(ctx, c, st, revoked); err != nil {
		// The revocation is stored: nodes refuse the keys once their caches forget them.
		fmt.Fprintf(p.Stderr, "running nodes were not told (%v): they refuse the keys within 30 s\n", err)
	}
	return nil
}

// announceRevocations tells the nodes sharing this PostgreSQL database, through the
// cluster's event relay, as a revocation through the API does: they refuse the keys and end
// their streams at once, rather than when their cache of keys forgets them. SQLite has no
// relay; its node refuses them within 30 s.
func announceRevocations(ctx context.Context, c *config.Config, st *store.Store, keys []store.APIKey) error {
	if st.Dialect() != store.Postgres {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var relayDone sync.WaitGroup
	defer func() { cancel(); relayDone.Wait() }()
	log := c.Logger(io.Discard)
	hub := realtime.NewHub(realtime.Options{Log: log})
	relay := realtime.NewPostgresRelay(c.DatabaseURL, hub, log)
	relayDone.Add(1)
	go func() { defer relayDone.Done(); relay.Run(ctx) }()
	for _, k := range keys {
		rv := realtime.Revocation{TenantID: k.TenantID, KeyID: k.ID, Reason: realtime.ReasonKeyRevoked}
		if err := hub.PublishCommitted(ctx, k.TenantID, realtime.TenantTopic, realtime.TypeCredentialRevoked, rv); err != nil {
			return err
		}
	}
	return nil
}

// findKey finds the one key that ref names among keys (see keysRevoke).
func findKey(keys []store.APIKey, ref string) (*store.APIKey, error) {
	ref = strings.TrimSpace(ref)
	hash := store.HashKey(ref)
	var found []*store.APIKey
	for i := range keys {
		k := &keys[i]
		start, _, _ := strings.Cut(k.Display, "…")
		switch {
		case k.ID == ref, k.Hash == hash:
			return k, nil
		case ref != "" && (ref == k.Display || strings.HasPrefix(start, ref)):
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no key has the id or prefix %q", ref)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, k := range found {
		ids[i] = k.ID + " (" + k.Display + ")"
	}
	return nil, fmt.Errorf("%q names %d keys: %s; give more of the prefix, or the id", ref, len(found), strings.Join(ids, ", "))
}
