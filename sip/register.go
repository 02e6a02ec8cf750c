package sip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/store"
)

// Outbound registration. A trunk with outbound.register set registers the node with its
// provider's registrar (RFC 3261 §10) from the node's SIP socket, answering digest
// challenges with the trunk's outbound credentials, and refreshes the registration before
// the registrar's grant lapses; a failed registration is tried again after a wait that
// doubles at each failure. Calls the provider then sends to the registered Contact reach
// the trunk's tenant (see registrations.match).
//
// Nodes sharing a database register each trunk once: the node that holds the trunk's lease
// (store.ClaimTrunkRegistration) runs its loop and renews the lease at every sync; a node
// that stops unregisters (Expires: 0) and releases the lease, and one that dies lets it
// lapse, after which another node takes the trunk over at its next sync.

const (
	defaultRegisterSync     = 30 * time.Second
	defaultRegisterRetry    = 5 * time.Second
	defaultRegisterRetryMax = 5 * time.Minute
	// registerRefresh is the share of the granted lifetime after which a registration is
	// refreshed: early enough for a lost request to be retransmitted (Timer F, 32 s) within
	// any grant of a few minutes.
	registerRefresh = 0.85
	// registerTimeout bounds one REGISTER transaction, challenges included.
	registerTimeout = 20 * time.Second
	// unregisterTimeout bounds the REGISTER with Expires: 0 a stopping node sends.
	unregisterTimeout = 3 * time.Second
)

// registrations runs the node's registration loops, one per trunk it holds.
type registrations struct {
	s     *Server
	nudge chan struct{}

	mu    sync.Mutex
	loops map[string]*registration // by trunk ID
	wg    sync.WaitGroup
}

func newRegistrations(s *Server) *registrations {
	return &registrations{s: s, nudge: make(chan struct{}, 1), loops: map[string]*registration{}}
}

// TrunksChanged tells the server that a trunk was created, changed or deleted, so that the
// registrations follow at once rather than at the next sync.
func (s *Server) TrunksChanged() {
	if s.regs == nil {
		return
	}
	select {
	case s.regs.nudge <- struct{}{}:
	default:
	}
}

// run syncs the registrations with the store until ctx ends, then stops every loop, each
// unregistering, and returns once they have.
func (r *registrations) run(ctx context.Context) {
	if r.s.cfg.Store == nil {
		return
	}
	every := cmp.Or(r.s.cfg.RegisterSync, defaultRegisterSync)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		r.sync(ctx, 3*every)
		select {
		case <-ctx.Done():
			r.stopAll(ctx)
			return
		case <-tick.C:
		case <-r.nudge:
		}
	}
}

// sync starts a loop for each registering trunk this node may hold, restarts those whose
// trunk changed, and stops those whose trunk no longer registers or went to another node.
func (r *registrations) sync(ctx context.Context, lease time.Duration) {
	st := r.s.cfg.Store
	trunks, err := store.RegisteringTrunks(ctx, st)
	if err != nil {
		if ctx.Err() == nil {
			r.s.log.Warn("registering trunks not readable", "error", err)
		}
		return
	}
	want := map[string]bool{}
	for i := range trunks {
		t := trunks[i]
		held, err := store.ClaimTrunkRegistration(ctx, st, &t, r.node(), lease)
		if err != nil {
			if ctx.Err() == nil {
				r.s.log.Warn("trunk registration lease not renewed", "trunk", t.ID, "error", err)
			}
			// Keep a running loop: the lease outlives a few failed renewals.
			r.mu.Lock()
			if r.loops[t.ID] != nil {
				want[t.ID] = true
			}
			r.mu.Unlock()
			continue
		}
		if !held {
			continue
		}
		want[t.ID] = true
		r.mu.Lock()
		cur := r.loops[t.ID]
		r.mu.Unlock()
		if cur != nil && cur.trunk.UpdatedAt.Equal(t.UpdatedAt) {
			continue
		}
		if cur != nil {
			cur.stop()
		}
		r.start(ctx, t)
	}
	r.mu.Lock()
	var gone []*registration
	for id, l := range r.loops {
		if !want[id] {
			gone = append(gone, l)
		}
	}
	r.mu.Unlock()
	for _, l := range gone {
		l.stop()
		if err := store.ReleaseTrunkRegistration(context.WithoutCancel(ctx), st, l.trunk.ID, r.node(), "the trunk no longer registers here"); err != nil {
			r.s.log.Warn("trunk registration not released", "trunk", l.trunk.ID, "error", err)
		}
	}
}

