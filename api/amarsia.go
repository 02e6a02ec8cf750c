package api

import (
	"errors"
	"net/http"

	"github.com/switchboard-go/switchboard/store"
)

// Amarsia (../shared/seeds/003_…) runs published workflows: a client sends content parts
// (text, and images, video, audio and documents by URL) to /v1/runner/{deployment_id} with
// its key as x-api-key, and gets the answer whole ({"content","model","input_tokens",
// "output_tokens"}) or, from /stream, as plain text chunks as the model makes them.
//
// Here a deployment is a published, immutable version of an agent (store.Deployment),
// made under /api/v1/agents/{id}/deployments and read at /api/v1/deployments/{id}; the runner
// also takes an agent's ID, which runs the agent as it is now. Each run is one session
// (package session) with one user message and its answer, so runs are listed with every
// other session at /api/v1/sessions. Amarsia's document shows no error body; its routes
// answer in the canonical shape, which names the field (content[2].file_uri).
//
// Amarsia's document names the runner's parameter deployment_id; the route's is {id}, as on
// every other route, and an error about it names deployment_id.

// DeploymentRequest is the body of a new deployment; every field is optional.
type DeploymentRequest struct {
	// Label names the deployment for people ("v2 with the new greeting").
	Label string `json:"label,omitempty"`
}

func (s *Server) amarsiaRoutes() []route {
	const depTag, runTag = "Deployments", "Amarsia runner"
	item := "/api/v1/deployments/{id}"
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/agents/{id}/deployments", Tag: depTag, Scope: store.ScopeWrite, Status: http.StatusCreated,
			Summary: "Publish the agent as it is now as a new deployment (an immutable snapshot of its instructions, model, settings and tools)",
			Request: DeploymentRequest{}, Response: store.Deployment{}, Handle: s.createDeployment},
		{Method: http.MethodGet, Path: "/api/v1/agents/{id}/deployments", Tag: depTag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List the agent's deployments, newest first", Query: pageQuery, Response: List[store.Deployment]{}, Handle: s.listDeployments},
		{Method: http.MethodGet, Path: "/api/v1/deployments", Tag: depTag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List the tenant's deployments, newest first (agent_id: of one agent)", Response: List[store.Deployment]{},
			Query: append([]param{{Name: "agent_id", Description: "Only the deployments of this agent"}}, pageQuery...), Handle: s.listAllDeployments},
		{Method: http.MethodGet, Path: item, Tag: depTag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a deployment", Response: store.Deployment{}, Handle: s.getDeployment},
		{Method: http.MethodDelete, Path: item, Tag: depTag, Scope: store.ScopeWrite, Status: http.StatusNoContent,
			Summary: "Delete a deployment (its runs' sessions stay)", Handle: s.deleteDeployment},
		{Method: http.MethodPost, Path: "/v1/runner/{id}", Tag: runTag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Run a deployment (or an agent's current version) on content parts; the whole answer with its token counts",
			Request: RunnerRequest{}, Response: RunnerAnswer{}, Handle: s.runDeployment},
		{Method: http.MethodPost, Path: "/v1/runner/{id}/stream", Tag: runTag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Run a deployment (or an agent's current version) on content parts; the answer as plain text chunks as the model makes them",
			Request: RunnerRequest{}, Raw: true, ContentType: "text/plain", Handle: s.streamDeployment},
	}
}

// agentOf reads the tenant's agent named in the path; another tenant's is a 404.
func (s *Server) agentOf(r *http.Request, p *Principal) (*store.Agent, error) {
	ag, err := store.Get[store.Agent](r.Context(), s.store, p.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("Agent")
	}
	return ag, err
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if _, err := s.agentOf(r, p); err != nil {
		return err
	}
	var req DeploymentRequest
	// A deployment needs nothing but the agent: an empty body is a deployment without a label.
	if r.ContentLength != 0 {
		body, err := readLimited(w, r, maxBodyBytes)
		if err != nil {
			return err
		}
		if len(body) > 0 {
			if err := decodeInto(body, &req, false); err != nil {
				return err
			}
		}
	}
	d, err := store.Deploy(r.Context(), s.store, p.TenantID, r.PathValue("id"), req.Label)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Agent")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, d)
	return nil
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	if _, err := s.agentOf(r, p); err != nil {
		return err
	}
	items, total, err := store.ListDeployments(r.Context(), s.store, p.TenantID, r.PathValue("id"), page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.Deployment]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) listAllDeployments(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	items, total, err := store.ListDeployments(r.Context(), s.store, p.TenantID, r.URL.Query().Get("agent_id"), page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.Deployment]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

// deploymentOf reads the tenant's deployment of the path; another tenant's is a 404.
func (s *Server) deploymentOf(r *http.Request, p *Principal) (*store.Deployment, error) {
	d, err := store.Get[store.Deployment](r.Context(), s.store, p.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("Deployment")
	}
	return d, err
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request, p *Principal) error {
	d, err := s.deploymentOf(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if _, err := s.deploymentOf(r, p); err != nil {
		return err
	}
	if err := store.Delete[store.Deployment](r.Context(), s.store, p.TenantID, r.PathValue("id")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("Deployment")
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
