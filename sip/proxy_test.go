package sip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/store"
)

// Behind a trusted proxy, an INVITE is judged by the caller's address the proxy names in
// X-Switchboard-Source, not by the proxy's: a public caller with no trunk is refused even
// though the proxy is on loopback, a private one is taken, and a garbled header is a 400.
// From a source the node does not trust the header is ignored.
func TestTrustedProxySource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	_, trustingAddr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	_, plainAddr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant})
	peer := newRTPPeer(t)
	u := newTestCaller(t)
	offer := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)
	from := func(v string) sip.Header { return sip.NewHeader(SourceHeader, v) }

	if res := u.status(ctx, t, uri(t, "echo", trustingAddr), offer, sipgo.AnswerOptions{}, from("203.0.113.9:5060")); res.StatusCode != sip.StatusForbidden {
		t.Errorf("a public caller through the trusted proxy: %d %s, want 403", res.StatusCode, res.Reason)
	}
	if res := u.status(ctx, t, uri(t, "echo", trustingAddr), offer, sipgo.AnswerOptions{}, from("not-an-address")); res.StatusCode != sip.StatusBadRequest ||
		!strings.Contains(res.Reason, SourceHeader) {
		t.Errorf("a garbled %s: %d %s, want 400 naming it", SourceHeader, res.StatusCode, res.Reason)
	}
	d, res, err := u.try(ctx, uri(t, "echo", trustingAddr), offer, sipgo.AnswerOptions{}, from("10.1.2.3:5062"))
	if err != nil || d == nil {
		t.Fatalf("a private caller through the trusted proxy: %v %v, want 200", res, err)
	}
	_ = d.Bye(ctx)
	d, res, err = u.try(ctx, uri(t, "echo", plainAddr), offer, sipgo.AnswerOptions{}, from("203.0.113.9:5060"))
	if err != nil || d == nil {
		t.Fatalf("the header from a source the node does not trust was believed: %v %v", res, err)
	}
	_ = d.Bye(ctx)

	// A trunk that allows the caller's network takes it through the proxy.
	tr := store.NewTrunk()
	tr.Name, tr.Direction = "carrier", "inbound"
	tr.Inbound.AllowedCIDRs = []string{"203.0.113.0/24"}
	if err := store.Create(ctx, st, tenant, tr); err != nil {
		t.Fatal(err)
	}
	d, res, err = u.try(ctx, uri(t, "echo", trustingAddr), offer, sipgo.AnswerOptions{}, from("203.0.113.9:5060"))
	if err != nil || d == nil {
		t.Fatalf("a caller its trunk allows, through the proxy: %v %v, want 200", res, err)
	}
	_ = d.Bye(ctx)
}

// With an outbound proxy, an outbound INVITE goes to the proxy with a loose Route naming
// it and the callee's URI as its request URI, so that a callee the node cannot reach
// itself is reached through the proxy; the call then runs as any other.
func TestOutboundThroughProxy(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	peer := newRTPPeer(t)
	answered := make(chan *sipgo.DialogServerSession, 1)
	invites := make(chan *sip.Request, 4)
	proxy := newFarEnd(t, answerWith(peer, answered, invites))
	s, _ := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, OutboundProxy: proxy.addr})

	rec := store.NewOutboundCall()
	rec.TenantID, rec.To, rec.Destination = tenant, "sip:bob@192.0.2.1:5060", "tone" // TEST-NET-1: nobody answers there
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var inv *sip.Request
	select {
	case inv = <-invites:
	case <-ctx.Done():
		t.Fatal("the proxy got no INVITE")
	}
	if inv.Recipient.User != "bob" || inv.Recipient.Host != "192.0.2.1" {
		t.Errorf("request URI %s, want the callee's", inv.Recipient.String())
	}
	r := inv.Route()
	if r == nil || r.Address.HostPort() != proxy.addr {
		t.Fatalf("Route %v, want the proxy %s", r, proxy.addr)
	}
	if _, ok := r.Address.UriParams.Get("lr"); !ok {
		t.Errorf("Route %s lacks lr", r.Value())
	}
	var d *sipgo.DialogServerSession
	select {
	case d = <-answered:
	case <-ctx.Done():
		t.Fatal("the answer was not acknowledged")
	}
	defer d.Close()
	checkTone(t, decodeG711(peer.first(50, 10*time.Second, 0)), 0.9)
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	if got := endedCall(ctx, t, events, st, tenant, rec.ID); got.Status != store.CallCompleted {
		t.Errorf("record %s/%s, want completed", got.Status, got.EndedReason)
	}
}

func TestCheckOutboundProxy(t *testing.T) {
	for _, ok := range []string{"", "10.0.0.5", "10.0.0.5:5060", "sip:proxy.example.com:5080;transport=tcp", "sips:proxy.example.com"} {
		if err := CheckOutboundProxy(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"sip:alice@10.0.0.5", "sip:", "http://x"} {
		if err := CheckOutboundProxy(bad); err == nil {
			t.Errorf("%q was taken", bad)
		}
	}
}
