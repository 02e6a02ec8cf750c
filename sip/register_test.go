package sip

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/store"
)

// registrar is a provider's registrar in a test: a sipgo UA on loopback that challenges
// every REGISTER (401, digest MD5 with qop=auth), checks the answer with the trunk's
// password, and grants what grant says for each accepted one; it keeps what it was sent.
type registrar struct {
	t        *testing.T
	addr     string
	ua       *sipgo.UserAgent
	dialog   *sipgo.DialogUA
	user, pw string
	// grant answers the n-th accepted REGISTER (1-based, unregisters not counted) with a
	// status and the lifetime granted.
	grant func(n int) (code, expires int)

	mu       sync.Mutex
	accepted []registered
	more     chan struct{}
}

// registered is a REGISTER the registrar accepted (answered past its challenge).
type registered struct {
	at      time.Time
	code    int
	expires int    // as asked in the Expires header
	contact string // the Contact URI
	source  string // where it came from
	callID  string
	cseq    uint32
}

// newRegistrar starts a registrar on ip (a loopback address), whose requests leave from its
// listening socket, as a provider's do.
func newRegistrar(t *testing.T, ip, user, pw string, grant func(n int) (code, expires int)) *registrar {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("registrar"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(ip), sipgo.WithClientConnectionAddr(pc.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	r := &registrar{t: t, addr: pc.LocalAddr().String(), ua: ua, user: user, pw: pw, grant: grant, more: make(chan struct{})}
	r.dialog = &sipgo.DialogUA{Client: client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "provider", Host: ip, Port: pc.LocalAddr().(*net.UDPAddr).Port}}}
	srv.OnRegister(r.onRegister)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() {
		closeUA(ua)
		_ = pc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the registrar did not stop")
		}
	})
	return r
}

const registrarRealm, registrarNonce = "provider.example", "a1b2c3d4e5"

func (r *registrar) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	h := req.GetHeader("Authorization")
	if h == nil || !r.digestOK(req, h.Value()) {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate",
			fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"`, registrarRealm, registrarNonce)))
		_ = tx.Respond(res)
		return
	}
	expires, _ := strconv.Atoi(req.GetHeader("Expires").Value())
	rec := registered{at: time.Now(), expires: expires, contact: req.Contact().Address.String(), source: req.Source(),
		callID: req.CallID().Value(), cseq: req.CSeq().SeqNo, code: 200}
	grant := 0
	if expires > 0 {
		r.mu.Lock()
		n := 1
		for _, a := range r.accepted {
			if a.expires > 0 {
				n++
			}
		}
		r.mu.Unlock()
		rec.code, grant = r.grant(n)
	}
	r.mu.Lock()
	r.accepted = append(r.accepted, rec)
	close(r.more)
	r.more = make(chan struct{})
	r.mu.Unlock()
	res := sip.NewResponseFromRequest(req, rec.code, map[int]string{200: "OK", 423: "Interval Too Brief", 503: "Service Unavailable"}[rec.code], nil)
	if rec.code == 423 {
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(grant)))
	}
	if rec.code == 200 {
		c := req.Contact().Clone()
		c.Params = sip.NewParams()
		c.Params.Add("expires", strconv.Itoa(grant))
		res.AppendHeader(c)
	}
	_ = tx.Respond(res)
}

// digestOK checks an Authorization header as a provider does, by RFC 2617 on its own.
func (r *registrar) digestOK(req *sip.Request, v string) bool {
	p, err := digestParams(v)
	if err != nil || p["username"] != r.user || p["realm"] != registrarRealm || p["nonce"] != registrarNonce || p["qop"] != "auth" {
		return false
	}
	sum := func(s string) string { b := md5.Sum([]byte(s)); return hex.EncodeToString(b[:]) }
	ha1 := sum(r.user + ":" + registrarRealm + ":" + r.pw)
	ha2 := sum("REGISTER:" + p["uri"])
	want := sum(ha1 + ":" + registrarNonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	return p["response"] == want && p["uri"] == req.Recipient.String()
}

// wait waits until the registrar has accepted n REGISTERs and returns them.
func (r *registrar) wait(ctx context.Context, n int) []registered {
	r.t.Helper()
	for {
		r.mu.Lock()
		got, more := append([]registered(nil), r.accepted...), r.more
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-more:
		case <-ctx.Done():
			r.t.Fatalf("the registrar accepted %d REGISTERs, want %d", len(got), n)
		}
	}
}

