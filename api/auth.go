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

	"github.com/switchboard-go/switchboard/store"
)

// Principal is who a request acts for: a tenant, and the key or user that proved it.
type Principal struct {
	TenantID string
	KeyID    string // set for API keys
	UserID   string // set for users signed in with a token
	Scopes   []string
	// RateLimit is requests a minute (0: the server default).
	RateLimit int
	// Operator: an admin of the default tenant, who may manage every tenant.
	Operator bool

	// key is the API key, for its limits (nil for users).
	key *store.APIKey
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

// limiterKey names the principal's rate-limit bucket.
func (p *Principal) limiterKey() string {
	if p.KeyID != "" {
		return p.KeyID
	}
	return p.UserID
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
}

type cachedKey struct {
	key      *store.APIKey
	fetched  time.Time
	lastUsed atomic.Int64 // unix nanoseconds; 0 when not used since the last flush
}

// NewAuthenticator returns an authenticator over st, signing tokens with secret.
func NewAuthenticator(st *store.Store, secret []byte, defaultTenantID string, log *slog.Logger) *Authenticator {
	return &Authenticator{
		store: st, secret: secret, defaultTenantID: defaultTenantID, log: log,
		now:   func() time.Time { return time.Now().UTC() },
		cache: map[string]*cachedKey{}, misses: map[string]time.Time{},
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
		return a.authenticateToken(cred)
	}
	return nil, errUnauthenticated
}

func (a *Authenticator) authenticateKey(ctx context.Context, cred string) (*Principal, error) {
	hash := store.HashKey(cred)
	now := a.now()
	a.mu.RLock()
	ck := a.cache[hash]
	missAt, missed := a.misses[hash]
	a.mu.RUnlock()
	if ck == nil || now.Sub(ck.fetched) > keyCacheTTL {
		if missed && now.Sub(missAt) < 5*time.Second {
			return nil, errUnauthenticated
		}
		k, err := a.store.APIKeyByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			a.mu.Lock()
			if len(a.misses) > 10_000 {
				clear(a.misses)
			}
			a.misses[hash] = now
			a.mu.Unlock()
			return nil, errUnauthenticated
		}
		if err != nil {
			return nil, err
		}
		fresh := &cachedKey{key: k, fetched: now}
		if ck != nil {
			fresh.lastUsed.Store(ck.lastUsed.Load())
		}
		ck = fresh
		a.mu.Lock()
		a.cache[hash] = ck
		delete(a.misses, hash)
		a.mu.Unlock()
	}
	k := ck.key
	if !k.Usable(now) {
		return nil, errUnauthenticated
	}
	ck.lastUsed.Store(now.UnixNano())
	return &Principal{
		TenantID: k.TenantID, KeyID: k.ID, Scopes: k.Scopes, RateLimit: k.RateLimit,
		Operator: k.TenantID == a.defaultTenantID && slices.Contains(k.Scopes, store.ScopeAdmin),
		key:      k,
	}, nil
}

// Forget drops a key from the cache so that a change to it (revocation, new scopes) takes
// effect on the next request.
func (a *Authenticator) Forget(hash string) {
	a.mu.Lock()
	delete(a.cache, hash)
	a.mu.Unlock()
}

// ForgetTenant drops every cached key of a tenant (the tenant was deleted).
func (a *Authenticator) ForgetTenant(tenantID string) {
	a.mu.Lock()
	for h, ck := range a.cache {
		if ck.key.TenantID == tenantID {
			delete(a.cache, h)
		}
	}
	a.mu.Unlock()
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
	jwt.RegisteredClaims
}

// IssueAccessToken signs a short-lived access token for a user.
func (a *Authenticator) IssueAccessToken(u *store.User) (string, time.Time, error) {
	now := a.now()
	exp := now.Add(accessTokenTTL)
	claims := accessClaims{
		TenantID: u.TenantID, Scopes: u.Scopes, Type: "access",
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: u.ID, Issuer: "switchboard", IssuedAt: jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	return tok, exp, err
}

func (a *Authenticator) authenticateToken(raw string) (*Principal, error) {
	var c accessClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("switchboard"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now))
	if err != nil || c.Type != "access" || c.Subject == "" || c.TenantID == "" {
		return nil, errUnauthenticated
	}
	return &Principal{
		TenantID: c.TenantID, UserID: c.Subject, Scopes: c.Scopes,
		Operator: c.TenantID == a.defaultTenantID && slices.Contains(c.Scopes, store.ScopeAdmin),
	}, nil
}
