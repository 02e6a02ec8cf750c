package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/internal/testnet"
)

// The edge's timing in the test: a probe every second, and a second for a node to answer
// an INVITE at all before the next one is tried. The operator's defaults are 2 s and 3 s.
const (
	edgePingInterval = "1"
	edgeFRTimer      = "2000"
	// edgeWait bounds every wait on the edge or the nodes, generous for a race-built node on
	// a busy machine.
	edgeWait = 20 * time.Second
)

var reNodeSIPAddr = regexp.MustCompile(`switchboard serving.*? sip=(127\.0\.0\.\d+:\d+)`)

// edge is Kamailio running the configuration Switchboard ships (deploy/kamailio), in front
// of the nodes of a test.
type edge struct {
	t      *testing.T
	addr   string // host:port it listens on (UDP)
	log    *logBuffer
	exited chan struct{}
}

// kamailioBinary is where Kamailio is installed (Debian puts it in /usr/sbin, which a test's
// PATH may lack), or "" when it is not.
func kamailioBinary() string {
	if p, err := exec.LookPath("kamailio"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/kamailio"); err == nil {
		return "/usr/sbin/kamailio"
	}
	return ""
}

// startEdge starts Kamailio with the shipped configuration, its dispatcher set the SIP
// addresses of nodes, and waits until it answers OPTIONS; on a port another program took
// meanwhile, it starts again on another.
func startEdge(t *testing.T, bin string, nodes []string) *edge {
	t.Helper()
	cfg, err := filepath.Abs("../../deploy/kamailio/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "dispatcher.list")
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "1 sip:%s\n", n)
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		e := &edge{t: t, addr: fmt.Sprintf("127.0.0.1:%d", testnet.Port(t)), log: &logBuffer{ready: make(chan struct{})},
			exited: make(chan struct{})}
		cmd := exec.Command(bin, "-DD", "-E", "-f", cfg, "-Y", dir,
			"-A", "SB_LISTEN=udp:"+e.addr, "-A", `SB_DISPATCHER_LIST="`+list+`"`,
			"-A", "SB_PING_INTERVAL="+edgePingInterval, "-A", "SB_FR_TIMER="+edgeFRTimer)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = e.log, e.log
		// Kamailio forks its workers: the group is stopped together.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start kamailio: %v", err)
		}
		go func() { _ = cmd.Wait(); close(e.exited) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-e.exited:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-e.exited
			}
			if t.Failed() {
				t.Logf("kamailio output:\n%s", e.log)
			}
		})
		err := e.ready()
		switch {
		case err == nil:
			return e
		case attempt < 3 && testnet.AddrInUse(err, e.log.String()):
			continue
		}
		t.Fatalf("kamailio at %s: %v\n%s", e.addr, err, e.log)
	}
}

// ready waits until Kamailio answers an OPTIONS addressed to itself, or exits.
func (e *edge) ready() error {
	conn, err := net.Dial("udp", e.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	for i, deadline := 0, time.Now().Add(edgeWait); time.Now().Before(deadline); i++ {
		select {
		case <-e.exited:
			return errors.New("exited before it answered")
		default:
		}
		probe := fmt.Sprintf("OPTIONS sip:%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK-ready-%[3]d\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:ready@127.0.0.1>;tag=ready\r\nTo: <sip:%[1]s>\r\n"+
			"Call-ID: ready-%[3]d@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", e.addr, conn.LocalAddr(), i)
		if _, err := conn.Write([]byte(probe)); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			return nil
		}
	}
	return fmt.Errorf("no answer to OPTIONS within %v", edgeWait)
}

// waitDown waits until the edge has taken the node at sipAddr out of its dispatcher set.
func (e *edge) waitDown(sipAddr string) {
	e.t.Helper()
	exited := false
	if !e.log.until(edgeWait, func(out string) bool {
		select {
		case <-e.exited:
			exited = true
			return true
		default:
		}
		return strings.Contains(out, "switchboard node down: sip:"+sipAddr+"\n")
	}) {
		e.t.Fatalf("kamailio did not take %s out within %v:\n%s", sipAddr, edgeWait, e.log)
	}
	if exited {
		e.t.Fatalf("kamailio exited:\n%s", e.log)
	}
}

