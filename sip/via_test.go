package sip

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/store"
)

// udpFarEnd is the far end of an outbound call as a plain UDP socket: it sees each request
// exactly as it arrived, with the address and port it came from, and answers by hand.
// target is a second socket the peer names as its Contact, so that in-dialog requests go
// to an address that has never sent the node anything.
type udpFarEnd struct {
	t      *testing.T
	conn   *net.UDPConn
	target *net.UDPConn
}

func newUDPFarEnd(t *testing.T) *udpFarEnd {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	return &udpFarEnd{t: t, conn: listen(), target: listen()}
}

func (p *udpFarEnd) port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// next waits on c for the first message the node sends that want takes, and says where it
// came from.
func (p *udpFarEnd) next(ctx context.Context, c *net.UDPConn, what string, want func(sip.Message) bool) (sip.Message, *net.UDPAddr) {
	p.t.Helper()
	deadline, _ := ctx.Deadline()
	_ = c.SetReadDeadline(deadline)
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", what, err)
		}
		msg, err := sip.NewParser().ParseSIP(buf[:n])
		if err != nil {
			p.t.Fatalf("unparsable message from the node: %v\n%s", err, buf[:n])
		}
		if want(msg) {
			return msg, from
		}
	}
}

// read waits on c for a request of method, skipping retransmissions of others.
func (p *udpFarEnd) read(ctx context.Context, c *net.UDPConn, method sip.RequestMethod) (*sip.Request, *net.UDPAddr) {
	p.t.Helper()
	msg, from := p.next(ctx, c, string(method), func(m sip.Message) bool {
		req, ok := m.(*sip.Request)
		return ok && req.Method == method
	})
	return msg.(*sip.Request), from
}

// response waits on c for a final response, which must have code.
func (p *udpFarEnd) response(ctx context.Context, c *net.UDPConn, code int) *sip.Response {
	p.t.Helper()
	msg, _ := p.next(ctx, c, strconv.Itoa(code), func(m sip.Message) bool {
		res, ok := m.(*sip.Response)
		return ok && !res.IsProvisional()
	})
	res := msg.(*sip.Response)
	if res.StatusCode != code {
		p.t.Fatalf("got %d %s; want %d", res.StatusCode, res.Reason, code)
	}
	return res
}