// node is the name the node holds trunks' leases under: its own, as in call records.
func (r *registrations) node() string { return cmp.Or(r.s.cfg.Node, "switchboard") }

func (r *registrations) start(ctx context.Context, t store.Trunk) {
	lctx, cancel := context.WithCancel(ctx)
	l := &registration{r: r, trunk: t, cancel: cancel, done: make(chan struct{}),
		log: r.s.log.With("trunk", t.ID, "tenant_id", t.TenantID)}
	r.mu.Lock()
	r.loops[t.ID] = l
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(l.done)
		l.run(lctx)
	}()
}

// stopAll stops every loop (each unregisters and releases its trunk) and waits for them;
// ctx has ended, and bounds nothing.
func (r *registrations) stopAll(ctx context.Context) {
	r.mu.Lock()
	loops := make([]*registration, 0, len(r.loops))
	for _, l := range r.loops {
		loops = append(loops, l)
	}
	r.mu.Unlock()
	for _, l := range loops {
		l.cancel()
	}
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unregisterTimeout)
	defer cancel()
	for _, l := range loops {
		reason := "node " + r.node() + " stopped; waiting for a node to register the trunk"
		if err := store.ReleaseTrunkRegistration(ctx, r.s.cfg.Store, l.trunk.ID, r.node(), reason); err != nil {
			r.s.log.Warn("trunk registration not released", "trunk", l.trunk.ID, "error", err)
		}
	}
}

// match finds the live registration an inbound INVITE arrived on: its request-URI user is
// the Contact user a registration gave its registrar, or, as some providers put their own
// user there (the account or the number), it comes from a registrar of a registration and
// dialled nothing else. Nil when it arrived on none.
func (r *registrations) match(req *sip.Request, src netip.Addr) *registration {
	if r == nil {
		return nil
	}
	user := req.Recipient.User
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.loops[user]; l != nil {
		return l
	}
	var from []*registration
	for _, l := range r.loops {
		if l.fromRegistrar(src) {
			from = append(from, l)
		}
	}
	if len(from) > 1 {
		// Several trunks of one provider: the account named in the request decides.
		from = slices.DeleteFunc(from, func(l *registration) bool { return !strings.EqualFold(l.trunk.Outbound.Username, user) })
	}
	if len(from) == 1 {
		return from[0]
	}
	return nil
}

// ofTenant finds a live registration of the tenant whose registrar src is: a call from it
// to one of the tenant's numbers came over that trunk.
func (r *registrations) ofTenant(tenantID string, src netip.Addr) *store.Trunk {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.loops {
		if l.trunk.TenantID == tenantID && l.fromRegistrar(src) {
			return own(&l.trunk)
		}
	}
	return nil
}

// registration is the loop of one trunk's registration.
type registration struct {
	r      *registrations
	trunk  store.Trunk
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	registered bool
	registrar  []netip.Addr // the addresses the registrar's name resolved to
}

func (l *registration) isRegistered() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.registered
}

func (l *registration) fromRegistrar(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.registrar, src.Unmap())
}

// stop ends the loop, which unregisters, and waits for it.
func (l *registration) stop() {
	l.cancel()
	<-l.done
	l.r.mu.Lock()
	if l.r.loops[l.trunk.ID] == l {
		delete(l.r.loops, l.trunk.ID)
	}
	l.r.mu.Unlock()
}

