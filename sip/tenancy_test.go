package sip

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// tenancyStore opens a migrated store of the dialect with three tenants: the node's default
// tenant (the operator's), acme and globex.
func tenancyStore(t *testing.T, d store.Dialect) (*store.Store, map[string]string) {
	t.Helper()
	ctx := context.Background()
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		if os.Getenv("TEST_DATABASE_URL") != "" {
			opts.URL = pgtest.URL(t)
		} else {
			opts.URL = pgtest.NewCluster(t).URL // a cluster of the test's own, gone when it ends
		}
	}
	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tenants := map[string]string{}
	for _, slug := range []string{"default", "acme", "globex"} {
		ten, err := st.EnsureTenant(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		tenants[slug] = ten.ID
	}
	return st, tenants
}

// tenantAgents answers every agent's calls with the echo, and remembers for which tenant
// each agent was asked.
type tenantAgents struct {
	mu    sync.Mutex
	asked map[string]string // agent ID → tenant ID
}

func (a *tenantAgents) AgentHandler(_ context.Context, tenantID, agentID string) (Handler, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked[agentID] = tenantID
	return builtin("echo"), nil
}

// tenancyCall is one call of a tenancy scenario: what is dialled, whose trunk credentials
// the caller answers a challenge with, and what must come of it.
type tenancyCall struct {
	name string
	user string // the request-URI user
	// auth is the slug of the tenant whose trunk credentials the caller has ("" for none);
	// with "-wrong" after it, the caller has the username and a wrong password.
	auth string
	// early: the caller sends its credentials with the INVITE, answering the last challenge
	// the scenario saw, rather than waiting to be challenged.
	early  bool
	code   int    // the final response
	tenant string // for a 200: the slug of the tenant the record belongs to
	trunk  string // for a 200: the name of the trunk it came over; "" for the no-trunk rule
}

// tenancyTrunk is an inbound trunk of a scenario, of the tenant slug.
type tenancyTrunk struct {
	tenant, name string
	cidrs        []string
	password     bool // digest with the credentials of trunkCredentials
}

// trunkCredentials are the inbound credentials of the tenant's trunk with a password.
func trunkCredentials(slug string) (user, password string) { return slug + "-pbx", slug + " s3cret" }

