package sip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/store"
)

// BenchmarkAuthenticate measures deciding an INVITE's tenant on a node whose tenants each
// have a trunk (for public addresses of their own) and a number: a call to a number reads that number and its tenant's trunks
// only, whatever the number of tenants; a built-in destination by name weighs every trunk.
func BenchmarkAuthenticate(b *testing.B) {
	const tenants = 500
	ctx := context.Background()
	st, def := benchStore(b)
	for i := range tenants {
		ten, err := st.EnsureTenant(ctx, fmt.Sprintf("t%d", i))
		if err != nil {
			b.Fatal(err)
		}
		tr := store.NewTrunk()
		tr.Name, tr.Inbound.AllowedCIDRs = "carrier", []string{fmt.Sprintf("198.%d.%d.0/24", 18+i/256, i%256)}
		if err := store.Create(ctx, st, ten.ID, tr); err != nil {
			b.Fatal(err)
		}
		pn := store.NewPhoneNumber()
		pn.Number, pn.Destination = fmt.Sprintf("+1415555%04d", i), "echo"
		if err := store.Create(ctx, st, ten.ID, pn); err != nil {
			b.Fatal(err)
		}
	}
	s := &Server{cfg: Config{Store: st, DefaultTenantID: def.ID}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nonces: newNonces()}
	i := tenants / 2
	src := netip.MustParseAddr(fmt.Sprintf("198.%d.%d.7", 18+i/256, i%256))
	for _, bc := range []struct{ name, user string }{
		{"number", fmt.Sprintf("+1415555%04d", i)},
		{"builtin", "echo"},
	} {
		b.Run(fmt.Sprintf("%s/%d-tenants", bc.name, tenants), func(b *testing.B) {
			req := sip.NewRequest(sip.INVITE, sip.Uri{User: bc.user, Host: "127.0.0.1"})
			b.ReportAllocs()
			for b.Loop() {
				who, ref := s.authenticate(ctx, req, src)
				if ref != nil || who.trunk == nil {
					b.Fatalf("%+v %v", who, ref)
				}
			}
		})
	}
}

// benchStore is a migrated SQLite store of the benchmark's own, with its default tenant.
func benchStore(b *testing.B) (*store.Store, *store.Tenant) {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: b.TempDir(), Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	def, err := st.EnsureTenant(ctx, "default")
	if err != nil {
		b.Fatal(err)
	}
	return st, def
}
