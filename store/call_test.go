package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

var callSecret = []byte("switchboard-test-secret-0123456789")

// callFixture is a tenant with an agent and an outbound trunk to place calls with.
type callFixture struct {
	tenant *store.Tenant
	agent  *store.Agent
	trunk  *store.Trunk
}

func newCallFixture(t *testing.T, s *store.Store, slug string) callFixture {
	t.Helper()
	ctx := context.Background()
	ten, err := s.EnsureTenant(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	a := store.NewAgent()
	a.Name = "desk"
	if err := store.Create(ctx, s, ten.ID, a); err != nil {
		t.Fatal(err)
	}
	tr := store.NewTrunk()
	tr.Name, tr.Direction = "carrier", "outbound"
	tr.Outbound.Address = "sip.carrier.example:5060"
	if err := store.Create(ctx, s, ten.ID, tr); err != nil {
		t.Fatal(err)
	}
	return callFixture{tenant: ten, agent: a, trunk: tr}
}

func ptr(s string) *string { return &s }

func TestCallValidate(t *testing.T) {
	t.Parallel()
	agent, trunk := "agt_01jdq3aaaaaaaaaaaaaaaaaaaa", "trk_01jdq3aaaaaaaaaaaaaaaaaaaa"
	for _, tt := range []struct {
		name  string
		edit  func(c *store.Call)
		field string // "" when valid
	}{
		{"number over a trunk to an agent", func(c *store.Call) {}, ""},
		{"sip URI needs no trunk", func(c *store.Call) { c.To, c.TrunkID = "sip:alice@pbx.example.com:5080;transport=tcp", nil }, ""},
		{"sips URI to a host", func(c *store.Call) { c.To, c.TrunkID = "sips:pbx.example.com", nil }, ""},
		{"IPv6 host", func(c *store.Call) { c.To, c.TrunkID = "sip:bob@[2001:db8::1]:5060", nil }, ""},
		{"SIP user over a trunk", func(c *store.Call) { c.To = "alice.smith" }, ""},
		{"tone destination", func(c *store.Call) { c.AgentID, c.Destination = nil, "tone" }, ""},
		{"E.164 from", func(c *store.Call) { c.From = "+14155550199" }, ""},
		{"to missing", func(c *store.Call) { c.To = "" }, "to"},
		{"to bad E.164", func(c *store.Call) { c.To = "+0123" }, "to"},
		{"to bad user", func(c *store.Call) { c.To = "alice smith" }, "to"},
		{"to bad URI", func(c *store.Call) { c.To = "sip:alice@" }, "to"},
		{"to bad port", func(c *store.Call) { c.To, c.TrunkID = "sip:alice@pbx:99999", nil }, "to"},
		{"from bad", func(c *store.Call) { c.From = "not a number" }, "from"},
		{"neither agent nor destination", func(c *store.Call) { c.AgentID = nil }, "agent_id"},
		{"both agent and destination", func(c *store.Call) { c.Destination = "echo" }, "destination"},
		{"unknown destination", func(c *store.Call) { c.AgentID, c.Destination = nil, "voicemail" }, "destination"},
		{"number without trunk", func(c *store.Call) { c.TrunkID = nil }, "trunk_id"},
		{"user without trunk", func(c *store.Call) { c.To, c.TrunkID = "alice", nil }, "trunk_id"},
		{"bad agent id", func(c *store.Call) { c.AgentID = ptr("agent-1") }, "agent_id"},
		{"bad trunk id", func(c *store.Call) { c.TrunkID = ptr("trk_x") }, "trunk_id"},
		{"timeout too long", func(c *store.Call) { c.TimeoutSeconds = 121 }, "timeout_seconds"},
		{"timeout negative", func(c *store.Call) { c.TimeoutSeconds = -1 }, "timeout_seconds"},
		{"bad direction", func(c *store.Call) { c.Direction = "sideways" }, "direction"},
		{"bad status", func(c *store.Call) { c.Status = "ringing-ish" }, "status"},
		{"inbound needs no target", func(c *store.Call) {
			c.Direction, c.To, c.AgentID, c.TrunkID = store.CallInbound, "", nil, nil
		}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := store.NewOutboundCall()
			c.To, c.AgentID, c.TrunkID = "+14155550100", ptr(agent), ptr(trunk)
			tt.edit(c)
			err := c.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("valid call refused: %v", err)
			case tt.field != "" && !slices.Contains(fieldsOf(err), tt.field):
				t.Fatalf("error %v does not name %s", err, tt.field)
			}
		})
	}
	c := store.NewOutboundCall()
	c.To, c.Destination, c.TimeoutSeconds = "sip:echo@127.0.0.1", "echo", 0
	if err := c.Validate(); err != nil || c.TimeoutSeconds != store.DefaultCallTimeout {
		t.Fatalf("timeout 0 takes the default: %d %v", c.TimeoutSeconds, err)
	}
}

