package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// Principal is who a request acts for: a tenant, and the key or user that proved it.
type Principal struct {
	TenantID string
	KeyID    string // set for API keys
	UserID   string // set for users signed in with a token
	// FamilyID is the refresh-token family of a user's access token ("" for keys and for
	// tokens issued before families existed).
	FamilyID string
	Scopes   []string
	// RateLimit is requests a minute (0: the server default).
	RateLimit int
	// Operator: an admin of the default tenant, who may manage every tenant.
	Operator bool

	// key is the API key, for its limits (nil for users); makers are the keys that made
	// it, its own maker first, whose limits bound it too (see keyLimits).
	key    *store.APIKey
	makers []*store.APIKey
}

// keyLimits are the keys whose limits a request of p counts against: its own key and every
// key above it in the chain of makers. A user's requests count against none.
func (p *Principal) keyLimits() []*store.APIKey {
	if p.key == nil {
		return nil
	}
	return append([]*store.APIKey{p.key}, p.makers...)
}

// Has reports whether the principal holds scope; admin includes write, write includes read.
func (p *Principal) Has(scope string) bool {
	for _, s := range p.Scopes {
		if s == scope || s == store.ScopeAdmin || (s == store.ScopeWrite && scope == store.ScopeRead) {
			return true
		}
	}
	return false
}

// credential names the principal in the registry of long-lived connections.
func (p *Principal) credential() realtime.Credential {
	return realtime.Credential{TenantID: p.TenantID, KeyID: p.KeyID, UserID: p.UserID, FamilyID: p.FamilyID}
}

// viewer is the principal as the event streams know it.
func (p *Principal) viewer(r *http.Request) realtime.Viewer {
	return realtime.Viewer{TenantID: p.TenantID, Key: p.limiterKey(), Credential: p.credential(), RemoteAddr: r.RemoteAddr}
}

// limiterKey names the principal's rate-limit bucket.
func (p *Principal) limiterKey() string {
	if p.KeyID != "" {
		return p.KeyID
	}
	return p.UserID
}

