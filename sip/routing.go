package sip

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// Who may call, and for which tenant. An INVITE's tenant is decided by what it dialled and
// what only that tenant owns: a phone number (unique on the node, see store.NumberKey)
// belongs to one tenant, and the caller is then checked against that tenant's trunks and no
// others, so that one tenant's trunks never take, refuse or challenge another tenant's
// calls. A tenant with no inbound trunks takes loopback and private callers if it is the
// node's default tenant, and nobody otherwise.
//
// The built-in destinations (echo, tone), dialled by name, belong to no tenant, and the
// caller decides whose call it is, in this order. First, digest credentials that a trunk's
// username and password verify give the call to the trunk's tenant (trunks of two tenants
// verifying the same credentials are refused). Without such credentials, the default
// tenant's rule decides next, as for a call to one of its numbers: if it has inbound trunks,
// one that allows the address takes the call and one with a password that allows it
// challenges it; if it has none, it takes loopback and private callers. Only a caller the
// default tenant would not take may go to another tenant: to the one tenant that claims the
// address, where a tenant claims it when one of its trunks allows it (a trunk with a
// password claims it too, but admits only after a digest challenge). Two tenants or more
// claiming the address is ambiguous: the caller is challenged if any of them has a trunk
// with a password, and refused (403) otherwise. So no other tenant's trunk can take, refuse
// or challenge a call that the default tenant would take, and creating a trunk can never
// move a call that another tenant claims to its own records.
//
// A number that does not exist is 404 only to a caller some tenant would take by these
// built-in rules, and 401 or 403 to others, as a call to a built-in destination would be.

// caller is who an inbound call comes from, once admitted: the tenant it belongs to, the
// trunk it came over (nil when its tenant's no-trunk rule let it in), and what it dialled.
type caller struct {
	tenantID string
	trunk    *store.Trunk
	dest     dialled
}

// dialled is what an INVITE asked for: a built-in destination by name, or a phone number,
// which names its tenant; neither when nothing matched.
type dialled struct {
	users   []string // the request-URI user, then the To user when it differs
	builtin string
	number  *store.PhoneNumber
}

// authenticate decides the tenant of an INVITE and whether its caller may call it: the
// tenant that owns the dialled number, with the caller checked against that tenant's
// trunks; for a built-in destination or an unknown number, the tenant that the caller's
// credentials or address single out (see the comment at the top of this file).
func (s *Server) authenticate(ctx context.Context, req *sip.Request, src netip.Addr) (caller, *refusal) {
	d, ref := s.lookup(ctx, req)
	if ref != nil {
		return caller{}, ref
	}
	var creds *credentials
	if h := req.GetHeader("Authorization"); h != nil {
		c, err := parseCredentials(h.Value())
		if err != nil {
			return caller{}, &refusal{code: sip.StatusBadRequest, reason: "Bad Request", why: "authorization: " + err.Error()}
		}
		creds = &c
	}
	var who caller
	if reg := s.regs.match(req, src); reg != nil && (req.Recipient.User == reg.trunk.ID || d.number == nil && d.builtin == "") {
		return s.admitRegistered(ctx, src, reg, d)
	}
	if d.number != nil {
		who, ref = s.admitToTenant(ctx, req, creds, src, d.number.TenantID)
	} else {
		who, ref = s.admitUnowned(ctx, req, creds, src)
	}
	if ref != nil {
		return caller{}, ref
	}
	who.dest = d
	return who, nil
}

// lookup finds what an INVITE dialled: the request-URI user, then the To user, each looked
// up among the built-in destinations and then among the node's phone numbers (one indexed
// lookup each).
func (s *Server) lookup(ctx context.Context, req *sip.Request) (dialled, *refusal) {
	d := dialled{users: []string{req.Recipient.User}}
	if to := req.To(); to != nil && to.Address.User != req.Recipient.User {
		d.users = append(d.users, to.Address.User)
	}
	for _, user := range d.users {
		if user == "" {
			continue
		}
		if builtin(user) != nil {
			d.builtin = strings.ToLower(user)
			return d, nil
		}
		if s.cfg.Store == nil {
			continue
		}
		pn, err := s.cfg.Store.PhoneNumberByNumber(ctx, user)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			s.log.Error("phone numbers not readable", "error", err)
			return d, unavailable("database")
		}
		d.number = pn
		return d, nil
	}
	return d, nil
}