func TestCallRoundTripAndList(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		other := newCallFixture(t, s, "globex")

		// Calls in both tenants, created in order; every third inbound, every other completed.
		var ids []string
		for i := 0; i < 7; i++ {
			c := store.NewOutboundCall()
			c.To, c.TrunkID, c.AgentID, c.Node = "+14155550100", &f.trunk.ID, &f.agent.ID, "node-a"
			if i%3 == 0 {
				c.Direction, c.Status = store.CallInbound, store.CallInProgress
				c.AgentID, c.Destination = nil, "echo"
			}
			if i%2 == 1 {
				c.Status, c.EndedReason = store.CallCompleted, store.EndedCallerHangup
			}
			if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
			time.Sleep(2 * time.Millisecond)
		}
		oc := store.NewOutboundCall()
		oc.To, oc.Destination = "sip:echo@127.0.0.1", "tone"
		if err := store.Create(ctx, s, other.tenant.ID, oc); err != nil {
			t.Fatal(err)
		}

		// A round trip keeps every field.
		c, err := store.Get[store.Call](ctx, s, f.tenant.ID, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		if c.Direction != store.CallOutbound || c.To != "+14155550100" || *c.TrunkID != f.trunk.ID || *c.AgentID != f.agent.ID ||
			c.Status != store.CallCompleted || c.TimeoutSeconds != 30 || c.Node != "node-a" || c.Metadata == nil {
			t.Fatalf("round trip: %+v", c)
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		answered := now.Add(-90 * time.Second)
		c.StartedAt, c.AnsweredAt, c.EndedAt, c.DurationSeconds = &answered, &answered, &now, 90
		c.Quality = store.CallQuality{PacketsReceived: 4500, PacketsSent: 4490, PacketsLost: 10, LossPercent: 0.22, JitterMS: 3.5, RTTMS: 41}
		c.SIPCallID, c.Codec, c.Metadata = "a84b4c76e66710@pc33", "PCMU", map[string]any{"crm": "42"}
		if err := store.Update(ctx, s, c); err != nil {
			t.Fatal(err)
		}
		back, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if back.Quality != c.Quality || !back.AnsweredAt.Equal(answered) || !back.EndedAt.Equal(now) || back.DurationSeconds != 90 ||
			back.SIPCallID != c.SIPCallID || back.Codec != "PCMU" || back.Metadata["crm"] != "42" {
			t.Fatalf("after update: %+v", back)
		}
		if _, err := store.Get[store.Call](ctx, s, other.tenant.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another tenant's call: %v", err)
		}

		list := func(fl store.CallFilter, page store.Page) ([]string, int) {
			t.Helper()
			items, total, err := store.ListCalls(ctx, s, f.tenant.ID, fl, page)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.ID)
			}
			return got, total
		}
		all := store.Page{Limit: 100}
		got, total := list(store.CallFilter{}, all)
		if total != 7 || len(got) != 7 || got[0] != ids[6] || got[6] != ids[0] {
			t.Fatalf("all calls, newest first: %v (%d), created %v", got, total, ids)
		}
		got, total = list(store.CallFilter{}, store.Page{Limit: 2, Offset: 2})
		if total != 7 || !slices.Equal(got, []string{ids[4], ids[3]}) {
			t.Fatalf("page 2 of 2: %v (%d)", got, total)
		}
		got, total = list(store.CallFilter{Status: store.CallCompleted}, all)
		if total != 3 || !slices.Equal(got, []string{ids[5], ids[3], ids[1]}) {
			t.Fatalf("completed: %v (%d)", got, total)
		}
		got, total = list(store.CallFilter{Direction: store.CallInbound}, all)
		if total != 3 || !slices.Equal(got, []string{ids[6], ids[3], ids[0]}) {
			t.Fatalf("inbound: %v (%d)", got, total)
		}
		got, total = list(store.CallFilter{AgentID: f.agent.ID, Status: store.CallQueued}, all)
		if total != 2 || !slices.Equal(got, []string{ids[4], ids[2]}) {
			t.Fatalf("agent's queued calls: %v (%d)", got, total)
		}
		c2, _ := store.Get[store.Call](ctx, s, f.tenant.ID, ids[2])
		c5, _ := store.Get[store.Call](ctx, s, f.tenant.ID, ids[5])
		got, total = list(store.CallFilter{Since: c2.CreatedAt, Until: c5.CreatedAt}, all)
		if total != 3 || !slices.Equal(got, []string{ids[4], ids[3], ids[2]}) {
			t.Fatalf("since %v until %v: %v (%d)", c2.CreatedAt, c5.CreatedAt, got, total)
		}
		// A time in another zone is the same instant.
		got, _ = list(store.CallFilter{Since: c5.CreatedAt.In(time.FixedZone("X", -7*3600))}, all)
		if !slices.Equal(got, []string{ids[6], ids[5]}) {
			t.Fatalf("since in another zone: %v", got)
		}
		if got, total = list(store.CallFilter{AgentID: other.agent.ID}, all); total != 0 || len(got) != 0 {
			t.Fatalf("another tenant's agent: %v", got)
		}

		// Deleting the agent keeps its calls, without the reference.
		if err := store.Delete[store.Agent](ctx, s, f.tenant.ID, f.agent.ID); err != nil {
			t.Fatalf("delete an agent with calls: %v", err)
		}
		if c, err := store.Get[store.Call](ctx, s, f.tenant.ID, ids[1]); err != nil || c.AgentID != nil {
			t.Fatalf("call of a deleted agent: %+v %v", c, err)
		}
	})
}