// authenticate finds the principal of a request. Wrong credentials are counted per client
// address: past AuthFailureLimit a minute, the address is refused before its credential
// costs a lookup (a flood of made-up keys from one address also meets the negative cache).
// Keys this node found valid in the last trustedKeyTTL are spared (Known), so that behind
// an address many clients share, one client's wrong or revoked key does not lock the
// others out.
func (s *Server) authenticate(r *http.Request, rt *route) (*Principal, error) {
	if p := principalInContext(r.Context()); p != nil {
		return p, nil
	}
	if p := s.keylessPrincipal(r, rt); p != nil {
		return p, nil
	}
	cred := credential(r, rt.QueryToken)
	ip := clientIP(r)
	if cred != "" && !s.auth.Known(cred) {
		if e := s.limiter.guardAuth(ip, s.cfg.AuthFailureLimit); e != nil {
			return nil, e
		}
	}
	p, err := s.auth.Authenticate(r.Context(), cred)
	if errors.Is(err, errUnauthenticated) && cred != "" {
		s.limiter.Allow(authFailures(ip), s.cfg.AuthFailureLimit)
	}
	if err != nil {
		return nil, err
	}
	// Alumia names the tenant a request acts in (alumia.go).
	if err := s.applyOrg(r, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Lifetimes of the credentials a login hands out.
const (
	accessTokenTTL  = 15 * time.Minute
	refreshTokenTTL = 30 * 24 * time.Hour
)

// keyCacheTTL bounds how long a key read from the database is trusted without reading it
// again: it is how soon another node's revocation reaches this one. This node's own
// revocations take effect at once.
const keyCacheTTL = 30 * time.Second

// Authenticator verifies API keys and access tokens. Keys are cached so that a request costs
// no database round trip; last-used times are written in batches.
type Authenticator struct {
	store           *store.Store
	secret          []byte
	defaultTenantID string
	log             *slog.Logger
	now             func() time.Time

	mu    sync.RWMutex
	cache map[string]*cachedKey // by key hash
	// misses remembers hashes that matched no key, briefly, so a flood of wrong keys
	// cannot turn into a flood of queries.
	misses map[string]time.Time
	// users remembers, by user ID and refresh-token family, when an access token's user
	// was last found to exist (and its family not revoked): a token costs a query at most
	// once every keyCacheTTL, and a deletion here or on another node drops the entry.
	users map[userKey]time.Time
	// revokedFamilies are refresh-token families revoked for reuse, with when: their access
	// tokens stop working at once, and are forgotten once every such token has expired.
	revokedFamilies map[string]time.Time
	// trusted remembers, by hash, the keys the database said were valid in the last
	// trustedKeyTTL, far longer than the cache trusts what they may do: only whether they
	// pass the limit of failed authentications per address. A revocation, or a lookup
	// that finds the key gone or unusable, drops the key at once.
	trusted map[string]trustedKey
	// gen counts revocations, so that a database read that began before one does not put
	// back into a cache what the revocation took out.
	gen uint64

	// lookups counts credentials read from the database (keys and token users).
	lookups atomic.Uint64
}

type userKey struct{ userID, familyID string }

// trustedKeyTTL is how long a key found valid passes the limit of failed authentications
// per address (see Known); maxTrustedKeys bounds how many are remembered. Only valid keys
// enter, so the bound is reached only by a node with that many keys in use in an hour.
const (
	trustedKeyTTL  = time.Hour
	maxTrustedKeys = 100_000
)

type trustedKey struct {
	keyID, tenantID string
	at              time.Time
}

// negativeKeyTTL is how long a key that matched nothing is refused without asking the
// database again; maxNegativeKeys bounds how many are remembered.
const (
	negativeKeyTTL  = 5 * time.Second
	maxNegativeKeys = 10_000
)

type cachedKey struct {
	key      *store.APIKey
	makers   []*store.APIKey // the chain of keys that made key, read with it
	tooDeep  bool            // the chain was too long to follow: the key is refused
	fetched  time.Time
	lastUsed atomic.Int64 // unix nanoseconds; 0 when not used since the last flush
}

// NewAuthenticator returns an authenticator over st, signing tokens with secret.
func NewAuthenticator(st *store.Store, secret []byte, defaultTenantID string, log *slog.Logger) *Authenticator {
	return &Authenticator{
		store: st, secret: secret, defaultTenantID: defaultTenantID, log: log,
		now:   func() time.Time { return time.Now().UTC() },
		cache: map[string]*cachedKey{}, misses: map[string]time.Time{},
		users: map[userKey]time.Time{}, revokedFamilies: map[string]time.Time{},
		trusted: map[string]trustedKey{},
	}
}

// credential extracts the presented credential: X-API-Key, or Authorization: Bearer, or (for
// browsers, which cannot set headers on a WebSocket or EventSource) a token query parameter
// when allowQuery is set.
func credential(r *http.Request, allowQuery bool) string {
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return k
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if allowQuery {
		return r.URL.Query().Get("token")
	}
	return ""
}

// Authenticate returns the principal of a credential. A wrong, revoked or expired credential
// is errUnauthenticated; a database that cannot be asked is store.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, cred string) (*Principal, error) {
	if cred == "" {
		return nil, errUnauthenticated
	}
	if store.KnownKeyKind(cred) != "" {
		return a.authenticateKey(ctx, cred)
	}
	if strings.Count(cred, ".") == 2 {
		return a.authenticateToken(ctx, cred)
	}
	return nil, errUnauthenticated
}

func (a *Authenticator) authenticateKey(ctx context.Context, cred string) (*Principal, error) {
	hash := store.HashKey(cred)
	now := a.now()
	a.mu.RLock()
	ck := a.cache[hash]
	missAt, missed := a.misses[hash]
	gen := a.gen
	a.mu.RUnlock()
	if ck == nil || now.Sub(ck.fetched) > keyCacheTTL {
		if missed && now.Sub(missAt) < negativeKeyTTL {
			return nil, errUnauthenticated
		}
		a.lookups.Add(1)
		k, err := a.store.APIKeyByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			a.mu.Lock()
			if len(a.misses) >= maxNegativeKeys {
				for h, at := range a.misses {
					if now.Sub(at) >= negativeKeyTTL {
						delete(a.misses, h)
					}
				}
				if len(a.misses) >= maxNegativeKeys {
					clear(a.misses)
				}
			}
			a.misses[hash] = now
			delete(a.trusted, hash)
			a.mu.Unlock()
			return nil, errUnauthenticated
		}
		if err != nil {
			return nil, err
		}
		makers, err := a.store.APIKeyMakers(ctx, k)
		if err != nil && !errors.Is(err, store.ErrKeyTooDeep) {
			return nil, err
		}
		fresh := &cachedKey{key: k, makers: makers, fetched: now}
		if err != nil {
			fresh.tooDeep = true
		}
		if ck != nil {
			fresh.lastUsed.Store(ck.lastUsed.Load())
		}
		ck = fresh
		a.mu.Lock()
		// A revocation while the key was read may be newer than what was read.
		if a.gen == gen {
			a.cache[hash] = ck
			a.trust(hash, k, now)
		}
		delete(a.misses, hash)
		a.mu.Unlock()
	}
	k := ck.key
	if !ck.usable(now) {
		return nil, errUnauthenticated
	}
	ck.lastUsed.Store(now.UnixNano())
	scopes := boundScopes(k.Scopes, ck.makers)
	return &Principal{
		TenantID: k.TenantID, KeyID: k.ID, Scopes: scopes, RateLimit: k.RateLimit,
		Operator: k.TenantID == a.defaultTenantID && slices.Contains(scopes, store.ScopeAdmin),
		key:      k, makers: ck.makers,
	}, nil
}

