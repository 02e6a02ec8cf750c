package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// Amplifier's applications: a name a client picks (app_id) for an app_ key of its tenant.
// The key is one of the tenant's keys (listed at /api/v1/keys with the others, revocable
// there too); it is shown once, when the application is registered or its key regenerated.
// Regenerating or deleting revokes the old key through the one path every revocation takes
// (revoke), so it is refused on its very next request here and, through the event relay, on
// every other node.

// AmplifierAppRequest registers an application.
type AmplifierAppRequest struct {
	AppID   *string `json:"app_id"`
	AppName *string `json:"app_name"`
}

// AmplifierAppOut is an application; APIKey is set only in the answers that made the key.
type AmplifierAppOut struct {
	AppID     string    `json:"app_id"`
	AppName   string    `json:"app_name"`
	APIKey    string    `json:"api_key,omitempty"`
	IsActive  bool      `json:"is_active"`
	KeyID     *string   `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Message   string    `json:"message,omitempty"`
}

// maxApplications bounds the bare list GET /applications answers.
const maxApplications = 1000

func (s *Server) amplifierAppRoutes() []route {
	const tag = "Amplifier applications"
	item := "/applications/{id}"
	return []route{
		{Method: http.MethodPost, Path: "/applications", Tag: tag, Scope: store.ScopeAdmin, Status: http.StatusCreated,
			Summary: "Register an application ({app_id, app_name}); its app_ key (read and write) is in this answer only. 409 for an app_id the tenant has",
			Request: AmplifierAppRequest{}, Response: AmplifierAppOut{}, Handle: s.amplifierCreateApp},
		{Method: http.MethodGet, Path: "/applications", Tag: tag, Scope: store.ScopeAdmin, Status: http.StatusOK,
			Summary: "List the tenant's applications, oldest first, as a bare array (never their keys; at most 1000)", Query: amplifierPageQuery,
			Response: []AmplifierAppOut{}, Handle: s.amplifierListApps},
		{Method: http.MethodGet, Path: item, Tag: tag, Scope: store.ScopeAdmin, Status: http.StatusOK,
			Summary: "Get an application (without its key)", Response: AmplifierAppOut{}, Handle: s.amplifierGetApp},
		{Method: http.MethodDelete, Path: item, Tag: tag, Scope: store.ScopeAdmin, Status: http.StatusOK,
			Summary: "Delete an application; its key is revoked at once (it stays in the key list, revoked)", Response: AmplifierMessage{}, Handle: s.amplifierDeleteApp},
		{Method: http.MethodPost, Path: item + "/regenerate-key", Tag: tag, Scope: store.ScopeAdmin, Status: http.StatusOK,
			Summary:  "Give an application a new key (in this answer only); the old one is refused from the next request on, on every node",
			Response: AmplifierAppOut{}, Handle: s.amplifierRegenerateKey},
	}
}

// errAppNotFound does not repeat the app_id: a 404 says no more of another tenant's than
// of nothing at all.
var errAppNotFound = errDetail(http.StatusNotFound, "Application not found")

// appOut is an application with whether its key works.
func appOut(a *store.AmplifierApp, k *store.APIKey) AmplifierAppOut {
	return AmplifierAppOut{AppID: a.AppID, AppName: a.AppName, KeyID: a.KeyID, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
		IsActive: k != nil && k.Usable(time.Now())}
}

func (s *Server) amplifierCreateApp(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req AmplifierAppRequest
	if err := decodeFastAPI(body, &req); err != nil {
		return err
	}
	var missing []store.FieldError
	if req.AppID == nil {
		missing = append(missing, store.FieldError{Field: "app_id", Message: "is required"})
	}
	if req.AppName == nil {
		missing = append(missing, store.FieldError{Field: "app_name", Message: "is required"})
	}
	if len(missing) > 0 {
		return errFields(missing...)
	}
	app := &store.AmplifierApp{AppID: *req.AppID, AppName: *req.AppName}
	bounds, err := s.appKeyBounds(r.Context(), p)
	if err != nil {
		return err
	}
	secret, err := store.CreateAmplifierApp(r.Context(), s.store, p.TenantID, app, bounds)
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return errDetail(http.StatusConflict, "Application "+app.AppID+" already exists")
	}
	if err != nil {
		return err
	}
	out := appOut(app, &store.APIKey{})
	out.APIKey = secret
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) amplifierListApps(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := amplifierPage(r)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("limit") == "" {
		page.Limit = maxApplications
	}
	apps, _, err := store.ListAmplifierApps(r.Context(), s.store, p.TenantID, page)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(apps))
	for _, a := range apps {
		if a.KeyID != nil {
			ids = append(ids, *a.KeyID)
		}
	}
	keys, err := store.APIKeysByID(r.Context(), s.store, p.TenantID, ids)
	if err != nil {
		return err
	}
	out := make([]AmplifierAppOut, len(apps))
	for i := range apps {
		var k *store.APIKey
		if apps[i].KeyID != nil {
			k = keys[*apps[i].KeyID]
		}
		out[i] = appOut(&apps[i], k)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// amplifierApp reads the application a path names, with its key.
func (s *Server) amplifierApp(ctx context.Context, p *Principal, appID string) (*store.AmplifierApp, *store.APIKey, error) {
	app, err := store.AmplifierAppByAppID(ctx, s.store, p.TenantID, appID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errAppNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	var k *store.APIKey
	if app.KeyID != nil {
		if k, err = store.Get[store.APIKey](ctx, s.store, p.TenantID, *app.KeyID); errors.Is(err, store.ErrNotFound) {
			k = nil
		} else if err != nil {
			return nil, nil, err
		}
	}
	return app, k, nil
}

func (s *Server) amplifierGetApp(w http.ResponseWriter, r *http.Request, p *Principal) error {
	app, k, err := s.amplifierApp(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, appOut(app, k))
	return nil
}

func (s *Server) amplifierDeleteApp(w http.ResponseWriter, r *http.Request, p *Principal) error {
	appID := r.PathValue("id")
	old, err := store.DeleteAmplifierApp(r.Context(), s.store, p.TenantID, appID)
	if errors.Is(err, store.ErrNotFound) {
		return errAppNotFound
	}
	if err != nil {
		return err
	}
	s.revokeAppKey(r.Context(), old)
	writeJSON(w, http.StatusOK, AmplifierMessage{Message: "Application deleted successfully"})
	return nil
}

// appKeyBounds is what an application's key made by p may hold: read and write, within
// p's own limits and expiry, and made by p's key, as every key is (makeKey), so that it is
// bounded by p's key while used and revoked with it. A key cannot mint through an
// application a key that outlives it or spends past it.
func (s *Server) appKeyBounds(ctx context.Context, p *Principal) (*store.APIKey, error) {
	k := &store.APIKey{Scopes: []string{store.ScopeRead, store.ScopeWrite}}
	if err := s.boundByMaker(ctx, p, k, false); err != nil {
		return nil, err
	}
	k.ParentID = p.KeyID
	return k, nil
}

func (s *Server) amplifierRegenerateKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	appID := r.PathValue("id")
	bounds, err := s.appKeyBounds(r.Context(), p)
	if err != nil {
		return err
	}
	app, secret, old, err := store.RegenerateAmplifierAppKey(r.Context(), s.store, p.TenantID, appID, bounds)
	if errors.Is(err, store.ErrNotFound) {
		return errAppNotFound
	}
	if err != nil {
		return err
	}
	s.revokeAppKey(r.Context(), old)
	out := appOut(app, &store.APIKey{})
	out.APIKey, out.Message = secret, "API key regenerated successfully"
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeAppKey makes an application's old key stop working here at once and on the other
// nodes as the relay brings them the revocation.
func (s *Server) revokeAppKey(ctx context.Context, k *store.APIKey) {
	if k == nil {
		return
	}
	s.auth.Forget(k.Hash)
	s.revoke(ctx, realtime.Revocation{TenantID: k.TenantID, KeyID: k.ID, Reason: realtime.ReasonKeyRevoked})
}