func TestCallReferences(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		other := newCallFixture(t, s, "globex")
		c := store.NewOutboundCall()
		c.To, c.TrunkID, c.AgentID = "+14155550100", &other.trunk.ID, &f.agent.ID
		if err := store.Create(ctx, s, f.tenant.ID, c); !slices.Contains(fieldsOf(err), "trunk_id") {
			t.Fatalf("another tenant's trunk: %v", err)
		}
		c.TrunkID, c.AgentID = &f.trunk.ID, &other.agent.ID
		if err := store.Create(ctx, s, f.tenant.ID, c); !slices.Contains(fieldsOf(err), "agent_id") {
			t.Fatalf("another tenant's agent: %v", err)
		}
	})
}

// The state of a live call is written even after its agent was deleted: the record keeps up
// with the call.
func TestUpdateCallStateAfterAgentDeleted(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		c := store.NewOutboundCall()
		c.To, c.TrunkID, c.AgentID, c.Status = "+14155550100", &f.trunk.ID, &f.agent.ID, store.CallInProgress
		if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete[store.Agent](ctx, s, f.tenant.ID, f.agent.ID); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		c.Status, c.EndedReason, c.EndedAt, c.Quality.PacketsReceived = store.CallCompleted, store.EndedCallerHangup, &now, 42
		if err := store.UpdateCallState(ctx, s, c); err != nil {
			t.Fatalf("update after the agent went: %v", err)
		}
		got, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
		if err != nil || got.Status != store.CallCompleted || got.Quality.PacketsReceived != 42 || got.AgentID != nil {
			t.Fatalf("stored %+v, %v; want completed with its quality and no agent", got, err)
		}
		c.ID = "call_01jdq3aaaaaaaaaaaaaaaaaaaa"
		if err := store.UpdateCallState(ctx, s, c); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update of no call: %v, want ErrNotFound", err)
		}
	})
}