func unavailable(why string) *refusal {
	return &refusal{code: sip.StatusServiceUnavailable, reason: "Service Unavailable", why: why}
}

func forbidden(why string) *refusal {
	return &refusal{code: sip.StatusForbidden, reason: "Forbidden", why: why}
}

// private says whether the no-trunk rule of the default tenant takes a caller from src.
func (s *Server) private(src netip.Addr) bool { return s.cfg.AllowAll || isLocal(src) }

func isLocal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate()
}

// hasDigest says whether callers over the trunk must answer a digest challenge.
func hasDigest(t *store.Trunk) bool { return t.Inbound.Username != "" && t.InboundPasswordEnc != "" }

// admitsByAddress says whether a trunk without a password takes calls from src as they are.
func admitsByAddress(t *store.Trunk, src netip.Addr) bool {
	return !hasDigest(t) && inCIDRs(src, t.Inbound.AllowedCIDRs)
}

// admitsByDigest says whether a trunk with a password takes calls from src once they
// authenticate: a password does not open a trunk to addresses it does not allow.
func admitsByDigest(t *store.Trunk, src netip.Addr) bool {
	return hasDigest(t) && (len(t.Inbound.AllowedCIDRs) == 0 || inCIDRs(src, t.Inbound.AllowedCIDRs))
}

// admitToTenant checks a caller against the trunks of the tenant that owns the number it
// dialled, and no other tenant's.
func (s *Server) admitToTenant(ctx context.Context, req *sip.Request, creds *credentials, src netip.Addr, tenantID string) (caller, *refusal) {
	// The provider a trunk of the tenant registered with sends its calls from its registrar.
	if t := s.regs.ofTenant(tenantID, src); t != nil {
		return caller{tenantID: tenantID, trunk: t}, nil
	}
	trunks, err := store.FindTenantInboundTrunks(ctx, s.cfg.Store, tenantID)
	if err != nil {
		s.log.Error("trunks not readable", "error", err)
		return caller{}, unavailable("database")
	}
	if len(trunks) == 0 {
		if tenantID == s.cfg.DefaultTenantID && s.private(src) {
			return caller{tenantID: tenantID}, nil
		}
		return caller{}, forbidden("the number's tenant has no inbound trunk for this source")
	}
	for i := range trunks {
		if admitsByAddress(&trunks[i], src) {
			return caller{tenantID: tenantID, trunk: &trunks[i]}, nil
		}
	}
	var digest []*store.Trunk
	for i := range trunks {
		if admitsByDigest(&trunks[i], src) {
			digest = append(digest, &trunks[i])
		}
	}
	if len(digest) == 0 {
		return caller{}, forbidden("no trunk of the number's tenant allows this source")
	}
	proven, ref := s.verifyDigest(req, creds, digest)
	if ref != nil {
		return caller{}, ref
	}
	if len(proven) == 0 {
		return caller{}, s.challenge(false)
	}
	return caller{tenantID: tenantID, trunk: proven[0]}, nil
}

