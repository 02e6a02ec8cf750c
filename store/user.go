package store

import (
	"context"
	"crypto/rand"
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

// bcryptCost is the work factor of stored passwords.
var bcryptCost = bcrypt.DefaultCost

// prepare hashes a new password; one of the wrong length is left for Validate to name.
func (u *User) prepare(*Store) error {
	pw := u.Password
	if pw == "" || len(pw) < 8 || len(pw) > 72 {
		return nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
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

// UserByEmail finds the user of that email, in any tenant: emails are unique on a server.
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	u := new(User)
	err := s.db.NewSelect().Model(u).Where("email = ?", strings.ToLower(strings.TrimSpace(email))).Limit(1).Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return u, nil
}

// RefreshToken lets a signed-in user get new access tokens without the password. Only its
// hash is kept; each use replaces it with a new one.
type RefreshToken struct {
	bun.BaseModel `bun:"table:refresh_tokens"`

	ID        string     `bun:"id,pk"`
	TenantID  string     `bun:"tenant_id,notnull"`
	UserID    string     `bun:"user_id,notnull"`
	Hash      string     `bun:"hash,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	RevokedAt *time.Time `bun:"revoked_at"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
}

// ErrTokenInvalid is a refresh token that is unknown, expired, revoked or already used.
var ErrTokenInvalid = errors.New("store: refresh token is not valid")

// IssueRefreshToken records a new refresh token for the user and returns its secret.
func (s *Store) IssueRefreshToken(ctx context.Context, u *User, ttl time.Duration) (string, error) {
	return s.issueRefreshToken(ctx, s.db, u, ttl)
}

func (s *Store) issueRefreshToken(ctx context.Context, db bun.IDB, u *User, ttl time.Duration) (string, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	secret := "rt_" + base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	rt := &RefreshToken{ID: newID(prefixRefreshToken), TenantID: u.TenantID, UserID: u.ID, Hash: HashKey(secret), ExpiresAt: now.Add(ttl), CreatedAt: now}
	if _, err := db.NewInsert().Model(rt).Exec(ctx); err != nil {
		return "", classify(err)
	}
	return secret, nil
}

// RotateRefreshToken spends a refresh token and returns its user with a new token in its
// place. A token is good once: a second use fails.
func (s *Store) RotateRefreshToken(ctx context.Context, secret string, ttl time.Duration) (*User, string, error) {
	var (
		user *User
		next string
	)
	err := s.inTx(ctx, func(tx bun.Tx) error {
		now := s.now()
		res, err := tx.NewUpdate().Table("refresh_tokens").Set("revoked_at = ?", now).
			Where("hash = ?", HashKey(secret)).Where("revoked_at IS NULL").Where("expires_at > ?", now).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrTokenInvalid
		}
		rt := new(RefreshToken)
		if err := tx.NewSelect().Model(rt).Where("hash = ?", HashKey(secret)).Scan(ctx); err != nil {
			return err
		}
		user = new(User)
		if err := tx.NewSelect().Model(user).Where("id = ?", rt.UserID).Scan(ctx); err != nil {
			return err
		}
		next, err = s.issueRefreshToken(ctx, tx, user, ttl)
		return err
	})
	if errors.Is(err, ErrTokenInvalid) {
		return nil, "", ErrTokenInvalid
	}
	return user, next, err
}

// RecordLogin notes when the user last signed in.
func (s *Store) RecordLogin(ctx context.Context, u *User) error {
	now := s.now()
	u.LastLoginAt = &now
	_, err := s.db.NewUpdate().Model(u).Column("last_login_at").Where("id = ?", u.ID).Exec(ctx)
	return classify(err)
}
