package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Scopes a key or user may hold. admin includes write, and write includes read.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// KeyKinds are the prefixes of the API keys Switchboard issues and accepts, one per surface
// (see the README of the seed documents): Agent Studio live and test keys, AmaStudio,
// Alumia live and test, and Amplifier applications.
var KeyKinds = []string{"as_live_", "as_test_", "amallm_", "alm_live_", "alm_test_", "app_"}

// keyPrefixes are the prefixes of the keys made by POST /api/v1/keys and `switchboard keys
// create`, by the surface they are for and their environment.
var keyPrefixes = map[string]map[string]string{
	"agent_studio": {"live": "as_live_", "test": "as_test_"},
	"alumia":       {"live": "alm_live_", "test": "alm_test_"},
}

// KeySurfaces lists the surfaces KeyPrefix knows, for messages.
const KeySurfaces = "agent_studio or alumia"

// KeyPrefix is the prefix of a new key for surface ("" is agent_studio) in env (live or
// test); ok is false for a surface or environment there is none of.
func KeyPrefix(surface, env string) (prefix string, surfaceOK, envOK bool) {
	if surface == "" {
		surface = "agent_studio"
	}
	byEnv, surfaceOK := keyPrefixes[surface]
	prefix, envOK = byEnv[env]
	return prefix, surfaceOK, envOK
}

// APIKey is a credential a program uses. Only its SHA-256 hash is kept; the key itself is
// shown once, when it is made.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`
	Row

	Name string `bun:"name,notnull" json:"name"`
	// Kind is the key's prefix, such as "as_live_".
	Kind string `bun:"kind,notnull" json:"kind"`
	// Display is the start and end of the key, enough to recognise it, never to use it.
	Display   string   `bun:"display,notnull" json:"display"`
	Hash      string   `bun:"hash,notnull" json:"-"`
	Scopes    []string `bun:"scopes,type:json" json:"scopes"`
	RateLimit int      `bun:"rate_limit,notnull" json:"rate_limit"`
	// TokenLimit bounds the model gateway's tokens a minute (0: none); BudgetUSD bounds
	// what the key may spend there in all (0: none).
	TokenLimit int        `bun:"token_limit,notnull" json:"token_limit"`
	BudgetUSD  float64    `bun:"budget_usd,notnull" json:"budget_usd"`
	LastUsedAt *time.Time `bun:"last_used_at" json:"last_used_at"`
	ExpiresAt  *time.Time `bun:"expires_at" json:"expires_at"`
	RevokedAt  *time.Time `bun:"revoked_at" json:"revoked_at"`
	// ParentID is the key that made this one ("" for a key made by a user, an operator or
	// the command line). A key never holds more than its maker: its scopes and limits are
	// bounded by the maker's when it is made and again whenever it is used, what it spends
	// and the requests it makes count against its maker's limits too, and revoking the maker
	// revokes it.
	ParentID string `bun:"parent_id,notnull" json:"parent_id,omitempty"`
}

func (*APIKey) idPrefix() string { return prefixKey }

// Validate checks the key's name, kind, scopes and limits.
func (k *APIKey) Validate() error {
	var fe fieldErrors
	fe.requireName("name", k.Name)
	if !slices.Contains(KeyKinds, k.Kind) {
		fe.add("kind", "must be one of %s", strings.Join(KeyKinds, ", "))
	}
	if len(k.Scopes) == 0 {
		fe.add("scopes", "must hold at least one of read, write, admin")
	}
	for i, s := range k.Scopes {
		if s != ScopeRead && s != ScopeWrite && s != ScopeAdmin {
			fe.add("scopes["+strconv.Itoa(i)+"]", "must be read, write or admin")
		}
	}
	fe.rangeInt("rate_limit", k.RateLimit, 0, 10_000_000)
	fe.rangeInt("token_limit", k.TokenLimit, 0, 1_000_000_000)
	fe.rangeFloat("budget_usd", k.BudgetUSD, 0, 1e9)
	return fe.err()
}

// Usable reports whether the key may authenticate at t: not revoked and not expired.
func (k *APIKey) Usable(t time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || t.Before(*k.ExpiresAt))
}

// HashKey is how a key is stored and looked up.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KnownKeyKind returns the kind of a presented key, or "" when no issued prefix matches.
func KnownKeyKind(key string) string {
	for _, kind := range KeyKinds {
		if strings.HasPrefix(key, kind) {
			return kind
		}
	}
	return ""
}

const keyAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newKeySecret returns kind followed by 40 random base62 characters (about 238 bits).
func newKeySecret(kind string) string {
	out := make([]byte, 0, len(kind)+40)
	out = append(out, kind...)
	var buf [64]byte
	for len(out) < cap(out) {
		_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails on Linux
		for _, c := range buf {
			// Bytes past the largest multiple of 62 are dropped so every character is
			// equally likely.
			if c < 248 && len(out) < cap(out) {
				out = append(out, keyAlphabet[int(c)%62])
			}
		}
	}
	return string(out)
}