// registrationOf polls the trunk's stored registration until ok accepts it.
func registrationOf(ctx context.Context, t *testing.T, st *store.Store, tr *store.Trunk, ok func(*store.TrunkRegistration) bool) *store.TrunkRegistration {
	t.Helper()
	var last *store.TrunkRegistration
	for {
		regs, err := store.TrunkRegistrations(ctx, st, tr.TenantID, []string{tr.ID})
		if err == nil {
			if last = regs[tr.ID]; last != nil && ok(last) {
				return last
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("trunk registration never as wanted; last %+v (err %v)", last, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A trunk with register set registers from the node's SIP socket, answering the
// registrar's digest challenge; it refreshes before the short lifetime granted lapses;
// after a refused refresh it is failed, with the registrar's answer as its reason, and
// registers again after its back-off; a call the provider sends to the registered Contact
// is answered by the agent of the trunk's number; and a stopping node unregisters
// (Expires: 0) and releases the trunk.
func TestTrunkRegistration(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	// The registrar holds its answer to the retry until the test has seen the failure.
	sawFailure := make(chan struct{})
	// The provider is at 127.0.0.2; the node and strangers at 127.0.0.1.
	reg := newRegistrar(t, "127.0.0.2", "acct-7", "reg s3cret", func(n int) (int, int) {
		switch n {
		case 1:
			return 200, 2 // refreshed at 85 %: 1.7 s
		case 2:
			return 503, 0 // the refresh fails once
		case 3:
			select {
			case <-sawFailure:
			case <-time.After(20 * time.Second):
			}
		}
		return 200, 60
	})
	tr := store.NewTrunk()
	tr.Name, tr.Direction = "provider", "outbound"
	tr.Outbound.Address, tr.Outbound.Username, tr.Outbound.Password = reg.addr, "acct-7", "reg s3cret"
	tr.Outbound.Register, tr.Outbound.RegisterExpires = true, 300
	if err := store.Create(ctx, st, tenant, tr); err != nil {
		t.Fatal(err)
	}
	agent := store.NewAgent()
	agent.Name = "reception"
	if err := store.Create(ctx, st, tenant, agent); err != nil {
		t.Fatal(err)
	}
	pn := store.NewPhoneNumber()
	pn.Number, pn.AgentID, pn.TrunkID = "+14155550177", &agent.ID, &tr.ID
	if err := store.Create(ctx, st, tenant, pn); err != nil {
		t.Fatal(err)
	}

	calls := make(chan *Call, 1)
	events := newEventLog()
	pc, l, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sipPort := pc.LocalAddr().(*net.UDPAddr).Port
	const retry = 300 * time.Millisecond
	s, err := New(Config{Log: testLog(t), Store: st, DefaultTenantID: tenant, Node: "node-a", Events: events,
		Agents: testAgents{listeningAgent(calls)}, RegisterSync: time.Minute, RegisterRetry: retry})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx, pc, l) }()

	// Registered, past the challenge, from the SIP socket, for what the trunk asks.
	got := reg.wait(ctx, 1)
	first := got[0]
	if first.expires != 300 {
		t.Errorf("REGISTER asked Expires %d, want the trunk's 300", first.expires)
	}
	if want := "127.0.0.1:" + strconv.Itoa(sipPort); first.source != want {
		t.Errorf("REGISTER came from %s, want the SIP socket %s", first.source, want)
	}
	if !strings.HasPrefix(first.contact, "sip:"+tr.ID+"@127.0.0.1:"+strconv.Itoa(sipPort)) {
		t.Errorf("Contact %s, want the trunk's user at the node's SIP address", first.contact)
	}
	r := registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool { return r.Status == store.RegistrationRegistered })
	if r.Node != "node-a" || r.ExpiresAt == nil || time.Until(*r.ExpiresAt) > 3*time.Second {
		t.Errorf("registration %+v, want node-a's, lapsing within the 2 s granted", r)
	}

	// Refreshed before the 2 s lapse; the refused refresh fails it, with the registrar's
	// answer as the reason; the retry waits the back-off.
	r = registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool { return r.Status == store.RegistrationFailed })
	if !strings.Contains(r.Reason, "503") {
		t.Errorf("failed registration's reason %q, want the registrar's 503", r.Reason)
	}
	close(sawFailure)
	got = reg.wait(ctx, 3)
	refresh, failed, again := got[1], got[1], got[2]
	if d := refresh.at.Sub(first.at); d < time.Second || d >= 2*time.Second {
		t.Errorf("refreshed %v after registering, want before the 2 s granted lapse, near 1.7 s", d)
	}
	if failed.code != 503 || again.code != 200 {
		t.Fatalf("registrar answered %d then %d, want 503 then 200", failed.code, again.code)
	}
	if d := again.at.Sub(failed.at); d < retry-50*time.Millisecond {
		t.Errorf("registered again %v after the failure, want the %v back-off", d, retry)
	}
	if first.callID != again.callID || again.cseq <= first.cseq {
		t.Errorf("refreshes must keep the Call-ID and raise the CSeq: %s/%d then %s/%d", first.callID, first.cseq, again.callID, again.cseq)
	}
	registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool {
		return r.Status == store.RegistrationRegistered && r.ExpiresAt != nil && time.Until(*r.ExpiresAt) > 30*time.Second
	})

	// The provider sends calls on the registration, and the trunk's number's agent answers
	// each: to the registered Contact; to its account, as some providers name the
	// registration; and to the number, in To, at the node's address.
	var contact sip.Uri
	if err := sip.ParseUri(again.contact, &contact); err != nil {
		t.Fatal(err)
	}
	node := "127.0.0.1:" + strconv.Itoa(sipPort)
	for _, tc := range []struct{ name, ruri, to string }{
		{"registered contact", contact.String(), "sip:acct-7@provider.example"},
		{"account", "sip:acct-7@" + node, "sip:acct-7@provider.example"},
		{"number in To", "sip:acct-7@" + node, "sip:+14155550177@provider.example"},
	} {
		var target, toURI sip.Uri
		if err := sip.ParseUri(tc.ruri, &target); err != nil {
			t.Fatal(err)
		}
		if err := sip.ParseUri(tc.to, &toURI); err != nil {
			t.Fatal(err)
		}
		peer := newRTPPeer(t)
		dlg, err := reg.dialog.Invite(ctx, target, sdpOffer("127.0.0.1", peer.port(), dirSendRecv),
			sip.NewHeader("Content-Type", "application/sdp"), &sip.ToHeader{Address: toURI})
		if err != nil {
			t.Fatal(err)
		}
		if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
			t.Fatalf("%s: the call on the registration was not answered: %v", tc.name, err)
		}
		if err := dlg.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		var c *Call
		select {
		case c = <-calls:
		case <-ctx.Done():
			t.Fatalf("%s: the trunk's agent never got the call", tc.name)
		}
		rec := c.Record()
		if rec.TenantID != tenant || rec.AgentID == nil || *rec.AgentID != agent.ID || rec.TrunkID == nil || *rec.TrunkID != tr.ID {
			t.Errorf("%s: call record tenant %s agent %v trunk %v, want %s, %s, %s", tc.name, rec.TenantID, rec.AgentID, rec.TrunkID, tenant, agent.ID, tr.ID)
		}
		if err := dlg.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		_ = dlg.Close()
	}
	// A stranger who learnt the Contact is not the provider.
	stranger := newTestCaller(t)
	if res := stranger.status(ctx, t, contact, sdpOffer("127.0.0.1", newRTPPeer(t).port(), dirSendRecv), sipgo.AnswerOptions{}); res.StatusCode != 403 {
		t.Errorf("a call to the registered Contact from elsewhere answered %d, want 403", res.StatusCode)
	}

	// A stopping node unregisters and releases the trunk.
	n := len(reg.wait(ctx, 0))
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	got = reg.wait(ctx, n+1)
	if last := got[len(got)-1]; last.expires != 0 || last.callID != first.callID {
		t.Errorf("last REGISTER asked Expires %d (Call-ID %s), want an unregister (0) of the registration", last.expires, last.callID)
	}
	r = registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool { return r.Node == "" })
	if r.Status != store.RegistrationPending || r.ExpiresAt != nil {
		t.Errorf("released registration %+v, want pending without expiry", r)
	}
}