// Two tenants' trunks that allow the same addresses never move a call from one tenant to
// another: a dialled number (E.164 or SIP user) decides the tenant and only that tenant's
// trunks are consulted; the default tenant's no-trunk rule keeps working while others have
// trunks; an operator's trunk with a password still challenges its callers; and a built-in
// destination dialled by name goes to the tenant of the trunk whose credentials the caller
// sends, else to the default tenant when its rule takes the caller (no other tenant's
// trunk, for 127.0.0.0/8 or for any address with a password, can take, challenge or refuse
// it), else to the one other tenant that claims the address, and is challenged or refused
// when several do. Every call of SQLite and of PostgreSQL is checked for its record's
// tenant and trunk.
func TestTrunksOfTenants(t *testing.T) {
	numbers := map[string][][2]string{ // tenant → {number, destination}; "agent" routes to an agent
		"default": {{"demo", "echo"}, {"+14155550100", "tone"}},
		"acme":    {{"+14155550101", "tone"}, {"alice", "agent"}},
		"globex":  {{"+14155550102", "echo"}, {"bob", "tone"}},
	}
	scenarios := []struct {
		name   string
		trunks []tenancyTrunk
		calls  []tenancyCall
	}{{
		name: "overlapping trunks, default without trunks",
		trunks: []tenancyTrunk{
			{tenant: "acme", name: "lab", cidrs: []string{"127.0.0.0/8"}},
			{tenant: "globex", name: "pbx", cidrs: []string{"127.0.0.0/8"}, password: true},
		},
		calls: []tenancyCall{
			{name: "default SIP user by the no-trunk rule", user: "demo", code: 200, tenant: "default"},
			{name: "default E.164 number by the no-trunk rule", user: "14155550100", code: 200, tenant: "default"},
			{name: "acme E.164 over its trunk", user: "+14155550101", code: 200, tenant: "acme", trunk: "lab"},
			{name: "acme agent over its trunk", user: "alice", code: 200, tenant: "acme", trunk: "lab"},
			{name: "acme number with globex credentials", user: "+14155550101", auth: "globex", code: 200, tenant: "acme", trunk: "lab"},
			{name: "globex E.164 without credentials", user: "+14155550102", code: 401},
			{name: "globex E.164 with acme's address only", user: "14155550102", code: 401},
			{name: "globex E.164 authenticated", user: "+14155550102", auth: "globex", code: 200, tenant: "globex", trunk: "pbx"},
			{name: "globex SIP user authenticated", user: "bob", auth: "globex", code: 200, tenant: "globex", trunk: "pbx"},
			{name: "echo to the default tenant whatever others' trunks allow", user: "echo", code: 200, tenant: "default"},
			{name: "tone to the default tenant whatever others' trunks allow", user: "tone", code: 200, tenant: "default"},
			{name: "echo with globex credentials sent at once", user: "echo", auth: "globex", early: true, code: 200, tenant: "globex", trunk: "pbx"},
			{name: "tone with globex credentials sent at once", user: "tone", auth: "globex", early: true, code: 200, tenant: "globex", trunk: "pbx"},
			{name: "echo with acme's credentials, which no trunk has", user: "echo", auth: "acme", early: true, code: 200, tenant: "default"},
			{name: "an unknown number to a caller the default tenant takes", user: "nobody", code: 404},
		},
	}, {
		name: "an operator's digest trunk and a tenant's trunk for the same addresses",
		trunks: []tenancyTrunk{
			{tenant: "default", name: "operator", cidrs: []string{"127.0.0.0/8"}, password: true},
			{tenant: "globex", name: "lab", cidrs: []string{"127.0.0.0/8"}},
		},
		calls: []tenancyCall{
			{name: "operator number challenged", user: "demo", code: 401},
			{name: "operator number authenticated", user: "demo", auth: "default", code: 200, tenant: "default", trunk: "operator"},
			{name: "operator E.164 authenticated", user: "+14155550100", auth: "default", code: 200, tenant: "default", trunk: "operator"},
			{name: "globex number over its trunk", user: "bob", code: 200, tenant: "globex", trunk: "lab"},
			{name: "globex E.164 over its trunk", user: "+14155550102", code: 200, tenant: "globex", trunk: "lab"},
			{name: "acme without trunks takes no calls", user: "alice", code: 403},
			{name: "echo challenged for the operator", user: "echo", code: 401},
			{name: "echo with the operator's credentials", user: "echo", auth: "default", code: 200, tenant: "default", trunk: "operator"},
		},
	}, {
		name: "one tenant claims the address",
		trunks: []tenancyTrunk{
			{tenant: "default", name: "carrier", cidrs: []string{"203.0.113.0/24"}},
			{tenant: "acme", name: "lab", cidrs: []string{"127.0.0.0/8"}},
		},
		calls: []tenancyCall{
			{name: "echo to the one tenant that allows the address", user: "echo", code: 200, tenant: "acme", trunk: "lab"},
			{name: "tone to the one tenant that allows the address", user: "tone", code: 200, tenant: "acme", trunk: "lab"},
			{name: "an unknown number", user: "nobody", code: 404},
			{name: "default number from an address its trunk does not allow", user: "demo", code: 403},
			{name: "default E.164 from an address its trunk does not allow", user: "+14155550100", code: 403},
		},
	}, {
		name: "another tenant's trunk for the default tenant's private callers",
		trunks: []tenancyTrunk{
			{tenant: "acme", name: "lab", cidrs: []string{"127.0.0.0/8"}},
		},
		calls: []tenancyCall{
			{name: "echo to the default tenant", user: "echo", code: 200, tenant: "default"},
			{name: "tone to the default tenant", user: "tone", code: 200, tenant: "default"},
			{name: "default SIP user", user: "demo", code: 200, tenant: "default"},
			{name: "acme agent over its trunk", user: "alice", code: 200, tenant: "acme", trunk: "lab"},
			{name: "an unknown number", user: "nobody", code: 404},
			{name: "globex without trunks takes no calls", user: "bob", code: 403},
		},
	}, {
		name: "another tenant's trunk for any address with a password",
		trunks: []tenancyTrunk{
			{tenant: "globex", name: "anywhere", cidrs: []string{"0.0.0.0/0"}, password: true},
		},
		calls: []tenancyCall{
			{name: "echo to the default tenant", user: "echo", code: 200, tenant: "default"},
			{name: "tone to the default tenant", user: "tone", code: 200, tenant: "default"},
			{name: "default E.164 number", user: "+14155550100", code: 200, tenant: "default"},
			{name: "an unknown number", user: "nobody", code: 404},
			{name: "globex number challenged", user: "bob", code: 401},
			{name: "globex number authenticated", user: "bob", auth: "globex", code: 200, tenant: "globex", trunk: "anywhere"},
			{name: "echo with globex credentials sent at once", user: "echo", auth: "globex", early: true, code: 200, tenant: "globex", trunk: "anywhere"},
			{name: "echo with a wrong globex password sent at once", user: "echo", auth: "globex-wrong", early: true, code: 200, tenant: "default"},
			{name: "tone after all that", user: "tone", code: 200, tenant: "default"},
		},
	}}
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		for _, sc := range scenarios {
			t.Run(string(d)+"/"+sc.name, func(t *testing.T) {
				verifyNoLeaks(t)
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				st, tenants := tenancyStore(t, d)
				agents := &tenantAgents{asked: map[string]string{}}
				agentOf := map[string]string{} // agent ID → tenant slug
				for slug, list := range numbers {
					for _, n := range list {
						if n[1] != "agent" {
							routeNumber(t, st, tenants[slug], n[0], n[1])
							continue
						}
						a := store.NewAgent()
						a.Name = "desk"
						if err := store.Create(ctx, st, tenants[slug], a); err != nil {
							t.Fatal(err)
						}
						pn := store.NewPhoneNumber()
						pn.Number, pn.AgentID = n[0], &a.ID
						if err := store.Create(ctx, st, tenants[slug], pn); err != nil {
							t.Fatal(err)
						}
						agentOf[a.ID] = slug
					}
				}
				trunkIDs := map[string]string{} // "slug/name" → ID
				for _, tt := range sc.trunks {
					tr := newInboundTrunk(t, st, tenants[tt.tenant], func(tr *store.Trunk) {
						tr.Name, tr.Inbound.AllowedCIDRs = tt.name, tt.cidrs
						if tt.password {
							tr.Inbound.Username, tr.Inbound.Password = trunkCredentials(tt.tenant)
						}
					})
					trunkIDs[tt.tenant+"/"+tt.name] = tr.ID
				}
				events := newEventLog()
				_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenants["default"], Events: events, Agents: agents})
				u := newTestCaller(t)
				peer := newRTPPeer(t)
				offer := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)

				recorded := map[string]int{} // tenant slug → calls answered
				var lastChallenge map[string]string
				for _, c := range sc.calls {
					var opts sipgo.AnswerOptions
					var hdrs []sip.Header
					switch {
					case c.early && lastChallenge == nil:
						t.Fatalf("%s: no challenge seen yet to answer", c.name)
					case c.early:
						user, password := trunkCredentials(strings.TrimSuffix(c.auth, "-wrong"))
						if strings.HasSuffix(c.auth, "-wrong") {
							password += " not"
						}
						hdrs = append(hdrs, digestAuthorization(lastChallenge, "sip:"+c.user+"@"+addr, user, password))
					case c.auth != "":
						opts.Username, opts.Password = trunkCredentials(c.auth)
					}
					var mu sync.Mutex
					var seen []int
					opts.OnResponse = func(res *sip.Response) error {
						mu.Lock()
						seen = append(seen, res.StatusCode)
						mu.Unlock()
						return nil
					}
					dlg, res, err := u.try(ctx, uri(t, c.user, addr), offer, opts, hdrs...)
					if err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
					if h := res.GetHeader("WWW-Authenticate"); res.StatusCode == 401 && h != nil {
						if ch, err := parseChallenge(h.Value()); err == nil {
							lastChallenge = ch
						}
					}
					if dlg == nil {
						if res.StatusCode != c.code {
							t.Errorf("%s: %d %s, want %d", c.name, res.StatusCode, res.Reason, c.code)
						}
						if c.code == 401 && res.GetHeader("WWW-Authenticate") == nil {
							t.Errorf("%s: a 401 without a challenge", c.name)
						}
						continue
					}
					rec := answeredCall(ctx, t, events, dlg.InviteRequest.CallID().Value())
					bye(ctx, t, dlg)
					_ = dlg.Close()
					if c.code != 200 {
						t.Errorf("%s: answered, want %d", c.name, c.code)
						continue
					}
					mu.Lock()
					challenged := false
					for _, code := range seen {
						challenged = challenged || code == 401
					}
					mu.Unlock()
					if challenged != (c.auth != "" && !c.early && c.trunk != "" && trunkHasPassword(sc.trunks, c.tenant, c.trunk)) {
						t.Errorf("%s: responses %v: challenged %v", c.name, seen, challenged)
					}
					wantTrunk := trunkIDs[c.tenant+"/"+c.trunk]
					gotTrunk := ""
					if rec.TrunkID != nil {
						gotTrunk = *rec.TrunkID
					}
					if rec.TenantID != tenants[c.tenant] || gotTrunk != wantTrunk {
						t.Errorf("%s: record of tenant %s over trunk %q, want %s (%s) over %q", c.name, rec.TenantID, gotTrunk, tenants[c.tenant], c.tenant, wantTrunk)
					}
					if rec.AgentID != nil {
						agents.mu.Lock()
						asked := agents.asked[*rec.AgentID]
						agents.mu.Unlock()
						if owner := agentOf[*rec.AgentID]; owner != c.tenant || asked != tenants[c.tenant] {
							t.Errorf("%s: agent of %s asked for tenant %s, want %s", c.name, owner, asked, c.tenant)
						}
					}
					got := endedCall(ctx, t, events, st, tenants[c.tenant], rec.ID)
					if got.Status != store.CallCompleted {
						t.Errorf("%s: stored record %s, want completed", c.name, got.Status)
					}
					recorded[c.tenant]++
				}
				// Each tenant holds its own calls and no other's.
				for slug, id := range tenants {
					calls, total, err := store.List[store.Call](ctx, st, id, store.Page{Limit: 100})
					if err != nil {
						t.Fatal(err)
					}
					if total != recorded[slug] {
						t.Errorf("tenant %s holds %d calls, want %d", slug, total, recorded[slug])
					}
					for _, c := range calls {
						if c.TenantID != id {
							t.Errorf("tenant %s lists a call of %s", slug, c.TenantID)
						}
					}
				}
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					t.Fatal("scenario ran out of time")
				}
			})
		}
	}
}

// trunkHasPassword says whether the scenario's trunk of the tenant takes calls by digest.
func trunkHasPassword(trunks []tenancyTrunk, tenant, name string) bool {
	for _, tt := range trunks {
		if tt.tenant == tenant && tt.name == name {
			return tt.password
		}
	}
	return false
}