// edgeCall is a call placed through the edge: its dialog and the node that answered it.
type edgeCall struct {
	dlg  *sipgo.DialogClientSession
	res  *sip.Response
	host string // the answering node's SIP address, from the Contact of its 200
}

// edgeCaller places calls through the edge from goroutines: its methods return errors.
type edgeCaller struct {
	client *sipgo.Client
	dlgs   *sipgo.DialogClientCache
	target sip.Uri
}

func newEdgeCaller(t *testing.T, e *edge) *edgeCaller {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-cluster-test"))
	if err != nil {
		t.Fatal(err)
	}
	// Requests leave from the socket the caller listens on, named in its Contact, so that the
	// node's own in-dialog requests (its BYE), sent through the edge, find the caller.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(pc.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	c := &edgeCaller{client: client, dlgs: sipgo.NewDialogClientCache(client,
		sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}})}
	if err := sip.ParseUri("sip:echo@"+e.addr, &c.target); err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := c.dlgs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		}
	})
	// The client sends from the listening socket once the server has registered it, which
	// it does before its first read: until then a request fails.
	served := &firstRead{PacketConn: pc, reading: make(chan struct{})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(served) }()
	t.Cleanup(func() {
		_ = ua.Close()
		_ = pc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the caller's SIP server did not stop")
		}
	})
	select {
	case <-served.reading:
	case <-time.After(edgeWait):
		t.Fatalf("the caller's SIP server did not start reading within %v", edgeWait)
	}
	// The edge answers OPTIONS addressed to itself.
	var proxy sip.Uri
	if err := sip.ParseUri("sip:"+e.addr, &proxy); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), edgeWait)
	defer cancel()
	if res, err := client.Do(ctx, sip.NewRequest(sip.OPTIONS, proxy)); err != nil || res.StatusCode != sip.StatusOK {
		t.Fatalf("kamailio did not answer the caller's OPTIONS: %v %v", res, err)
	}
	return c
}

// firstRead is a socket that says when it is first read from: sipgo registers a socket it
// serves before it reads, so from then on its client may send from it.
type firstRead struct {
	net.PacketConn
	once    sync.Once
	reading chan struct{}
}

func (f *firstRead) ReadFrom(p []byte) (int, net.Addr, error) {
	f.once.Do(func() { close(f.reading) })
	return f.PacketConn.ReadFrom(p)
}

// offer is the SDP of a call to echo, in the direction given.
func offer(direction string) []byte {
	return []byte("v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=" + direction + "\r\n")
}

// place calls echo through the edge, with these headers besides, and acknowledges the
// answer.
func (c *edgeCaller) place(ctx context.Context, hdrs ...sip.Header) (*edgeCall, error) {
	ctx, cancel := context.WithTimeout(ctx, edgeWait)
	defer cancel()
	dlg, err := c.dlgs.Invite(ctx, c.target, offer("sendrecv"), append(hdrs, sip.NewHeader("Content-Type", "application/sdp"))...)
	if err != nil {
		return nil, err
	}
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var refused *sipgo.ErrDialogResponse
	if errors.As(err, &refused) {
		_ = dlg.Close()
		return nil, fmt.Errorf("refused: %d %s", refused.Res.StatusCode, refused.Res.Reason)
	}
	if err != nil {
		_ = dlg.Close()
		return nil, err
	}
	if err := dlg.Ack(ctx); err != nil {
		_ = dlg.Close()
		return nil, err
	}
	call := &edgeCall{dlg: dlg, res: dlg.InviteResponse}
	if h := dlg.InviteResponse.Contact(); h != nil {
		call.host = h.Address.HostPort()
	}
	return call, nil
}