// regServer is a server of a registration test, stopped by stop (or when the test ends).
type regServer struct {
	s    *Server
	port int
	stop func()
}

func startRegServer(t *testing.T, cfg Config) *regServer {
	t.Helper()
	pc, l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, pc, l) }()
	<-s.ready
	r := &regServer{s: s, port: pc.LocalAddr().(*net.UDPAddr).Port}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("server did not stop")
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// Two nodes on one PostgreSQL register a trunk once: the node that holds its lease
// registers, the other does not; once the holder stops (unregistering and releasing the
// trunk), the other takes it over; a trunk changed through the API registers again as
// changed, and a deleted one is unregistered.
func TestTrunkRegistrationCluster(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenants := tenancyStore(t, store.Postgres)
	tenant := tenants["acme"]
	reg := newRegistrar(t, "127.0.0.2", "acct-9", "pw 9", func(int) (int, int) { return 200, 600 })
	tr := store.NewTrunk()
	tr.Name, tr.Direction = "provider", "outbound"
	tr.Outbound.Registrar, tr.Outbound.Username, tr.Outbound.Password, tr.Outbound.Register = reg.addr, "acct-9", "pw 9", true
	tr.Outbound.Address = "sip.provider.example"
	if err := store.Create(ctx, st, tenant, tr); err != nil {
		t.Fatal(err)
	}
	cfg := func(node string) Config {
		return Config{Log: testLog(t), Store: st, DefaultTenantID: tenants["default"], Node: node, RegisterSync: time.Minute}
	}
	a := startRegServer(t, cfg("node-a"))
	first := reg.wait(ctx, 1)[0]
	b := startRegServer(t, cfg("node-b"))
	b.s.TrunksChanged() // node-b syncs now: the trunk is node-a's
	r := registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool { return r.Status == store.RegistrationRegistered })
	if r.Node != "node-a" || first.source != "127.0.0.1:"+strconv.Itoa(a.port) {
		t.Fatalf("registered by %s from %s, want node-a from its port %d", r.Node, first.source, a.port)
	}

	// node-a stops: it unregisters, and node-b, told of it, registers.
	a.stop()
	got := reg.wait(ctx, 2)
	if got[1].expires != 0 || got[1].source != first.source {
		t.Fatalf("after node-a stopped the registrar got Expires %d from %s, want node-a's unregister", got[1].expires, got[1].source)
	}
	b.s.TrunksChanged()
	got = reg.wait(ctx, 3)
	if want := "127.0.0.1:" + strconv.Itoa(b.port); got[2].expires == 0 || got[2].source != want {
		t.Fatalf("registrar got Expires %d from %s, want node-b's registration from %s", got[2].expires, got[2].source, want)
	}
	registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool {
		return r.Status == store.RegistrationRegistered && r.Node == "node-b"
	})
	for _, g := range got {
		if g.contact == "" || strings.Contains(g.contact, "@0.0.0.0") {
			t.Errorf("REGISTER Contact %q", g.contact)
		}
	}

	// Changed: registers again with what it now asks. Deleted: unregistered.
	tr.Outbound.RegisterExpires = 120
	if err := store.Update(ctx, st, tr); err != nil {
		t.Fatal(err)
	}
	b.s.TrunksChanged()
	for got = reg.wait(ctx, 4); got[len(got)-1].expires != 120; got = reg.wait(ctx, len(got)+1) {
	}
	if err := store.Delete[store.Trunk](ctx, st, tenant, tr.ID); err != nil {
		t.Fatal(err)
	}
	b.s.TrunksChanged()
	for got = reg.wait(ctx, len(got)+1); got[len(got)-1].expires != 0; got = reg.wait(ctx, len(got)+1) {
	}
}