// admitRegistered admits a call that arrived on a trunk's registration (see
// registrations.match) for the trunk's tenant, when it comes from the trunk's registrar or
// from an address the trunk allows. It goes to the tenant's number it dialled (the To user,
// which providers set to the number called), else to the oldest number the trunk carries.
func (s *Server) admitRegistered(ctx context.Context, src netip.Addr, reg *registration, d dialled) (caller, *refusal) {
	t := own(&reg.trunk)
	if !reg.fromRegistrar(src) && !inCIDRs(src, t.Inbound.AllowedCIDRs) {
		return caller{}, forbidden("calls on the registration of trunk " + t.ID + " come from its registrar or the addresses it allows")
	}
	who := caller{tenantID: t.TenantID, trunk: t, dest: d}
	if d.builtin != "" || d.number != nil && d.number.TenantID == t.TenantID {
		return who, nil
	}
	d.number = nil
	pn, err := store.TrunkPhoneNumber(ctx, s.cfg.Store, t.TenantID, t.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.log.Error("phone numbers not readable", "error", err)
		return caller{}, unavailable("database")
	default:
		d.number = pn
	}
	who.dest = d
	return who, nil
}

// claim is another tenant's claim on a caller that dialled what no tenant owns.
type claim struct {
	tenantID string
	trunk    *store.Trunk // the oldest trunk that allows the address
	digest   bool         // only a trunk with a password allows it: the caller must authenticate
}

// admitUnowned decides the tenant of a call to a built-in destination or to a number no
// tenant has, from the caller alone, in this order: digest credentials that a trunk
// verifies; the default tenant's rule; the one other tenant that claims the caller's
// address. The default tenant comes before the others so that no tenant's trunk, whatever
// addresses it allows, can take, challenge or refuse a call the default tenant would take.
func (s *Server) admitUnowned(ctx context.Context, req *sip.Request, creds *credentials, src netip.Addr) (caller, *refusal) {
	var trunks []store.Trunk
	if s.cfg.Store != nil {
		var err error
		if trunks, err = store.FindInboundTrunks(ctx, s.cfg.Store); err != nil {
			s.log.Error("trunks not readable", "error", err)
			return caller{}, unavailable("database")
		}
	}
	var digest []*store.Trunk
	for i := range trunks {
		if admitsByDigest(&trunks[i], src) {
			digest = append(digest, &trunks[i])
		}
	}
	// Credentials that name no trunk are no credentials; credentials that name one but do
	// not prove it (stale, of another realm, wrong) refuse the call only where the caller's
	// address gets no tenant on its own.
	proven, credsRefused := s.verifyDigest(req, creds, digest)
	if len(proven) > 0 {
		for _, t := range proven[1:] {
			if t.TenantID != proven[0].TenantID {
				return caller{}, forbidden("the credentials are those of trunks of several tenants")
			}
		}
		return caller{tenantID: proven[0].TenantID, trunk: own(proven[0])}, nil
	}
	authenticate := func() *refusal {
		if credsRefused != nil {
			return credsRefused
		}
		return s.challenge(false)
	}

	// The default tenant's rule: its trunks if it has any, as for a call to one of its
	// numbers; else its no-trunk rule.
	defaultHasTrunks, defaultDigest := false, false
	for i := range trunks {
		t := &trunks[i]
		if t.TenantID != s.cfg.DefaultTenantID {
			continue
		}
		defaultHasTrunks = true
		if admitsByAddress(t, src) {
			return caller{tenantID: t.TenantID, trunk: own(t)}, nil
		}
		defaultDigest = defaultDigest || admitsByDigest(t, src)
	}
	switch {
	case !defaultHasTrunks && s.private(src):
		return caller{tenantID: s.cfg.DefaultTenantID}, nil
	case defaultDigest:
		return caller{}, authenticate()
	}

	// The default tenant would not take the caller: another tenant may, if it is the only
	// one that claims the address.
	var claims []claim
	find := func(tenantID string) *claim {
		for i := range claims {
			if claims[i].tenantID == tenantID {
				return &claims[i]
			}
		}
		return nil
	}
	for i := range trunks {
		t := &trunks[i]
		if t.TenantID == s.cfg.DefaultTenantID {
			continue
		}
		switch c := find(t.TenantID); {
		case admitsByAddress(t, src) && c == nil:
			claims = append(claims, claim{tenantID: t.TenantID, trunk: t})
		case admitsByAddress(t, src) && c.digest:
			c.trunk, c.digest = t, false
		case admitsByDigest(t, src) && c == nil:
			claims = append(claims, claim{tenantID: t.TenantID, digest: true})
		}
	}
	switch {
	case len(claims) == 0:
		return caller{}, forbidden("no trunk allows this source")
	case len(claims) == 1 && !claims[0].digest:
		return caller{tenantID: claims[0].tenantID, trunk: own(claims[0].trunk)}, nil
	case len(digest) > 0:
		return caller{}, authenticate()
	}
	return caller{}, forbidden("trunks of several tenants allow this source")
}

