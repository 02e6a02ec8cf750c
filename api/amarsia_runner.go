package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// runTarget is what /v1/runner/{id} names: a deployment of the tenant (its
// snapshot answers) or an agent of the tenant (as it is now). Anything else is a 404.
func (s *Server) runTarget(ctx context.Context, tenantID, id string) (*store.Agent, *session.Version, string, error) {
	notFound := &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "Deployment not found: no deployment or agent of this ID",
		Details: []store.FieldError{{Field: "deployment_id", Message: "no such deployment or agent"}}}
	switch {
	case store.ValidDeploymentID(id):
		d, err := store.Get[store.Deployment](ctx, s.store, tenantID, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, "", notFound
		} else if err != nil {
			return nil, nil, "", err
		}
		v := &session.Version{Agent: &d.Agent, Tools: make([]*store.Tool, len(d.Tools))}
		for i := range d.Tools {
			v.Tools[i] = &d.Tools[i]
		}
		return &d.Agent, v, d.ID, nil
	case store.ValidAgentID(id):
		ag, err := store.Get[store.Agent](ctx, s.store, tenantID, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, "", notFound
		}
		return ag, nil, "", err
	}
	return nil, nil, "", notFound
}

// decodeRunnerRequest decodes a run's body, each part on its own so that an error names the
// part it is in (content[2].colour).
func decodeRunnerRequest(body []byte) (*RunnerRequest, error) {
	var raw struct {
		Content []json.RawMessage `json:"content"`
	}
	if err := decodeInto(body, &raw, false); err != nil {
		return nil, err
	}
	req := &RunnerRequest{Content: make([]RunnerPart, len(raw.Content))}
	for i, part := range raw.Content {
		if err := decodeInto(part, &req.Content[i], false); err != nil {
			e := asError(err)
			prefix := fmt.Sprintf("content[%d]", i)
			for j := range e.Details {
				if f := e.Details[j].Field; f == "body" || f == "" {
					e.Details[j].Field = prefix
				} else {
					e.Details[j].Field = prefix + "." + f
				}
			}
			if len(e.Details) > 0 {
				e.Message = "Invalid request: " + e.Details[0].Field + " " + e.Details[0].Message
			}
			return nil, e
		}
	}
	return req, nil
}

// startRun reads and checks the request, turns its parts into the user message, and begins
// the answer in a new session of the agent.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request, p *Principal, hold *bodyHold) (*session.Pending, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	ag, version, depID, err := s.runTarget(ctx, p.TenantID, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	req, err := decodeRunnerRequest(body)
	if err != nil {
		return nil, err
	}
	// A spent balance refuses a paid model (a deployment's own) before any file is fetched.
	if err := s.checkBalance(ctx, p.TenantID, ag.Model); err != nil {
		return nil, err
	}
	textOnly := false
	if reg, err := s.registryFor(ctx, p.TenantID); err == nil {
		if rt, err := reg.Route(ag.Model); err == nil {
			textOnly = rt.TextOnly
		}
	}
	if err := checkRunnerParts(req.Content, ag.Model, textOnly); err != nil {
		return nil, err
	}
	parts, err := s.runnerParts(ctx, p.TenantID, ag, req.Content, hold)
	if err != nil {
		return nil, err
	}
	sess := store.NewSession()
	sess.AgentID, sess.Label = &ag.ID, "Amarsia run"
	sess.Meta["surface"] = "amarsia"
	if depID != "" {
		sess.Meta["deployment_id"] = depID
		sess.Label = "Amarsia run of " + depID
	}
	// The session is stored with the run's turn, and closed by it, in the turn's own write
	// (batched with the turns of runs that finish together): a run is one message, the
	// session takes no other (which the agent as it is then, not the deployment, would
	// answer), and a run costs one commit. A client that goes away does not stop the run;
	// it is stored, and the session closed, all the same.
	pending, err := s.sessions.BeginNew(ctx, p.TenantID, sess, session.Creator{KeyID: p.KeyID, UserID: p.UserID},
		session.Input{Parts: parts, Version: version, Close: true})
	if err != nil {
		var ve *store.ValidationError
		if errors.As(err, &ve) && len(ve.Fields) > 0 && ve.Fields[0].Field == "agent_id" {
			return nil, errNotFound("Agent") // deleted since it was read
		}
		return nil, sessionError(err)
	}
	return pending, nil
}

// runFailed is the error of an answer the model could not make. It names no session: the
// run's session is stored with its turn, and a turn that could not be stored (its agent
// deleted meanwhile) leaves none to name.
func runFailed(a *store.SessionMessage) *Error {
	return &Error{Status: http.StatusBadGateway, Code: "upstream_error",
		Message: "Upstream provider error: the agent could not answer: " + a.Error}
}

func (s *Server) runDeployment(w http.ResponseWriter, r *http.Request, p *Principal) error {
	// The run's files are held until it is answered (see runnerParts).
	hold := s.newHold()
	defer hold.release()
	pending, err := s.startRun(w, r, p, hold)
	if err != nil {
		return err
	}
	turn, err := pending.Stream(r.Context(), nil)
	if err != nil {
		return nil // the client is gone; the run is stored all the same
	}
	a := turn.Answer
	if a.Status != store.MessageCompleted {
		return runFailed(a)
	}
	writeJSON(w, http.StatusOK, RunnerAnswer{Content: a.Text(), Model: a.Model, InputTokens: a.InputTokens,
		OutputTokens: a.OutputTokens, SessionID: a.SessionID})
	return nil
}

// plainText writes an answer's text as Amarsia's stream: the fragments as the model makes
// them, no framing, flushed after each run of fragments that were ready together. The
// status is sent with the first fragment, so that an answer that fails before it can still
// be answered with an error status.
type plainText struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	pending bool
}

func (pt *plainText) start() {
	if pt.started {
		return
	}
	pt.started = true
	h := pt.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	pt.w.WriteHeader(http.StatusOK)
}

func (pt *plainText) Event(ev *session.Event) error {
	if ev.Type != session.EventTextDelta || ev.Text == "" {
		return nil
	}
	pt.start()
	pt.pending = true
	_, err := pt.w.Write([]byte(ev.Text))
	return err
}

func (pt *plainText) Flush() error {
	if !pt.pending {
		return nil
	}
	pt.pending = false
	return pt.rc.Flush()
}

func (s *Server) streamDeployment(w http.ResponseWriter, r *http.Request, p *Principal) error {
	hold := s.newHold()
	defer hold.release()
	pending, err := s.startRun(w, r, p, hold)
	if err != nil {
		return err
	}
	pt := &plainText{w: w, rc: http.NewResponseController(w)}
	turn, err := pending.Stream(r.Context(), pt)
	if err != nil {
		return nil // the client is gone; the run is stored all the same
	}
	a := turn.Answer
	switch {
	case a.Status != store.MessageCompleted && !pt.started:
		return runFailed(a)
	case !pt.started:
		pt.start() // an answer without text is an empty stream
	}
	// An answer that fails after its first words ends the stream where it stopped: the
	// status was sent with them. The stored run says why.
	return nil
}