// usable reports whether the key may authenticate at t: it and every key above it in its
// chain of makers are neither revoked nor expired.
func (ck *cachedKey) usable(t time.Time) bool {
	if ck.tooDeep || !ck.key.Usable(t) {
		return false
	}
	for _, m := range ck.makers {
		if !m.Usable(t) {
			return false
		}
	}
	return true
}

// scopeRank orders the scopes: admin includes write, write includes read.
func scopeRank(sc string) int {
	switch sc {
	case store.ScopeRead:
		return 1
	case store.ScopeWrite:
		return 2
	case store.ScopeAdmin:
		return 3
	}
	return 0
}

var scopeOfRank = [...]string{1: store.ScopeRead, 2: store.ScopeWrite, 3: store.ScopeAdmin}

// boundScopes is what a key holding scopes may do while its makers hold what they hold now:
// never more than the least of them, so narrowing a maker's scopes narrows every key it made
// on their next request. A scope above that bound becomes the bound.
func boundScopes(scopes []string, makers []*store.APIKey) []string {
	if len(makers) == 0 {
		return scopes
	}
	bound := 3
	for _, m := range makers {
		top := 0
		for _, sc := range m.Scopes {
			top = max(top, scopeRank(sc))
		}
		bound = min(bound, top)
	}
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		r := scopeRank(sc)
		if r == 0 {
			continue
		}
		if r > bound {
			if bound == 0 {
				continue
			}
			sc = scopeOfRank[bound]
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// madeBy reports whether the key with id is above the cached key in its chain of makers.
func (ck *cachedKey) madeBy(id string) bool {
	if id == "" {
		return false
	}
	for _, m := range ck.makers {
		if m.ID == id {
			return true
		}
	}
	return false
}

// ForgetKey drops a key, and every key it made, from the cache, so that a change to its
// scopes or limits bounds them on their next request.
func (a *Authenticator) ForgetKey(id string) {
	a.mu.Lock()
	for h, ck := range a.cache {
		if ck.key.ID == id || ck.madeBy(id) {
			delete(a.cache, h)
		}
	}
	a.gen++
	a.mu.Unlock()
}

// Forget drops a key from the cache so that a change to it (revocation, new scopes) takes
// effect on the next request.
func (a *Authenticator) Forget(hash string) {
	a.mu.Lock()
	delete(a.cache, hash)
	a.gen++
	a.mu.Unlock()
}

// trust records, with a.mu held, what a lookup found of the key of hash: a usable key is
// trusted from now, another not at all.
func (a *Authenticator) trust(hash string, k *store.APIKey, now time.Time) {
	if !k.Usable(now) {
		delete(a.trusted, hash)
		return
	}
	if _, ok := a.trusted[hash]; !ok && len(a.trusted) >= maxTrustedKeys {
		for h, tk := range a.trusted {
			if now.Sub(tk.at) > trustedKeyTTL {
				delete(a.trusted, h)
			}
		}
		if len(a.trusted) >= maxTrustedKeys {
			clear(a.trusted)
		}
	}
	a.trusted[hash] = trustedKey{keyID: k.ID, tenantID: k.TenantID, at: now}
}

// Known reports whether a credential is spared the limit of failed authentications per
// address: a key this node found valid in the last trustedKeyTTL (checked again against
// the database once its cache entry is stale, so a key revoked meanwhile costs one lookup
// and is then known no more), or an access token (checked by its signature; only a genuine
// one leads to a query).
func (a *Authenticator) Known(cred string) bool {
	if store.KnownKeyKind(cred) == "" {
		return strings.Count(cred, ".") == 2
	}
	hash := store.HashKey(cred)
	now := a.now()
	a.mu.RLock()
	ck := a.cache[hash]
	tk, trusted := a.trusted[hash]
	a.mu.RUnlock()
	if ck != nil && !ck.usable(now) {
		return false
	}
	return ck != nil && now.Sub(ck.fetched) <= keyCacheTTL || trusted && now.Sub(tk.at) <= trustedKeyTTL
}

// Lookups reports how many credentials were read from the database since the start.
func (a *Authenticator) Lookups() uint64 { return a.lookups.Load() }

// Revoked makes a revocation take effect on this node's caches: the key, the user, the
// refresh-token family or the whole tenant is read afresh (and refused) on its next use.
func (a *Authenticator) Revoked(rv realtime.Revocation) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	wholeTenant := rv.KeyID == "" && rv.UserID == "" && rv.FamilyID == ""
	for h, ck := range a.cache {
		if ck.key.ID == rv.KeyID || ck.madeBy(rv.KeyID) || (wholeTenant && ck.key.TenantID == rv.TenantID) {
			delete(a.cache, h)
		}
	}
	for h, tk := range a.trusted {
		if tk.keyID == rv.KeyID || (wholeTenant && tk.tenantID == rv.TenantID) {
			delete(a.trusted, h)
		}
	}
	for k := range a.users {
		if k.userID == rv.UserID || (rv.FamilyID != "" && k.familyID == rv.FamilyID) {
			delete(a.users, k)
		}
	}
	if rv.KeyID == "" && rv.UserID == "" && rv.FamilyID == "" && rv.TenantID != "" {
		// A tenant went: its users are not known here, so every user is checked again.
		clear(a.users)
	}
	if rv.FamilyID != "" {
		for f, at := range a.revokedFamilies {
			if now.Sub(at) > accessTokenTTL {
				delete(a.revokedFamilies, f)
			}
		}
		a.revokedFamilies[rv.FamilyID] = now
	}
}

// FlushLastUsed writes the last-used times gathered since the previous flush.
func (a *Authenticator) FlushLastUsed(ctx context.Context) error {
	used := map[string]time.Time{}
	a.mu.RLock()
	for _, ck := range a.cache {
		if ns := ck.lastUsed.Swap(0); ns != 0 {
			used[ck.key.ID] = time.Unix(0, ns).UTC()
		}
	}
	a.mu.RUnlock()
	if len(used) == 0 {
		return nil
	}
	return a.store.TouchAPIKeys(ctx, used)
}

// RunFlusher flushes last-used times every interval until ctx ends, then once more.
func (a *Authenticator) RunFlusher(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.FlushLastUsed(context.WithoutCancel(ctx)); err != nil {
				a.log.Warn("last-used times of keys not written", "err", err)
			}
			return
		case <-t.C:
			if err := a.FlushLastUsed(ctx); err != nil {
				a.log.Warn("last-used times of keys not written", "err", err)
			}
		}
	}
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	TenantID string   `json:"tid"`
	Scopes   []string `json:"scp"`
	Type     string   `json:"typ"`
	// Family is the refresh-token family the token was issued with: reusing a spent
	// refresh token revokes the family, and with it this token.
	Family string `json:"fam,omitempty"`
	jwt.RegisteredClaims
}