// respond answers req with code, to where it came from (rport), from c.
func (p *udpFarEnd) respond(c *net.UDPConn, req *sip.Request, to *net.UDPAddr, code int, body []byte, hdrs ...sip.Header) {
	p.t.Helper()
	res := sip.NewResponseFromRequest(req, code, "", body)
	if req.Method == sip.INVITE && res.To() != nil && !res.To().Params.Has("tag") {
		res.To().Params.Add("tag", "peer")
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if _, err := c.WriteToUDP([]byte(res.String()), to); err != nil {
		p.t.Fatal(err)
	}
}

// wantFromNode checks that req, received from src, left the node's SIP socket (port) and
// names the node as host:port with rport in its top Via, and as host in its Contact if any.
func wantFromNode(t *testing.T, req *sip.Request, src *net.UDPAddr, host string, port int) {
	t.Helper()
	if src.Port != port {
		t.Errorf("%s came from port %d; want the node's SIP port %d", req.Method, src.Port, port)
	}
	via := req.Via()
	if via.Host != host || via.Port != port {
		t.Errorf("%s Via sent-by %s:%d; want %s:%d", req.Method, via.Host, via.Port, host, port)
	}
	if !via.Params.Has("rport") {
		t.Errorf("%s Via %q lacks rport", req.Method, via.Value())
	}
	if h := req.Contact(); h != nil && h.Address.Host != host {
		t.Errorf("%s Contact %s; want host %s", req.Method, h.Address.String(), host)
	}
}

// TestOutboundLeavesFromSIPSocket places calls to a peer that has never sent the node
// anything: every request of the call (the INVITE, its ACK and the BYE of an answered call;
// the CANCEL of a ringing one and the ACK of its 487) comes from the node's SIP port, with
// the node's advertised address and that port in Via, and rport, and the INVITE's Contact
// names the same address. The BYE goes to a Contact that differs from the address that
// answered, so only the node's own socket can carry it from the SIP port. Listening on a
// single address, on every address (Via must name the address that reaches the peer,
// never 0.0.0.0), and with the public IP set.
func TestOutboundLeavesFromSIPSocket(t *testing.T) {
	for _, tc := range []struct {
		name, listen, publicIP, want string
	}{
		{"loopback", "127.0.0.1:0", "", "127.0.0.1"},
		{"every address", "0.0.0.0:0", "", "127.0.0.1"},
		{"public IP", "127.0.0.1:0", "203.0.113.7", "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			logs := &logBuffer{t: t}
			s := serveOn(t, tc.listen, Config{Log: logs.logger(), PublicIP: tc.publicIP})
			port := s.port

			t.Run("answered", func(t *testing.T) {
				p := newUDPFarEnd(t)
				rec := &store.Call{To: fmt.Sprintf("sip:far@127.0.0.1:%d", p.port(p.conn)), Destination: "tone",
					TimeoutSeconds: 10, Direction: store.CallOutbound}
				if err := s.Dial(ctx, rec); err != nil {
					t.Fatal(err)
				}
				inv, src := p.read(ctx, p.conn, sip.INVITE)
				wantFromNode(t, inv, src, tc.want, port)
				if h := inv.Contact(); h == nil || h.Address.Host != tc.want || h.Address.Port != port {
					t.Errorf("INVITE Contact %v; want %s:%d", h, tc.want, port)
				}
				contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "far", Host: "127.0.0.1", Port: p.port(p.target)}}
				answer := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n")
				p.respond(p.conn, inv, src, 200, answer, contact, sip.NewHeader("Content-Type", "application/sdp"))

				ack, src := p.read(ctx, p.target, sip.ACK)
				wantFromNode(t, ack, src, tc.want, port)
				if _, lines := logs.waitFor(`msg="call answered"`, 1, 10*time.Second); len(lines) != 1 {
					t.Fatal("the call was not answered")
				}
				hungUp := hangUp(ctx, s, rec.ID) // it returns once the call has ended
				bye, src := p.read(ctx, p.target, sip.BYE)
				wantFromNode(t, bye, src, tc.want, port)
				p.respond(p.target, bye, src, 200, nil)
				if err := <-hungUp; err != nil {
					t.Fatal(err)
				}
			})

			t.Run("canceled", func(t *testing.T) {
				p := newUDPFarEnd(t)
				rec := &store.Call{To: fmt.Sprintf("sip:far@127.0.0.1:%d", p.port(p.conn)), Destination: "tone",
					TimeoutSeconds: 10, Direction: store.CallOutbound}
				if err := s.Dial(ctx, rec); err != nil {
					t.Fatal(err)
				}
				inv, src := p.read(ctx, p.conn, sip.INVITE)
				wantFromNode(t, inv, src, tc.want, port)
				p.respond(p.conn, inv, src, 180, nil)
				hungUp := hangUp(ctx, s, rec.ID) // it returns once the call has ended
				cnl, src := p.read(ctx, p.conn, sip.CANCEL)
				wantFromNode(t, cnl, src, tc.want, port)
				if b1, _ := cnl.Via().Params.Get("branch"); b1 != mustBranch(t, inv) {
					t.Errorf("CANCEL branch %q; want the INVITE's %q", b1, mustBranch(t, inv))
				}
				p.respond(p.conn, cnl, src, 200, nil)
				p.respond(p.conn, inv, src, 487, nil)
				ack, src := p.read(ctx, p.conn, sip.ACK)
				wantFromNode(t, ack, src, tc.want, port)
				if err := <-hungUp; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestInboundByeLeavesFromSIPSocket: the node's BYE on an inbound call goes to the caller's
// Contact, an address that never sent the node anything, and still leaves from the node's
// SIP port, naming the node in Via (with rport); the node's Contact in its answer names the
// address the caller reached, also when SIP listens on every address.
func TestInboundByeLeavesFromSIPSocket(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		t.Run(listen, func(t *testing.T) {
			verifyNoLeaks(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := serveOn(t, listen, Config{Log: testLog(t)})
			p := newUDPFarEnd(t)
			node := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.port}

			inv := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "echo", Host: "127.0.0.1", Port: s.port})
			via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: p.port(p.conn)}
			via.Params.Add("branch", sip.GenerateBranch())
			via.Params.Add("rport", "")
			from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1"}}
			from.Params.Add("tag", "caller")
			callID := sip.CallIDHeader("inbound-bye-" + sip.GenerateTagN(8))
			maxFwd := sip.MaxForwardsHeader(70)
			inv.AppendHeader(via)
			inv.AppendHeader(from)
			inv.AppendHeader(&sip.ToHeader{Address: inv.Recipient})
			inv.AppendHeader(&callID)
			inv.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
			inv.AppendHeader(&maxFwd)
			inv.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1", Port: p.port(p.target)}})
			inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			inv.SetBody(sdpOffer("127.0.0.1", 9, "sendrecv"))
			if _, err := p.conn.WriteToUDP([]byte(inv.String()), node); err != nil {
				t.Fatal(err)
			}
			ok := p.response(ctx, p.conn, 200)
			if h := ok.Contact(); h == nil || h.Address.Host != "127.0.0.1" || h.Address.Port != s.port {
				t.Errorf("200 Contact %v; want 127.0.0.1:%d", h, s.port)
			}

			ack := sip.NewRequest(sip.ACK, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: s.port})
			ackVia := via.Clone()
			ackVia.Params.Add("branch", sip.GenerateBranch())
			ack.AppendHeader(ackVia)
			ack.AppendHeader(from)
			ack.AppendHeader(ok.To())
			ack.AppendHeader(&callID)
			ack.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.ACK})
			ack.AppendHeader(&maxFwd)
			ack.SetBody(nil)
			if _, err := p.conn.WriteToUDP([]byte(ack.String()), node); err != nil {
				t.Fatal(err)
			}
			c := s.calls.match(ack)
			if c == nil {
				t.Fatal("the answered call is not in the registry")
			}
			hungUp := hangUp(ctx, s, c.Record().ID)
			bye, src := p.read(ctx, p.target, sip.BYE)
			wantFromNode(t, bye, src, "127.0.0.1", s.port)
			p.respond(p.target, bye, src, 200, nil)
			if err := <-hungUp; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOutboundTCPSentBy: over TCP the INVITE names the node's advertised address and SIP
// listening port as sent-by, with rport, not the port of the connection it opened.
func TestOutboundTCPSentBy(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := &logBuffer{t: t}
	s := serveOn(t, "127.0.0.1:0", Config{Log: logs.logger(), PublicIP: "198.51.100.9"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := &store.Call{To: "sip:far@" + l.Addr().String() + ";transport=tcp", Destination: "tone",
		TimeoutSeconds: 5, Direction: store.CallOutbound}
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	// The INVITE, headers and body, as it came over the connection.
	r := bufio.NewReader(conn)
	var head strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the INVITE: %v", err)
		}
		head.WriteString(line)
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("reading the INVITE's body: %v", err)
	}
	msg, err := sip.NewParser().ParseSIP(append([]byte(head.String()), body...))
	if err != nil {
		t.Fatalf("unparsable INVITE: %v\n%s", err, head.String())
	}
	inv := msg.(*sip.Request)
	via := inv.Via()
	if via.Transport != "TCP" || via.Host != "198.51.100.9" || via.Port != s.port || !via.Params.Has("rport") {
		t.Errorf("INVITE over TCP has Via %q; want SIP/2.0/TCP 198.51.100.9:%d with rport", via.Value(), s.port)
	}
	if h := inv.Contact(); h == nil || h.Address.Host != "198.51.100.9" || h.Address.Port != s.port {
		t.Errorf("INVITE Contact %v; want 198.51.100.9:%d", h, s.port)
	}
	// Busy: the call ends now rather than at its timeout.
	res := sip.NewResponseFromRequest(inv, 486, "Busy Here", nil)
	res.To().Params.Add("tag", "peer")
	if _, err := conn.Write([]byte(res.String())); err != nil {
		t.Fatal(err)
	}
	if _, lines := logs.waitFor(`msg="call ended"`, 1, 10*time.Second); len(lines) != 1 {
		t.Fatal("the refused call did not end")
	}
}

// hangUp hangs the call up from the API, as its own caller: Hangup returns once the far end
// has answered the BYE or CANCEL that the test answers meanwhile.
func hangUp(ctx context.Context, s *Server, id string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Hangup(ctx, "", id) }()
	return done
}

// mustBranch is the branch of req's top Via.
func mustBranch(t *testing.T, req *sip.Request) string {
	t.Helper()
	b, ok := req.Via().Params.Get("branch")
	if !ok {
		t.Fatalf("%s without a branch", req.Method)
	}
	return b
}

// serveOn serves s on addr (UDP and TCP) until the test ends.
func serveOn(t *testing.T, addr string, cfg Config) *Server {
	t.Helper()
	pc, l, err := Listen(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	<-s.Ready()
	return s
}