// placeMany places n calls through the edge, a few at a time, and fails the test when one
// is not answered.
func (c *edgeCaller) placeMany(t *testing.T, n int) []*edgeCall {
	t.Helper()
	calls := make([]*edgeCall, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 6)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			calls[i], errs[i] = c.place(t.Context())
		}()
	}
	wg.Wait()
	for _, call := range calls {
		if call != nil {
			t.Cleanup(func() { _ = call.dlg.Close() })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("calls through kamailio: %v", err)
	}
	return calls
}

// hangUp sends the caller's BYE through the edge and checks the node's 200.
func (ec *edgeCall) hangUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), edgeWait)
	defer cancel()
	if err := ec.dlg.Bye(ctx); err != nil {
		t.Fatalf("BYE through kamailio to %s: %v", ec.host, err)
	}
}

// callRecord is what the store holds of a call, looked up by its SIP Call-ID.
type callRecord struct{ id, node, status, reason string }

// recordWatch signals each committed write of a call record: a trigger the test adds to its
// own database notifies a channel that one connection listens on, so that waitRecord looks
// again exactly when a record changed. The records reach the database through each node's
// write-behind queue.
type recordWatch struct {
	db      *sql.DB
	mu      sync.Mutex
	changed chan struct{} // closed, and replaced, at each notification
}

func watchRecords(t *testing.T, db *sql.DB, dbURL string) *recordWatch {
	t.Helper()
	w := &recordWatch{db: db, changed: make(chan struct{})}
	pgNotifications(t, dbURL, []string{
		`CREATE FUNCTION test_call_written() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN PERFORM pg_notify('test_call_written', coalesce(NEW.sip_call_id, '')); RETURN NEW; END $$`,
		`CREATE TRIGGER test_call_written AFTER INSERT OR UPDATE ON calls FOR EACH ROW EXECUTE FUNCTION test_call_written()`,
	}, "test_call_written", func() {
		w.mu.Lock()
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	})
	return w
}

// waitRecord waits until the call with this SIP Call-ID satisfies ok, looking at its record
// again at each committed write of a call.
func waitRecord(t *testing.T, w *recordWatch, callID string, what string, ok func(callRecord) bool) callRecord {
	t.Helper()
	var r callRecord
	deadline := time.After(edgeWait)
	for {
		w.mu.Lock()
		changed := w.changed
		w.mu.Unlock()
		err := w.db.QueryRowContext(t.Context(), `SELECT id, node, status, ended_reason FROM calls WHERE sip_call_id = $1`, callID).
			Scan(&r.id, &r.node, &r.status, &r.reason)
		if err == nil && ok(r) {
			return r
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("call %s not %s within %v: %+v", callID, what, edgeWait, r)
		}
	}
}

func completed(r callRecord) bool { return r.status == "completed" }