// A registrar that finds the lifetime asked too brief (423) gets the least it takes, and
// credentials it refuses leave the trunk failed, saying so.
func TestTrunkRegistrationRefusals(t *testing.T) {
	verifyNoLeaks(t)
	for _, tc := range []struct {
		name     string
		password string
		grant    func(n int) (int, int)
		status   string
		reason   string // in the stored reason
		asked    []int  // the Expires of the REGISTERs accepted past the challenge
	}{
		{"interval too brief", "pw", func(n int) (int, int) {
			if n == 1 {
				return 423, 900
			}
			return 200, 900
		}, store.RegistrationRegistered, "", []int{300, 900}},
		{"wrong password", "wrong", func(int) (int, int) { return 200, 60 }, store.RegistrationFailed, "refused the trunk's credentials", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			reg := newRegistrar(t, "127.0.0.2", "acct", "pw", tc.grant)
			tr := store.NewTrunk()
			tr.Name, tr.Direction = "provider", "outbound"
			tr.Outbound.Address, tr.Outbound.Username, tr.Outbound.Password = reg.addr, "acct", tc.password
			tr.Outbound.Register, tr.Outbound.RegisterExpires = true, 300
			if err := store.Create(ctx, st, tenant, tr); err != nil {
				t.Fatal(err)
			}
			startRegServer(t, Config{Log: testLog(t), Store: st, DefaultTenantID: tenant, Node: "node-a", RegisterRetry: time.Minute})
			r := registrationOf(ctx, t, st, tr, func(r *store.TrunkRegistration) bool { return r.Status != store.RegistrationPending })
			if r.Status != tc.status || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("registration %s (%q), want %s with %q", r.Status, r.Reason, tc.status, tc.reason)
			}
			var asked []int
			for _, a := range reg.wait(ctx, len(tc.asked)) {
				asked = append(asked, a.expires)
			}
			if fmt.Sprint(asked) != fmt.Sprint(tc.asked) {
				t.Errorf("REGISTERs accepted asked %v, want %v", asked, tc.asked)
			}
		})
	}
}
