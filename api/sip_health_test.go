package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/sip"
)

// TestSIPChecks: /health's SIP checks are the SIP server's own listeners on loopback,
// healthy while it serves and not once it stopped, each saying where and why.
func TestSIPChecks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := sip.New(sip.Config{})
	if err != nil {
		t.Fatal(err)
	}
	checks := api.SIPChecks(srv)
	if got := checks(); len(got) != 0 {
		t.Fatalf("checks before the server serves: %+v, want none", got)
	}
	pc, l, err := sip.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, pc, l) }()
	select {
	case <-srv.Ready():
	case <-ctx.Done():
		t.Fatal("the SIP server did not start")
	}
	got := checks()
	if len(got) != 2 {
		t.Fatalf("checks while serving: %+v, want UDP and TCP", got)
	}
	for i, want := range []string{"sip-udp", "sip-tcp"} {
		if got[i].Name != want || !got[i].Healthy || got[i].Detail != addr {
			t.Errorf("check %d while serving: %+v, want %s healthy at %s", i, got[i], want, addr)
		}
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the SIP server did not stop")
	}
	after := checks()
	if len(after) != 2 {
		t.Fatalf("checks after the server stopped: %+v, want UDP and TCP", after)
	}
	for _, c := range after {
		if c.Healthy || !strings.HasPrefix(c.Detail, addr+": ") {
			t.Errorf("check after the server stopped: %+v, want unhealthy, saying why after its address", c)
		}
	}
}
