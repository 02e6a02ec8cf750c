package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"
)

// User is a person who signs in to a tenant with an email and password (the dashboard, or the
// login routes of the compatible surfaces).
type User struct {
	bun.BaseModel `bun:"table:users"`
	Row

	Email        string     `bun:"email,notnull" json:"email"`
	Name         string     `bun:"name,notnull" json:"name"`
	PasswordHash string     `bun:"password_hash,notnull" json:"-"`
	Scopes       []string   `bun:"scopes,type:json" json:"scopes"`
	LastLoginAt  *time.Time `bun:"last_login_at" json:"last_login_at"`

	// Password is write-only: a new password, hashed before the user is written.
	Password string `bun:"-" json:"password,omitempty"`
}

func (*User) idPrefix() string { return prefixUser }

// PasswordCost is the bcrypt work factor of stored passwords. Tests that sign in many
// times (each login checks several hashes, see api's login) may lower it before any user
// is made.
var PasswordCost = bcrypt.DefaultCost

// prepare hashes a new password; one of the wrong length is left for Validate to name.
func (u *User) prepare(*Store) error {
	pw := u.Password
	if pw == "" || len(pw) < 8 || len(pw) > 72 {
		return nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), PasswordCost)
	if err != nil {
		return err
	}
	u.PasswordHash, u.Password = string(h), ""
	return nil
}

// CheckPassword reports whether pw is the user's password, in constant time.
func (u *User) CheckPassword(pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) == nil
}

// Validate checks the email, name, scopes and (when one was just set) the password.
func (u *User) Validate() error {
	var fe fieldErrors
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
		fe.add("email", "is not an email address")
	}
	if len(u.Name) > maxNameLen {
		fe.add("name", "must be at most %d characters", maxNameLen)
	}
	if u.Password != "" {
		fe.add("password", "must be 8 to 72 characters")
	} else if u.PasswordHash == "" {
		fe.add("password", "is required")
	}
	if len(u.Scopes) == 0 {
		fe.add("scopes", "must hold at least one of read, write, admin")
	}
	for i, s := range u.Scopes {
		if s != ScopeRead && s != ScopeWrite && s != ScopeAdmin {
			fe.add("scopes["+strconv.Itoa(i)+"]", "must be read, write or admin")
		}
	}
	return fe.err()
}

// MaxLoginCandidates bounds how many users of one email a login without a tenant checks the
// password of. A login checks this many hashes whatever the email, so that its time tells
// nothing; each bcrypt check costs tens of milliseconds of CPU, so the bound stays small and a
// user of an email shared by more tenants names their tenant.
const MaxLoginCandidates = 3

// UsersByEmail finds the users of that email: in the tenant of that slug, or (slug empty) in
// every tenant, since an email is unique only within its tenant. At most MaxLoginCandidates,
// oldest first.
func (s *Store) UsersByEmail(ctx context.Context, email, tenantSlug string) ([]User, error) {
	var users []User
	q := s.db.NewSelect().Model(&users).Where("email = ?", strings.ToLower(strings.TrimSpace(email)))
	if tenantSlug != "" {
		q = q.Where("tenant_id IN (SELECT id FROM tenants WHERE slug = ?)", tenantSlug)
	}
	if err := q.Order("created_at", "id").Limit(MaxLoginCandidates).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return users, nil
}

// UserByEmail finds the user of that email in the tenant of that slug (in any tenant when
// slug is empty, the oldest).
func (s *Store) UserByEmail(ctx context.Context, email, tenantSlug string) (*User, error) {
	users, err := s.UsersByEmail(ctx, email, tenantSlug)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, ErrNotFound
	}
	return &users[0], nil
}

// RefreshToken lets a signed-in user get new access tokens without the password. Only its
// hash is kept; each use replaces it with a new one of the same family. The family is the
// chain of tokens that began with one login: when a token already spent is presented again
// (a stolen copy, or the thief's), the whole family is revoked, so that neither holder can
// go on.
type RefreshToken struct {
	bun.BaseModel `bun:"table:refresh_tokens"`

	ID        string     `bun:"id,pk"`
	TenantID  string     `bun:"tenant_id,notnull"`
	UserID    string     `bun:"user_id,notnull"`
	FamilyID  string     `bun:"family_id,notnull"`
	Hash      string     `bun:"hash,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	RevokedAt *time.Time `bun:"revoked_at"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
}

// IssuedToken is a new refresh token: its secret, shown once, and its family.
type IssuedToken struct {
	Secret   string
	FamilyID string
}

// ErrTokenInvalid is a refresh token that is unknown, expired, revoked or already used.
var ErrTokenInvalid = errors.New("store: refresh token is not valid")