// IssueAccessToken signs a short-lived access token for a user, of the refresh-token
// family given.
func (a *Authenticator) IssueAccessToken(u *store.User, family string) (string, time.Time, error) {
	now := a.now()
	exp := now.Add(accessTokenTTL)
	claims := accessClaims{
		TenantID: u.TenantID, Scopes: u.Scopes, Type: "access", Family: family,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: u.ID, Issuer: "switchboard", IssuedAt: jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	return tok, exp, err
}

func (a *Authenticator) authenticateToken(ctx context.Context, raw string) (*Principal, error) {
	var c accessClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("switchboard"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now))
	if err != nil || c.Type != "access" || c.Subject == "" || c.TenantID == "" {
		return nil, errUnauthenticated
	}
	if err := a.checkUser(ctx, &c); err != nil {
		return nil, err
	}
	return &Principal{
		TenantID: c.TenantID, UserID: c.Subject, Scopes: c.Scopes, FamilyID: c.Family,
		Operator: c.TenantID == a.defaultTenantID && slices.Contains(c.Scopes, store.ScopeAdmin),
	}, nil
}

// checkUser refuses the access token of a user or tenant that was deleted, or of a
// refresh-token family revoked for reuse. What was found valid is trusted for keyCacheTTL;
// deletions and revocations drop it at once (see Revoked).
func (a *Authenticator) checkUser(ctx context.Context, c *accessClaims) error {
	now := a.now()
	k := userKey{c.Subject, c.Family}
	a.mu.RLock()
	at, ok := a.users[k]
	_, revoked := a.revokedFamilies[c.Family]
	gen := a.gen
	a.mu.RUnlock()
	if c.Family != "" && revoked {
		return errUnauthenticated
	}
	if ok && now.Sub(at) <= keyCacheTTL {
		return nil
	}
	a.lookups.Add(1)
	err := a.store.CheckUserSession(ctx, c.TenantID, c.Subject, c.Family)
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthenticated
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.gen == gen {
		if len(a.users) >= 100_000 {
			clear(a.users)
		}
		a.users[k] = now
	}
	a.mu.Unlock()
	return nil
}