// CreateAPIKey makes a new key for the tenant and returns it with the secret, which is not
// stored and cannot be shown again.
func (s *Store) CreateAPIKey(ctx context.Context, tenantID string, k *APIKey) (string, error) {
	if k.Scopes == nil {
		k.Scopes = []string{ScopeRead, ScopeWrite}
	}
	secret := ""
	if slices.Contains(KeyKinds, k.Kind) {
		secret = newKeySecret(k.Kind)
		k.Hash = HashKey(secret)
		k.Display = secret[:len(k.Kind)+4] + "…" + secret[len(secret)-4:]
	}
	if err := Create(ctx, s, tenantID, k); err != nil {
		return "", err
	}
	return secret, nil
}

// APIKeyByHash finds the key a request presented, in any tenant.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*APIKey, error) {
	k := new(APIKey)
	if err := s.db.NewSelect().Model(k).Where("hash = ?", hash).Limit(1).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return k, nil
}

// maxKeyDepth bounds how long a chain of makers is followed: keys made by keys made by keys
// are legitimate, a chain past this is refused rather than walked forever.
const maxKeyDepth = 16

// ErrKeyTooDeep is a key whose chain of makers is longer than maxKeyDepth.
var ErrKeyTooDeep = errors.New("store: the key's chain of makers is too long")

// APIKeyMakers reads the makers of k, its own maker first and the key at the top of the
// chain last; a key made by no key has none. A maker that is gone ends the chain.
func (s *Store) APIKeyMakers(ctx context.Context, k *APIKey) ([]*APIKey, error) {
	var out []*APIKey
	for parent := k.ParentID; parent != ""; {
		if len(out) >= maxKeyDepth {
			return nil, ErrKeyTooDeep
		}
		m, err := Get[APIKey](ctx, s, k.TenantID, parent)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		parent = m.ParentID
	}
	return out, nil
}

// keyTreeQuery is the recursive query of the IDs of key id of the tenant and of every key it
// made, directly or through keys it made.
const keyTreeQuery = `WITH RECURSIVE tree(id) AS (
	SELECT id FROM api_keys WHERE tenant_id = ? AND id = ?
	UNION
	SELECT k.id FROM api_keys k JOIN tree t ON k.parent_id = t.id WHERE k.tenant_id = ?
) `

// RevokeAPIKey revokes a key of the tenant and every key it made, directly or through keys
// it made, in one transaction, and returns them all (the key first) with their
// revocation times; revoking is idempotent, and a key revoked before keeps its time.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, id string) ([]APIKey, error) {
	if !validID(prefixKey, id) {
		return nil, ErrNotFound
	}
	now := s.now()
	var keys []APIKey
	err := s.inTx(ctx, func(tx bun.Tx) error {
		if _, err := tx.NewRaw(keyTreeQuery+"UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE tenant_id = ? AND revoked_at IS NULL AND id IN (SELECT id FROM tree)",
			tenantID, id, tenantID, now, now, tenantID).Exec(ctx); err != nil {
			return err
		}
		var ids []string
		if err := tx.NewRaw(keyTreeQuery+"SELECT id FROM tree", tenantID, id, tenantID).Scan(ctx, &ids); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		return tx.NewSelect().Model(&keys).Where("tenant_id = ?", tenantID).Where("id IN (?)", bun.List(ids)).Scan(ctx)
	})
	if err != nil {
		return nil, classify(err)
	}
	if len(keys) == 0 {
		return nil, ErrNotFound
	}
	// The key itself first: callers answer with it.
	slices.SortStableFunc(keys, func(a, b APIKey) int {
		switch {
		case a.ID == id:
			return -1
		case b.ID == id:
			return 1
		}
		return 0
	})
	return keys, nil
}

// SpentUSDTree is what a key of the tenant and every key it made, directly or through keys
// they made, have spent through the gateway in all: what counts against the key's budget.
func (s *Store) SpentUSDTree(ctx context.Context, tenantID, keyID string) (float64, error) {
	var spent float64
	err := s.db.NewRaw(keyTreeQuery+"SELECT COALESCE(SUM(cost_usd), 0.0) FROM usage_records WHERE tenant_id = ? AND key_id IN (SELECT id FROM tree)",
		tenantID, keyID, tenantID, tenantID).Scan(ctx, &spent)
	return spent, classify(err)
}

// TouchAPIKeys records when keys were last used, from a batch kept by the caller so that
// authenticating a request costs no write.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	for id, t := range used {
		if _, err := s.db.NewUpdate().Table("api_keys").Set("last_used_at = ?", t).Where("id = ?", id).Exec(ctx); err != nil {
			return classify(err)
		}
	}
	return nil
}
