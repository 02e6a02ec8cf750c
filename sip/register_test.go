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

func newRegistrar(t *testing.T, user, pw string, grant func(n int) (code, expires int)) *registrar {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("registrar"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &registrar{t: t, addr: pc.LocalAddr().String(), ua: ua, user: user, pw: pw, grant: grant, more: make(chan struct{})}
	r.dialog = &sipgo.DialogUA{Client: client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "provider", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}}}
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
	res := sip.NewResponseFromRequest(req, rec.code, map[int]string{200: "OK", 503: "Service Unavailable"}[rec.code], nil)
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
	reg := newRegistrar(t, "acct-7", "reg s3cret", func(n int) (int, int) {
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

	// The provider sends a call to the registered Contact: the trunk's number's agent answers.
	var target sip.Uri
	if err := sip.ParseUri(again.contact, &target); err != nil {
		t.Fatal(err)
	}
	peer := newRTPPeer(t)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "acct-7", Host: "provider.example"}}
	dlg, err := reg.dialog.Invite(ctx, target, sdpOffer("127.0.0.1", peer.port(), dirSendRecv),
		sip.NewHeader("Content-Type", "application/sdp"), to)
	if err != nil {
		t.Fatal(err)
	}
	defer dlg.Close()
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("the call on the registration was not answered: %v", err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var c *Call
	select {
	case c = <-calls:
	case <-ctx.Done():
		t.Fatal("the trunk's agent never got the call")
	}
	rec := c.Record()
	if rec.TenantID != tenant || rec.AgentID == nil || *rec.AgentID != agent.ID || rec.TrunkID == nil || *rec.TrunkID != tr.ID {
		t.Errorf("call record tenant %s agent %v trunk %v, want %s, %s, %s", rec.TenantID, rec.AgentID, rec.TrunkID, tenant, agent.ID, tr.ID)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
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
