package api

import (
	"crypto/rand"
	"sync"

	"errors"
	"golang.org/x/crypto/bcrypt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// LoginRequest signs a user in.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// Tenant is the slug of the tenant to sign in to. An email is unique only within a
	// tenant, so it is needed only when the email and password match users of several.
	Tenant string `json:"tenant"`
}

// RefreshRequest trades a refresh token for new tokens.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// TokenResponse is what a login or a refresh hands out.
type TokenResponse struct {
	AccessToken  string      `json:"access_token"`
	TokenType    string      `json:"token_type"`
	ExpiresIn    int         `json:"expires_in"`
	ExpiresAt    time.Time   `json:"expires_at"`
	RefreshToken string      `json:"refresh_token"`
	User         *store.User `json:"user"`
}

// WhoAmI describes the credential of a request.
type WhoAmI struct {
	TenantID   string   `json:"tenant_id"`
	TenantSlug string   `json:"tenant_slug"`
	KeyID      string   `json:"key_id,omitempty"`
	UserID     string   `json:"user_id,omitempty"`
	Scopes     []string `json:"scopes"`
	Operator   bool     `json:"operator"`
}

func (s *Server) authRoutes() []route {
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/auth/login", Tag: "Authentication", Summary: "Sign in with email and password: a short-lived JWT access token and a refresh token",
			Request: LoginRequest{}, Response: TokenResponse{}, Status: http.StatusOK, Handle: s.login},
		{Method: http.MethodPost, Path: "/api/v1/auth/refresh", Tag: "Authentication", Summary: "Trade a refresh token (good once) for new tokens",
			Request: RefreshRequest{}, Response: TokenResponse{}, Status: http.StatusOK, Handle: s.refresh},
		{Method: http.MethodGet, Path: "/api/v1/auth/me", Tag: "Authentication", Summary: "Describe the credential of this request",
			Scope: store.ScopeRead, Response: WhoAmI{}, Status: http.StatusOK, Handle: s.whoAmI},
	}
}

// limitAnonymous rate-limits a public route per client address.
func (s *Server) limitAnonymous(w http.ResponseWriter, r *http.Request, bucket string) error {
	if e := s.limiter.limit(w, bucket+":"+clientIP(r), s.cfg.LoginRateLimit); e != nil {
		return e
	}
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	if err := s.limitAnonymous(w, r, "login"); err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req LoginRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	if strings.TrimSpace(req.Email) == "" {
		return errValidation("email", "is required")
	}
	if req.Password == "" {
		return errValidation("password", "is required")
	}
	candidates, err := s.store.UsersByEmail(r.Context(), req.Email, req.Tenant)
	if err != nil {
		return err
	}
	// The password picks the user: only someone who knows it for several tenants' users
	// of one email learns that there are several, and is asked which tenant.
	var u *store.User
	several := false
	for i := range candidates {
		if s.checkPassword(candidates[i].PasswordHash, req.Password) {
			several = u != nil
			u = &candidates[i]
		}
	}
	// Every login without a tenant checks as many hashes as the most candidates an email
	// may have, and one with a tenant (where an email is unique) one: a bcrypt check is
	// the slowest part of a login, so how long it takes would otherwise tell how many
	// tenants have an account of this email, or whether any has.
	checks := store.MaxLoginCandidates
	if req.Tenant != "" {
		checks = 1
	}
	for i := len(candidates); i < checks; i++ {
		s.checkPassword(dummyHash(), req.Password)
	}
	if several {
		return errValidation("tenant", "is required: this email and password sign in to several tenants; send the tenant's slug")
	}
	if u == nil {
		return &Error{Status: http.StatusUnauthorized, Code: codeAuthentication, Message: "Wrong email or password"}
	}
	if err := s.store.RecordLogin(r.Context(), u); err != nil {
		return err
	}
	refresh, err := s.store.IssueRefreshToken(r.Context(), u, refreshTokenTTL)
	if err != nil {
		return err
	}
	return s.writeTokens(w, u, refresh)
}

// checkPassword checks a password against a user's hash (or dummyHash), counted.
func (s *Server) checkPassword(hash, password string) bool {
	s.passwordChecks.Add(1)
	return (&store.User{PasswordHash: hash}).CheckPassword(password)
}

// dummyHash is a bcrypt hash of a random password, of the cost of users' hashes, checked
// against in place of the candidates an email does not have.
var dummyHash = sync.OnceValue(func() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h, _ := bcrypt.GenerateFromPassword(b[:], store.PasswordCost)
	return string(h)
})

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	if err := s.limitAnonymous(w, r, "refresh"); err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req RefreshRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return errValidation("refresh_token", "is required")
	}
	u, next, err := s.store.RotateRefreshToken(r.Context(), req.RefreshToken, refreshTokenTTL)
	if reuse := (*store.TokenReuseError)(nil); errors.As(err, &reuse) {
		// The family's refresh tokens are revoked in the store; its access tokens and the
		// streams they opened go too.
		s.revoke(r.Context(), realtime.Revocation{TenantID: reuse.TenantID, UserID: reuse.UserID, FamilyID: reuse.FamilyID, Reason: realtime.ReasonTokenReused})
	}
	if errors.Is(err, store.ErrTokenInvalid) {
		return &Error{Status: http.StatusUnauthorized, Code: codeAuthentication, Message: "Refresh token is not valid: unknown, expired or already used"}
	}
	if err != nil {
		return err
	}
	return s.writeTokens(w, u, next)
}

func (s *Server) writeTokens(w http.ResponseWriter, u *store.User, refresh store.IssuedToken) error {
	access, exp, err := s.auth.IssueAccessToken(u, refresh.FamilyID)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken: access, TokenType: "bearer", ExpiresIn: int(accessTokenTTL.Seconds()), ExpiresAt: exp,
		RefreshToken: refresh.Secret, User: u,
	})
	return nil
}

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request, p *Principal) error {
	t, err := s.store.Tenant(r.Context(), p.TenantID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, WhoAmI{TenantID: p.TenantID, TenantSlug: t.Slug, KeyID: p.KeyID, UserID: p.UserID, Scopes: p.Scopes, Operator: p.Operator})
	return nil
}