// A call's transcript is written once or again, read by its tenant only, and goes with the
// call; the report is part of the call.
func TestCallTranscriptAndReport(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		other := newCallFixture(t, s, "globex")
		c := store.NewOutboundCall()
		c.To, c.Destination = "sip:echo@127.0.0.1", "echo"
		if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
			t.Fatal(err)
		}
		if _, err := store.GetTranscript(ctx, s, f.tenant.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("transcript before any: %v, want ErrNotFound", err)
		}
		turns := []map[string]any{{"role": "assistant", "text": "Hello!"}, {"role": "user", "text": "Hi", "dtmf": ""}}
		for range 2 { // written again (the call's end rewrites it)
			if err := store.SaveTranscript(ctx, s, f.tenant.ID, c.ID, turns); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.SaveTranscript(ctx, s, other.tenant.ID, c.ID, turns); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another tenant's transcript write: %v, want ErrNotFound", err)
		}
		got, err := store.GetTranscript(ctx, s, f.tenant.ID, c.ID)
		if err != nil || !strings.Contains(string(got.Turns), `"Hello!"`) {
			t.Fatalf("transcript %v, %v", got, err)
		}
		if _, err := store.GetTranscript(ctx, s, other.tenant.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another tenant's transcript read: %v", err)
		}
		c.Report = map[string]any{"ended_reason": "agent-hangup", "turns": 2.0}
		if err := store.UpdateCallState(ctx, s, c); err != nil {
			t.Fatal(err)
		}
		back, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
		if err != nil || back.Report["turns"] != 2.0 {
			t.Fatalf("report %v, %v", back.Report, err)
		}
		if err := store.Delete[store.Call](ctx, s, f.tenant.ID, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := store.GetTranscript(ctx, s, f.tenant.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("transcript of a deleted call: %v", err)
		}
	})
}

func TestFailInterruptedCalls(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		mkCall := func(node, status string, answered bool) string {
			t.Helper()
			c := store.NewOutboundCall()
			c.To, c.Destination, c.Node, c.Status = "sip:echo@127.0.0.1", "echo", node, status
			if answered {
				at := time.Now().UTC().Add(-time.Minute)
				c.AnsweredAt = &at
			}
			if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		queued, ringing, talking := mkCall("a", store.CallQueued, false), mkCall("a", store.CallRinging, false), mkCall("a", store.CallInProgress, true)
		done := mkCall("a", store.CallCompleted, true)
		elsewhere := mkCall("b", store.CallInProgress, true)

		n, err := store.FailInterruptedCalls(ctx, s, "a")
		if err != nil || n != 3 {
			t.Fatalf("failed %d calls, %v; want 3", n, err)
		}
		for _, id := range []string{queued, ringing, talking} {
			c, err := store.Get[store.Call](ctx, s, f.tenant.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Status != store.CallFailed || c.EndedReason != store.EndedRestart || c.EndedAt == nil || c.Live() {
				t.Fatalf("interrupted call: %+v", c)
			}
			if id == talking && (c.DurationSeconds < 59 || c.DurationSeconds > 120) {
				t.Fatalf("answered a minute ago, duration %v", c.DurationSeconds)
			}
			if id != talking && c.DurationSeconds != 0 {
				t.Fatalf("never answered, duration %v", c.DurationSeconds)
			}
		}
		for _, tt := range []struct{ id, status string }{{done, store.CallCompleted}, {elsewhere, store.CallInProgress}} {
			if c, _ := store.Get[store.Call](ctx, s, f.tenant.ID, tt.id); c.Status != tt.status || c.EndedReason == store.EndedRestart {
				t.Fatalf("call not of the node or not live was changed: %+v", c)
			}
		}
		if n, err := store.FailInterruptedCalls(ctx, s, "a"); err != nil || n != 0 {
			t.Fatalf("second run: %d %v", n, err)
		}
	})
}