// run registers and refreshes until ctx ends, then unregisters.
func (l *registration) run(ctx context.Context) {
	s := l.r.s
	cfg := s.cfg
	retryMin := cmp.Or(cfg.RegisterRetry, defaultRegisterRetry)
	retryMax := max(cmp.Or(cfg.RegisterRetryMax, defaultRegisterRetryMax), retryMin)
	reg := newRegister(s, &l.trunk)
	backoff := retryMin
	for {
		granted, err := reg.send(ctx, reg.expires)
		if ctx.Err() != nil {
			break
		}
		var wait time.Duration
		if err != nil {
			l.log.Warn("trunk registration failed", "registrar", reg.hostport, "error", err, "retry_in", backoff)
			l.set(ctx, false, reg, store.RegistrationFailed, err.Error(), nil)
			wait, backoff = backoff, min(2*backoff, retryMax)
		} else {
			expires := time.Now().Add(granted).UTC()
			if !l.isRegistered() {
				l.log.Info("trunk registered", "registrar", reg.hostport, "expires", granted)
			}
			l.set(ctx, true, reg, store.RegistrationRegistered, "", &expires)
			wait, backoff = time.Duration(float64(granted)*registerRefresh), retryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	if !l.isRegistered() {
		return
	}
	l.mu.Lock()
	l.registered = false
	l.mu.Unlock()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unregisterTimeout)
	defer cancel()
	if _, err := reg.send(uctx, 0); err != nil {
		l.log.Warn("trunk not unregistered", "registrar", reg.hostport, "error", err)
		return
	}
	l.log.Info("trunk unregistered", "registrar", reg.hostport)
}

// set records the registration's state in memory and in the store.
func (l *registration) set(ctx context.Context, registered bool, reg *register, status, reason string, expires *time.Time) {
	l.mu.Lock()
	l.registered = registered
	l.registrar = reg.addrs
	l.mu.Unlock()
	s := l.r.s
	if err := store.SetTrunkRegistration(ctx, s.cfg.Store, l.trunk.ID, l.r.node(), status, reason, expires); err != nil && ctx.Err() == nil {
		l.log.Warn("trunk registration state not stored", "error", err)
	}
}

// register is what each REGISTER of one trunk's registration is built from: one Call-ID
// and a rising CSeq for all of them (RFC 3261 §10.2).
type register struct {
	s              *Server
	trunk          *store.Trunk
	hostport       string
	uri            sip.Uri // the registrar's: the request URI
	aor            sip.Uri // the address of record: the trunk's user at the registrar's domain
	transport      string
	expires        int
	tag            string
	callID         sip.CallIDHeader
	cseq           uint32
	user, password string
	addrs          []netip.Addr
}

func newRegister(s *Server, t *store.Trunk) *register {
	hostport := cmp.Or(t.Outbound.Registrar, t.Outbound.Address)
	transport := strings.ToLower(cmp.Or(t.Outbound.Transport, "udp"))
	host, port := hostport, 0
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host = h
		port, _ = strconv.Atoi(p)
	}
	host = strings.Trim(host, "[]")
	rg := &register{s: s, trunk: t, hostport: hostport, transport: transport,
		expires: cmp.Or(t.Outbound.RegisterExpires, store.DefaultRegisterExpires), tag: sip.GenerateTagN(16),
		callID: sip.CallIDHeader(sip.GenerateTagN(32) + "@" + s.host), user: t.Outbound.Username}
	rg.uri = sip.Uri{Scheme: "sip", Host: host, Port: port}
	if transport == "tcp" || transport == "tls" {
		rg.uri.UriParams = sip.NewParams()
		rg.uri.UriParams.Add("transport", transport)
		if transport == "tls" {
			rg.uri.Scheme = "sips"
		}
	}
	rg.aor = sip.Uri{Scheme: rg.uri.Scheme, User: t.Outbound.Username, Host: host}
	return rg
}

// errRegister is a registrar's refusal, or a registration that could not be sent.
var errRegister = errors.New("sip: registration")