// TokenReuseError is a refresh token presented after it was spent: its whole family has
// been revoked. It is an ErrTokenInvalid.
type TokenReuseError struct {
	TenantID, UserID, FamilyID string
}

func (e *TokenReuseError) Error() string {
	return "store: refresh token reused: family " + e.FamilyID + " revoked"
}
func (e *TokenReuseError) Is(target error) bool { return target == ErrTokenInvalid }

// IssueRefreshToken records a new refresh token, of a new family, for the user.
func (s *Store) IssueRefreshToken(ctx context.Context, u *User, ttl time.Duration) (IssuedToken, error) {
	return s.issueRefreshToken(ctx, s.db, u, ttl, "")
}

// issueRefreshToken records a token of family (a new family when empty).
func (s *Store) issueRefreshToken(ctx context.Context, db bun.IDB, u *User, ttl time.Duration, family string) (IssuedToken, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	secret := "rt_" + base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	rt := &RefreshToken{ID: newID(prefixRefreshToken), TenantID: u.TenantID, UserID: u.ID, FamilyID: family,
		Hash: HashKey(secret), ExpiresAt: now.Add(ttl), CreatedAt: now}
	if rt.FamilyID == "" {
		rt.FamilyID = rt.ID
	}
	if _, err := db.NewInsert().Model(rt).Exec(ctx); err != nil {
		return IssuedToken{}, classify(err)
	}
	return IssuedToken{Secret: secret, FamilyID: rt.FamilyID}, nil
}

// RotateRefreshToken spends a refresh token and returns its user with a new token of the
// same family in its place. A token is good once: a second use fails with a
// *TokenReuseError, having revoked every token of the family.
func (s *Store) RotateRefreshToken(ctx context.Context, secret string, ttl time.Duration) (*User, IssuedToken, error) {
	var (
		user  *User
		next  IssuedToken
		reuse *TokenReuseError
	)
	hash := HashKey(secret)
	err := s.inTx(ctx, func(tx bun.Tx) error {
		now := s.now()
		res, err := tx.NewUpdate().Table("refresh_tokens").Set("revoked_at = ?", now).
			Where("hash = ?", hash).Where("revoked_at IS NULL").Where("expires_at > ?", now).Exec(ctx)
		if err != nil {
			return err
		}
		rt := new(RefreshToken)
		if err := tx.NewSelect().Model(rt).Where("hash = ?", hash).Scan(ctx); err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if rt.RevokedAt == nil {
				return ErrTokenInvalid // expired
			}
			// Spent before: whoever holds the family's newest token may be a thief, or
			// robbed. Every token of the family goes; the user signs in again. (This
			// commits: the refusal is the answer, the revocation is kept.)
			if _, err := tx.NewUpdate().Table("refresh_tokens").Set("revoked_at = ?", now).
				Where("family_id = ?", rt.FamilyID).Where("revoked_at IS NULL").Exec(ctx); err != nil {
				return err
			}
			reuse = &TokenReuseError{TenantID: rt.TenantID, UserID: rt.UserID, FamilyID: rt.FamilyID}
			return nil
		}
		user = new(User)
		if err := tx.NewSelect().Model(user).Where("id = ?", rt.UserID).Scan(ctx); err != nil {
			return err
		}
		next, err = s.issueRefreshToken(ctx, tx, user, ttl, rt.FamilyID)
		return err
	})
	switch {
	case errors.Is(err, ErrTokenInvalid), errors.Is(err, sql.ErrNoRows), errors.Is(err, ErrNotFound):
		return nil, IssuedToken{}, ErrTokenInvalid
	case err != nil:
		return nil, IssuedToken{}, classify(err)
	case reuse != nil:
		return nil, IssuedToken{}, reuse
	}
	return user, next, nil
}

// CheckUserSession reports whether an access token of the user, of that tenant and refresh
// family (none when empty), may still be used: the user exists (deleting a tenant deletes
// its users) and the family still holds a token that is not revoked. ErrNotFound when not.
func (s *Store) CheckUserSession(ctx context.Context, tenantID, userID, familyID string) error {
	n, err := s.db.NewSelect().Table("users").Where("id = ?", userID).Where("tenant_id = ?", tenantID).Count(ctx)
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	if familyID == "" {
		return nil
	}
	n, err = s.db.NewSelect().Table("refresh_tokens").Where("family_id = ?", familyID).Where("user_id = ?", userID).
		Where("revoked_at IS NULL").Count(ctx)
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// RecordLogin notes when the user last signed in.
func (s *Store) RecordLogin(ctx context.Context, u *User) error {
	now := s.now()
	u.LastLoginAt = &now
	_, err := s.db.NewUpdate().Model(u).Column("last_login_at").Where("id = ?", u.ID).Exec(ctx)
	return classify(err)
}