func TestFindInboundTrunksAndPasswords(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d)+"/sealed", func(t *testing.T) {
			t.Parallel()
			s := openStoreSecret(t, d)
			ctx := context.Background()
			a, b := newCallFixture(t, s, "acme"), newCallFixture(t, s, "globex")
			mk := func(tenantID, name, direction string, edit func(tr *store.Trunk)) *store.Trunk {
				t.Helper()
				tr := store.NewTrunk()
				tr.Name, tr.Direction = name, direction
				tr.Inbound.AllowedCIDRs = []string{"203.0.113.0/24"}
				tr.Outbound.Address = "sip.example.com"
				if edit != nil {
					edit(tr)
				}
				if err := store.Create(ctx, s, tenantID, tr); err != nil {
					t.Fatal(err)
				}
				return tr
			}
			in := mk(a.tenant.ID, "in", "inbound", func(tr *store.Trunk) {
				tr.Inbound.AllowedCIDRs, tr.Inbound.Username, tr.Inbound.Password = nil, "pbx", "s3cret in"
			})
			both := mk(b.tenant.ID, "both", "both", func(tr *store.Trunk) {
				tr.Outbound.Username, tr.Outbound.Password = "sb", "s3cret out"
			})
			got, err := store.FindInboundTrunks(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tr := range got {
				names = append(names, tr.TenantID+"/"+tr.Name)
			}
			// The fixtures' trunks are outbound only.
			if !slices.Equal(names, []string{a.tenant.ID + "/in", b.tenant.ID + "/both"}) {
				t.Fatalf("inbound trunks: %v", names)
			}
			if got[0].ID != in.ID || got[1].ID != both.ID || got[0].Inbound.Password != "" {
				t.Fatalf("trunks: %+v", got)
			}
			if pw, err := got[0].InboundPassword(s); err != nil || pw != "s3cret in" {
				t.Fatalf("inbound password: %q %v", pw, err)
			}
			if pw, err := got[0].OutboundPassword(s); err != nil || pw != "" {
				t.Fatalf("no outbound password: %q %v", pw, err)
			}
			if pw, err := got[1].OutboundPassword(s); err != nil || pw != "s3cret out" {
				t.Fatalf("outbound password: %q %v", pw, err)
			}
			// One tenant's trunks are its own: the other tenant's never come with them.
			for _, tc := range []struct {
				tenant string
				want   []string
			}{{a.tenant.ID, []string{in.ID}}, {b.tenant.ID, []string{both.ID}}, {"ten_01jdq3aaaaaaaaaaaaaaaaaaaa", nil}} {
				got, err := store.FindTenantInboundTrunks(ctx, s, tc.tenant)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, tr := range got {
					ids = append(ids, tr.ID)
				}
				if !slices.Equal(ids, tc.want) {
					t.Errorf("inbound trunks of %s: %v, want %v", tc.tenant, ids, tc.want)
				}
			}
			// Without the server secret the password cannot be opened.
			bare := openStore(t, store.SQLite)
			if _, err := got[0].InboundPassword(bare); !errors.Is(err, store.ErrNoSecret) {
				t.Fatalf("without a secret: %v", err)
			}
		})
	}
}