// send sends one REGISTER asking for expires seconds (0 unregisters), answering digest
// challenges and a 423 Interval Too Brief, and returns the lifetime the registrar granted.
func (rg *register) send(ctx context.Context, expires int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	if rg.password == "" {
		pw, err := rg.trunk.OutboundPassword(rg.s.cfg.Store)
		if err != nil {
			return 0, fmt.Errorf("%w: the trunk's password is not readable: %v", errRegister, err)
		}
		rg.password = pw
	}
	if ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", rg.uri.Host); err == nil {
		// A new slice each time: the registration's inbound checks read the last one.
		addrs := make([]netip.Addr, 0, len(ips))
		for _, ip := range ips {
			addrs = append(addrs, ip.Unmap())
		}
		rg.addrs = addrs
	} else {
		return 0, fmt.Errorf("%w: registrar %s does not resolve: %v", errRegister, rg.uri.Host, err)
	}
	contact := rg.s.contactFor(rg.transport, rg.s.advertisedFor(ctx, rg.uri.HostPort()))
	contact.Address.User = rg.trunk.ID
	var auth sip.Header
	for round := 0; ; round++ {
		rg.cseq++
		req := sip.NewRequest(sip.REGISTER, *rg.uri.Clone())
		from := &sip.FromHeader{Address: rg.aor, Params: sip.NewParams()}
		from.Params.Add("tag", rg.tag)
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: rg.aor})
		req.AppendHeader(&rg.callID)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: rg.cseq, MethodName: sip.REGISTER})
		req.AppendHeader(&contact)
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
		if auth != nil {
			req.AppendHeader(auth)
		}
		if rg.transport != "udp" {
			req.SetTransport(strings.ToUpper(rg.transport))
		}
		res, err := rg.s.client.Do(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("%w: no answer from registrar %s: %v", errRegister, rg.hostport, err)
		}
		switch code := res.StatusCode; {
		case code >= 200 && code < 300:
			if expires == 0 {
				return 0, nil
			}
			granted := grantedExpiry(res, contact.Address, expires)
			if granted <= 0 {
				return 0, fmt.Errorf("%w: registrar %s granted no lifetime", errRegister, rg.hostport)
			}
			return time.Duration(granted) * time.Second, nil
		case (code == 401 || code == 407) && round < maxAuthRounds:
			hdrName, authName := "WWW-Authenticate", "Authorization"
			if code == 407 {
				hdrName, authName = "Proxy-Authenticate", "Proxy-Authorization"
			}
			ch := res.GetHeader(hdrName)
			if ch == nil {
				return 0, fmt.Errorf("%w: registrar %s answered %d without a challenge", errRegister, rg.hostport, code)
			}
			v, err := authorization(req, ch.Value(), rg.user, rg.password)
			if err != nil {
				return 0, fmt.Errorf("%w: challenge of registrar %s not answered: %v", errRegister, rg.hostport, err)
			}
			auth = sip.NewHeader(authName, v)
		case code == 423 && round < maxAuthRounds+1 && expires != 0:
			// Interval Too Brief: ask again for the least the registrar takes.
			h := res.GetHeader("Min-Expires")
			n := 0
			if h != nil {
				n, _ = strconv.Atoi(strings.TrimSpace(h.Value()))
			}
			if n <= expires {
				return 0, fmt.Errorf("%w: registrar %s answered 423 without a longer Min-Expires", errRegister, rg.hostport)
			}
			expires = n
			rg.expires = n
		case code == 401 || code == 407 || code == 403:
			return 0, fmt.Errorf("%w: registrar %s refused the trunk's credentials (%d %s)", errRegister, rg.hostport, code, res.Reason)
		default:
			return 0, fmt.Errorf("%w: registrar %s answered %d %s", errRegister, rg.hostport, code, res.Reason)
		}
	}
}

// grantedExpiry is the lifetime, in seconds, a 2xx to REGISTER grants our Contact: the
// expires parameter of the Contact that names us (the registrar lists every binding of the
// account, those another node made included), else the Expires header, else what was
// asked (RFC 3261 §10.2.4).
func grantedExpiry(res *sip.Response, ours sip.Uri, asked int) int {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.User != ours.User || !strings.EqualFold(c.Address.Host, ours.Host) || c.Address.Port != ours.Port || c.Params == nil {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			return n
		}
	}
	return asked
}