// TestKamailioCluster runs three nodes on one PostgreSQL behind Kamailio with the shipped
// configuration (deploy/kamailio): calls spread over the nodes, in-dialog requests reach
// the node that holds the call, a killed node is routed around and its calls failed
// node-lost by a survivor, and a draining node takes no new call but lets its call end.
func TestKamailioCluster(t *testing.T) {
	bin := kamailioBinary()
	if bin == "" {
		t.Skip("kamailio is not installed (make deps installs Debian's kamailio package)")
	}
	t.Parallel()
	dbURL := pgtest.URL(t)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	// Three nodes on their own loopback addresses, started one after the other so that the
	// first migrates the database.
	env := func(i int) []string {
		return []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + dbURL,
			"SWITCHBOARD_SECRET=" + testSecret, fmt.Sprintf("SWITCHBOARD_NODE=node-%d", i+1),
			fmt.Sprintf("SWITCHBOARD_SIP_ADDR=127.0.0.%d:0", i+2), "SWITCHBOARD_SIP_TRUSTED_PROXIES=127.0.0.1",
			"SWITCHBOARD_DRAIN_TIMEOUT=1m", "SWITCHBOARD_NODE_HEARTBEAT=200ms", "SWITCHBOARD_NODE_TIMEOUT=2s",
			"SWITCHBOARD_RATE_LIMIT=10000"}
	}
	key := createKey(t, env(0), "--name", "cluster")
	records := watchRecords(t, db, dbURL) // createKey migrated the database
	nodes := make([]*node, 3)
	addrs := make([]string, 3)
	byHost := map[string]int{}
	for i := range nodes {
		nodes[i] = startServe(t, env(i))
		m := reNodeSIPAddr.FindStringSubmatch(nodes[i].log.String())
		if m == nil {
			t.Fatalf("no SIP address in node %d's start-up line:\n%s", i+1, nodes[i].log)
		}
		addrs[i] = m[1]
		byHost[m[1]] = i
	}
	e := startEdge(t, bin, addrs)
	caller := newEdgeCaller(t, e)
	nodeOf := func(c *edgeCall) int {
		t.Helper()
		i, ok := byHost[c.host]
		if !ok {
			t.Fatalf("a call answered from %q, none of the nodes %v", c.host, addrs)
		}
		return i
	}

	// Sixty echo calls spread over the three nodes; each caller's BYE reaches the node that
	// answered, which completes the call's record under its own name.
	calls := caller.placeMany(t, 60)
	spread := map[string]int{}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), edgeWait)
			defer cancel()
			if err := c.dlg.Bye(ctx); err != nil {
				t.Errorf("BYE through kamailio to %s: %v", c.host, err)
			}
		}()
	}
	wg.Wait()
	for _, c := range calls {
		r := waitRecord(t, records, c.dlg.InviteRequest.CallID().Value(), "completed", completed)
		if want := fmt.Sprintf("node-%d", nodeOf(c)+1); r.node != want || r.reason != "caller-hangup" {
			t.Errorf("call answered by %s: record %+v, want completed by the caller on %s", c.host, r, want)
		}
		spread[r.node]++
	}
	t.Logf("60 calls through kamailio: %v", spread)
	for i := range nodes {
		if name := fmt.Sprintf("node-%d", i+1); spread[name] == 0 {
			t.Errorf("no call reached %s: %v", name, spread)
		}
	}

	// Hold: the re-INVITE passes the edge by its Record-Route and reaches the node holding
	// the call, whose echo answers a=recvonly to our a=sendonly; then the BYE.
	held := caller.placeMany(t, 1)[0]
	ctx, cancel := context.WithTimeout(t.Context(), edgeWait)
	defer cancel()
	reinvite := sip.NewRequest(sip.INVITE, held.res.Contact().Address)
	reinvite.SetBody(offer("sendonly"))
	reinvite.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res, err := held.dlg.Do(ctx, reinvite)
	if err != nil || res.StatusCode != sip.StatusOK || !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Fatalf("hold through kamailio: %v %v", res, err)
	}
	if err := held.dlg.WriteRequest(sip.NewRequest(sip.ACK, held.res.Contact().Address)); err != nil {
		t.Fatal(err)
	}
	held.hangUp(t)
	if r := waitRecord(t, records, held.dlg.InviteRequest.CallID().Value(), "completed", completed); r.node != fmt.Sprintf("node-%d", nodeOf(held)+1) {
		t.Errorf("held call answered by %s ended on %s", held.host, r.node)
	}

	// A caller cannot name its own address: the edge removes the header before it adds its
	// own, else the node would refuse this one's garbled value (400).
	forged, err := caller.place(t.Context(), sip.NewHeader("X-Switchboard-Source", "forged-by-the-caller"))
	if err != nil {
		t.Fatalf("a call with the caller's own X-Switchboard-Source: %v", err)
	}
	t.Cleanup(func() { _ = forged.dlg.Close() })
	forged.hangUp(t)

	// The node's own BYE (a hang-up through its API) passes the edge by the route set the
	// 200 carried and reaches the caller.
	ended := caller.placeMany(t, 1)[0]
	id := waitRecord(t, records, ended.dlg.InviteRequest.CallID().Value(), "in progress",
		func(r callRecord) bool { return r.status == "in-progress" }).id
	holder := nodes[nodeOf(ended)]
	if status, body := holder.call("POST", "/api/v1/calls/"+id+"/hangup", key, ""); status != http.StatusOK {
		t.Fatalf("hang-up through node %s's API: %d %v", holder.addr, status, body)
	}
	select {
	case <-ended.dlg.Context().Done():
	case <-time.After(edgeWait):
		t.Fatalf("the node's BYE did not reach the caller through kamailio within %v", edgeWait)
	}

	// kill -9 of a node holding a call: the edge's probe takes it out, every new call goes
	// to the other two, and a survivor fails the dead node's call node-lost.
	live := caller.placeMany(t, 3)
	victim := nodeOf(live[0])
	// Records are written behind the call: one killed before its record reached the
	// database leaves nothing for a survivor to fail. The node holds the call once it is
	// recorded live.
	waitRecord(t, records, live[0].dlg.InviteRequest.CallID().Value(), "in progress",
		func(r callRecord) bool { return r.status == "in-progress" })
	nodes[victim].signal(syscall.SIGKILL)
	nodes[victim].waitExit(edgeWait)
	killed := time.Now()
	e.waitDown(addrs[victim])
	t.Logf("node-%d killed: kamailio took it out %v later", victim+1, time.Since(killed).Round(time.Millisecond))
	after := caller.placeMany(t, 12)
	for _, c := range after {
		if nodeOf(c) == victim {
			t.Errorf("a call reached the killed node %s", addrs[victim])
		}
	}
	r := waitRecord(t, records, live[0].dlg.InviteRequest.CallID().Value(), "failed node-lost",
		func(r callRecord) bool { return r.status == "failed" })
	if r.reason != "node-lost" || r.node != fmt.Sprintf("node-%d", victim+1) {
		t.Errorf("the killed node's call: %+v, want failed node-lost", r)
	}
	survivors := []int{}
	for i := range nodes {
		if i != victim {
			survivors = append(survivors, i)
		}
	}
	// The survivor logs the loss after it commits the failed records, so the line may
	// follow the record the test has just read.
	lost := "node lost: its heartbeat stopped; its live calls are failed (node-lost)"
	if !eitherLogged(edgeWait, lost, nodes[survivors[0]].log, nodes[survivors[1]].log) {
		t.Errorf("no survivor logged %q", lost)
	}
	for _, c := range append(live[1:], after...) {
		if nodeOf(c) != victim {
			c.hangUp(t)
		}
	}

	// Drain one survivor with a call up: it answers OPTIONS and INVITEs 503, the edge sends
	// new calls to the other, its call goes on until the caller hangs up, and it exits.
	drained := survivors[0]
	// Round-robin skips the dead node's turn for the next node in the list, so a call lands
	// on the drained node within a few.
	var up *edgeCall
	for i := 0; up == nil; i++ {
		if i == 6 {
			t.Fatalf("six calls through kamailio and none on node-%d", drained+1)
		}
		if c := caller.placeMany(t, 1)[0]; nodeOf(c) == drained {
			up = c
		} else {
			c.hangUp(t)
		}
	}
	nodes[drained].signal(syscall.SIGTERM)
	nodes[drained].waitLogged("draining: taking no new calls, waiting for those up to end", edgeWait)
	for _, c := range caller.placeMany(t, 6) {
		if nodeOf(c) == drained {
			t.Errorf("the draining node-%d took a new call", drained+1)
		}
		c.hangUp(t)
	}
	e.waitDown(addrs[drained])
	select {
	case <-nodes[drained].exited:
		t.Fatalf("the draining node exited with a call up:\n%s", nodes[drained].log)
	default:
	}
	up.hangUp(t)
	if code := nodes[drained].waitExit(edgeWait); code != 0 {
		t.Fatalf("the drained node exited %d:\n%s", code, nodes[drained].log)
	}
	if r := waitRecord(t, records, up.dlg.InviteRequest.CallID().Value(), "completed", completed); r.node != fmt.Sprintf("node-%d", drained+1) ||
		r.reason != "caller-hangup" {
		t.Errorf("the drained node's call: %+v, want completed by the caller", r)
	}
}