// openStoreSecret is openStore with a server secret, for sealed credentials.
func openStoreSecret(t *testing.T, d store.Dialect) *store.Store {
	t.Helper()
	opts := store.Options{DataDir: t.TempDir(), Secret: callSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFindPhoneNumber(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, b := newCallFixture(t, s, "acme"), newCallFixture(t, s, "globex")
		mk := func(tenantID, number string) string {
			t.Helper()
			p := store.NewPhoneNumber()
			p.Number, p.Destination = number, "echo"
			if err := store.Create(ctx, s, tenantID, p); err != nil {
				t.Fatal(err)
			}
			return p.ID
		}
		e164 := mk(a.tenant.ID, "+14155550100")
		user := mk(a.tenant.ID, "Support.Desk")
		bare := mk(a.tenant.ID, "4930123456") // a SIP user of digits, without +
		theirs := mk(b.tenant.ID, "+14155550199")
		for _, tt := range []struct{ dialled, want string }{
			{"+14155550100", e164},
			{"14155550100", e164},
			{" +1 (415) 555-0100 ", e164},
			{"1.415.555.0100", e164},
			{"support.desk", user},
			{"SUPPORT.DESK", user},
			{"Support.Desk", user},
			{"4930123456", bare},
			{"+4930123456", bare}, // one number, however it is dialled
			{"+49 30 123456", bare},
			{"+14155550101", ""},
			{"14155550199", ""}, // another tenant's
			{"", ""},
			{"support", ""},
		} {
			p, err := store.FindPhoneNumber(ctx, s, a.tenant.ID, tt.dialled)
			if tt.want == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("%q: %+v %v, want not found", tt.dialled, p, err)
				}
				continue
			}
			if err != nil || p.ID != tt.want {
				t.Fatalf("%q: %+v %v, want %s", tt.dialled, p, err, tt.want)
			}
		}
		if p, err := store.FindPhoneNumber(ctx, s, b.tenant.ID, "14155550199"); err != nil || p.ID != theirs {
			t.Fatalf("the other tenant's own number: %+v %v", p, err)
		}
		// On the whole node, the number names its tenant.
		if p, err := s.PhoneNumberByNumber(ctx, "+1 415 555 0199"); err != nil || p.ID != theirs || p.TenantID != b.tenant.ID {
			t.Fatalf("node-wide lookup: %+v %v, want %s of %s", p, err, theirs, b.tenant.ID)
		}
	})
}

// A number is unique on the node as it is dialled: no tenant may take a number another
// tenant (or itself) has in any spelling that dials the same, since the number alone decides
// which tenant an inbound call reaches.
func TestPhoneNumberUniqueOnNode(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, b := newCallFixture(t, s, "acme"), newCallFixture(t, s, "globex")
		mk := func(tenantID, number string) (*store.PhoneNumber, error) {
			p := store.NewPhoneNumber()
			p.Number, p.Destination = number, "echo"
			return p, store.Create(ctx, s, tenantID, p)
		}
		for _, n := range []string{"+14155550100", "Support", "1.800.555"} {
			if _, err := mk(a.tenant.ID, n); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
		}
		for _, tc := range []struct{ tenant, number string }{
			{b.tenant.ID, "+14155550100"},
			{b.tenant.ID, "14155550100"},
			{a.tenant.ID, "14155550100"},
			{b.tenant.ID, "support"},
			{b.tenant.ID, "SUPPORT"},
			{b.tenant.ID, "1-800-555"},
			{b.tenant.ID, "1800555"},
		} {
			_, err := mk(tc.tenant, tc.number)
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.Field != "number" {
				t.Errorf("%s in %s: %v, want a conflict on number", tc.number, tc.tenant, err)
			}
		}
		// An update into a taken number is refused as well, and leaves the row as it was.
		p, err := mk(b.tenant.ID, "sales")
		if err != nil {
			t.Fatal(err)
		}
		p.Number = "14155550100"
		var ce *store.ConflictError
		if err := store.Update(ctx, s, p); !errors.As(err, &ce) {
			t.Fatalf("update to a taken number: %v, want a conflict", err)
		}
		if got, err := s.PhoneNumberByNumber(ctx, "SALES"); err != nil || got.ID != p.ID || got.Number != "sales" {
			t.Fatalf("after the refused update: %+v %v", got, err)
		}
		// A deleted number is free again.
		own, err := s.PhoneNumberByNumber(ctx, "support")
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Delete[store.PhoneNumber](ctx, s, a.tenant.ID, own.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := mk(b.tenant.ID, "SUPPORT"); err != nil {
			t.Fatalf("a freed number: %v", err)
		}
	})
}