// own copies a trunk of the node's shared list (store.FindInboundTrunks) for one call.
func own(t *store.Trunk) *store.Trunk {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// verifyDigest checks a caller's credentials against trunks with a password that allow its
// address, and returns those whose username and password they prove: none when there are
// no credentials or no trunk has their username, and a refusal when a trunk has it and the
// credentials are stale, of another realm, or wrong.
func (s *Server) verifyDigest(req *sip.Request, creds *credentials, trunks []*store.Trunk) ([]*store.Trunk, *refusal) {
	if creds == nil {
		return nil, nil
	}
	named := slices.DeleteFunc(slices.Clone(trunks), func(t *store.Trunk) bool { return t.Inbound.Username != creds.Username })
	if len(named) == 0 {
		return nil, nil
	}
	valid, stale := s.nonces.check(creds.Nonce, time.Now())
	if !valid || stale || creds.Realm != realm {
		return nil, s.challenge(stale)
	}
	var proven []*store.Trunk
	for _, t := range named {
		pw, err := t.InboundPassword(s.cfg.Store)
		if err != nil {
			s.log.Error("trunk password not readable", "trunk", t.ID, "error", err)
			return nil, unavailable("trunk password")
		}
		if creds.verify(req, pw) {
			proven = append(proven, t)
		}
	}
	if len(proven) == 0 {
		return nil, forbidden("wrong credentials for user " + creds.Username)
	}
	return proven, nil
}

func (s *Server) challenge(stale bool) *refusal {
	return &refusal{code: sip.StatusUnauthorized, reason: "Unauthorized", why: "digest challenge",
		hdrs: []sip.Header{sip.NewHeader("WWW-Authenticate", s.nonces.challenge(time.Now(), stale))}}
}

// route finds what answers an admitted call: the built-in destination it dialled by name,
// or the agent or destination its number routes to.
func (s *Server) route(ctx context.Context, who caller) (Handler, store.Call, *refusal) {
	var rec store.Call
	d := who.dest
	switch {
	case d.builtin != "":
		rec.Destination = d.builtin
		return builtin(d.builtin), rec, nil
	case d.number == nil:
	case d.number.AgentID != nil && *d.number.AgentID != "":
		rec.AgentID = d.number.AgentID
		if s.cfg.Agents == nil {
			return nil, rec, &refusal{code: sip.StatusTemporarilyUnavailable, reason: "Temporarily Unavailable", why: "agents cannot take calls on this node"}
		}
		h, err := s.cfg.Agents.AgentHandler(ctx, who.tenantID, *d.number.AgentID)
		if err != nil {
			return nil, rec, &refusal{code: sip.StatusTemporarilyUnavailable, reason: "Temporarily Unavailable", why: err.Error()}
		}
		return h, rec, nil
	default:
		if h := builtin(d.number.Destination); h != nil {
			rec.Destination = d.number.Destination
			return h, rec, nil
		}
	}
	return nil, rec, &refusal{code: sip.StatusNotFound, reason: "Not Found", why: "no route for " + strings.Join(d.users, ", ")}
}

// builtin is the built-in destination of that name (any case), or nil: the destinations
// every transport's calls share, carried by a SIP call.
func builtin(name string) Handler {
	if serve := call.Destination(name); serve != nil {
		return HandlerFunc(func(ctx context.Context, c *Call) { serve(ctx, c) })
	}
	return nil
}
