package realtime

import (
	"sync/atomic"
	"testing"
)

// TestConnectionsRevoke: a revocation ends exactly the connections it names, each once, and
// never one of another tenant.
func TestConnectionsRevoke(t *testing.T) {
	creds := map[string]Credential{
		"keyA":     {TenantID: "t1", KeyID: "k1"},
		"keyB":     {TenantID: "t1", KeyID: "k2"},
		"userFam1": {TenantID: "t1", UserID: "u1", FamilyID: "f1"},
		"userFam2": {TenantID: "t1", UserID: "u1", FamilyID: "f2"},
		"user2":    {TenantID: "t1", UserID: "u2", FamilyID: "f3"},
		"other":    {TenantID: "t2", KeyID: "k1"}, // the same key ID in another tenant cannot be, but must not match
	}
	for _, tc := range []struct {
		name string
		rv   Revocation
		want []string
	}{
		{"nothing named", Revocation{}, nil},
		{"a key", Revocation{TenantID: "t1", KeyID: "k1"}, []string{"keyA"}},
		{"a user", Revocation{TenantID: "t1", UserID: "u1"}, []string{"userFam1", "userFam2"}},
		{"a family", Revocation{TenantID: "t1", UserID: "u1", FamilyID: "f2"}, []string{"userFam2"}},
		{"a tenant", Revocation{TenantID: "t1"}, []string{"keyA", "keyB", "userFam1", "userFam2", "user2"}},
		{"another tenant's key", Revocation{TenantID: "t3", KeyID: "k1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := NewConnections()
			ended := map[string]*atomic.Int32{}
			for name, c := range creds {
				n := new(atomic.Int32)
				ended[name] = n
				cs.Register(c, func(reason string) {
					if reason != ReasonKeyRevoked {
						t.Errorf("%s ended with %q", name, reason)
					}
					n.Add(1)
				})
			}
			if got := cs.Revoke(tc.rv); got != len(tc.want) {
				t.Fatalf("Revoke ended %d connections, want %d", got, len(tc.want))
			}
			cs.Revoke(tc.rv) // a second time ends nothing more
			want := map[string]bool{}
			for _, w := range tc.want {
				want[w] = true
			}
			for name, n := range ended {
				if wantN := map[bool]int32{true: 1, false: 0}[want[name]]; n.Load() != wantN {
					t.Errorf("%s ended %d times, want %d", name, n.Load(), wantN)
				}
			}
			if cs.Len() != len(creds)-len(tc.want) {
				t.Fatalf("%d connections left registered, want %d", cs.Len(), len(creds)-len(tc.want))
			}
		})
	}
}
