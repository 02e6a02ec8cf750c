package api

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// CallControl places and steers live calls; the SIP server is one.
type CallControl interface {
	// Dial places an outbound call. c is validated and carries its tenant in c.TenantID;
	// Dial stores it (store.Create) and starts dialling, and c holds the stored call when
	// it returns.
	Dial(ctx context.Context, c *store.Call) error
	// Hangup ends a live call of the tenant.
	Hangup(ctx context.Context, tenantID, callID string) error
	// Transfer hands a live call of the tenant to another party (E.164 or SIP URI).
	Transfer(ctx context.Context, tenantID, callID, to string) error
	// Record is the record of a call of the tenant live on this node, as the node holds it
	// (the store may not have it yet: a call's record is written behind it); false when
	// the node carries no such call, or the call has ended: then Record returns once the
	// store holds its final record (or ctx ends), so that what the store says next agrees
	// with what was said before.
	Record(ctx context.Context, tenantID, callID string) (store.Call, bool)
}

// CallRequest is what a client sends to place an outbound call.
type CallRequest struct {
	// To is an E.164 number, a SIP user (over trunk_id) or a sip:/sips: URI.
	To string `json:"to"`
	// From is the caller ID; the trunk's when empty.
	From string `json:"from"`
	// AgentID or Destination (a built-in destination such as "echo" or "tone") talks to the
	// callee; exactly one of them.
	AgentID     *string `json:"agent_id"`
	Destination string  `json:"destination"`
	// TrunkID is the trunk the call leaves over; not needed when To is a SIP URI.
	TrunkID  *string        `json:"trunk_id"`
	Metadata map[string]any `json:"metadata"`
	// TimeoutSeconds is how long the call rings before it is no-answer: 1 to 120, default 30.
	TimeoutSeconds *int `json:"timeout_seconds"`
	// AMD asks for answering-machine detection once the call is answered.
	AMD *AMDRequest `json:"amd"`
}

// AMDRequest is the answering-machine detection an outbound call asks for.
type AMDRequest struct {
	// Mode is detect (report who answered; the agent goes on) or detect_then_message (on a
	// machine, leave Message after its beep or greeting, then hang up).
	Mode string `json:"mode"`
	// Message is what the agent says to a machine (detect_then_message only).
	Message string `json:"message"`
	// TimeoutSeconds bounds the detection, 2 to 60, default 10: undecided by then is unknown.
	TimeoutSeconds int `json:"timeout_seconds"`
}

// TransferRequest says where a live call goes.
type TransferRequest struct {
	// To is an E.164 number or a sip:/sips: URI.
	To string `json:"to"`
}

var errNoTelephony = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
	Message: "Telephony is not enabled on this node: it has no SIP server to place or steer calls with"}

var callQuery = append([]param{
	{Name: "status", Description: "Only calls of this status: " + strings.Join(store.CallStatuses, ", ")},
	{Name: "agent_id", Description: "Only calls of this agent"},
	{Name: "direction", Description: "Only calls of this direction: inbound, outbound or web"},
	{Name: "since", Description: "Only calls created at or after this time (RFC 3339)"},
	{Name: "until", Description: "Only calls created before this time (RFC 3339)"},
	{Name: "from", Description: "Only calls started at or after this time (RFC 3339); the same as since"},
	{Name: "to", Description: "Only calls started before this time (RFC 3339); the same as until"},
	{Name: "q", Description: "Only calls whose from or to number (or SIP URI) contains this text, ignoring case; at most " + strconv.Itoa(store.MaxCallSearchLen) + " characters"},
}, pageQuery...)

func (s *Server) callRoutes() []route {
	const tag = "Calls"
	var call store.Call
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/calls", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusCreated,
			Summary: "Place an outbound call to a number, SIP user or SIP URI, answered by an agent or a built-in destination",
			Request: CallRequest{}, Response: call, Handle: s.placeCall},
		{Method: http.MethodGet, Path: "/api/v1/calls", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List calls, newest first, by agent, status, direction, time range and number", Query: callQuery, Response: List[store.Call]{}, Handle: s.listCalls},
		{Method: http.MethodGet, Path: "/api/v1/calls/{id}/events", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "The call's history: the events it published (state changes, transcript, agent speech, latency, tool calls, barge-ins, errors, answering-machine detection), oldest first, kept after the call",
			Query:   pageQuery, Response: List[store.CallEvent]{}, Handle: s.callEvents},
		{Method: http.MethodGet, Path: "/api/v1/calls/{id}", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a call", Response: call, Handle: s.getCall},
		{Method: http.MethodPost, Path: "/api/v1/calls/{id}/hangup", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Hang up a live call", Response: call, Handle: s.hangupCall},
		{Method: http.MethodGet, Path: "/api/v1/calls/{id}/transcript", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary:  "The call's transcript: each turn with its role (user, assistant, tool), text, keys, times, interruption and latency figures",
			Response: store.CallTranscript{}, Handle: s.callTranscript},
		{Method: http.MethodGet, Path: "/api/v1/calls/{id}/recording", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Raw: true, ContentType: "audio/wav",
			Summary: "The call's recording (its record's recording_url, until its retention runs out): a stereo WAV, the far end on the left and Switchboard on the right, or mono when the agent asks",
			Handle:  s.callRecording},
		{Method: http.MethodGet, Path: "/api/v1/calls/{id}/voicemail", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Raw: true, ContentType: "audio/wav",
			Summary: "The voicemail the caller left (a mono WAV), when the call's workflow took one",
			Handle:  s.callVoicemail},
		{Method: http.MethodPost, Path: "/api/v1/calls/{id}/transfer", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusAccepted,
			Summary: "Transfer a live call to an E.164 number or a SIP URI (the transfer goes on after the answer)",
			Request: TransferRequest{}, Response: call, Handle: s.transferCall},
	}
}

func (s *Server) placeCall(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req CallRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	c := store.NewOutboundCall()
	c.To, c.From, c.AgentID, c.Destination, c.TrunkID = req.To, req.From, req.AgentID, req.Destination, req.TrunkID
	if req.Metadata != nil {
		c.Metadata = req.Metadata
	}
	if req.TimeoutSeconds != nil {
		if *req.TimeoutSeconds < 1 || *req.TimeoutSeconds > store.MaxCallTimeout {
			return errValidation("timeout_seconds", "must be between 1 and %d", store.MaxCallTimeout)
		}
		c.TimeoutSeconds = *req.TimeoutSeconds
	}
	if req.AMD != nil {
		c.AMD = &store.CallAMD{Mode: req.AMD.Mode, Message: req.AMD.Message, TimeoutSeconds: req.AMD.TimeoutSeconds}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	// Another tenant's agent or trunk is refused like a made-up one, as on every route,
	// before anything is dialled.
	if err := store.CheckReferences(r.Context(), s.store, p.TenantID, c); err != nil {
		return err
	}
	if s.cfg.Calls == nil {
		return errNoTelephony
	}
	c.TenantID = p.TenantID
	if err := s.cfg.Calls.Dial(r.Context(), c); err != nil {
		return callError(err)
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	f, err := callFilter(r)
	if err != nil {
		return err
	}
	items, total, err := store.ListCalls(r.Context(), s.store, p.TenantID, f, page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.Call]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

// callFilter reads the filters of the call list, each refused by name when it is malformed.
func callFilter(r *http.Request) (store.CallFilter, error) {
	q := r.URL.Query()
	f := store.CallFilter{Status: q.Get("status"), AgentID: q.Get("agent_id"), Direction: q.Get("direction")}
	if f.Status != "" && !slices.Contains(store.CallStatuses, f.Status) {
		return f, errValidation("status", "must be one of %s", strings.Join(store.CallStatuses, ", "))
	}
	if f.Direction != "" && !slices.Contains([]string{store.CallInbound, store.CallOutbound, store.CallWeb}, f.Direction) {
		return f, errValidation("direction", "must be one of inbound, outbound, web")
	}
	if f.AgentID != "" && !strings.HasPrefix(f.AgentID, "agt_") {
		return f, errValidation("agent_id", "is not an agent ID")
	}
	if f.Number = strings.TrimSpace(q.Get("q")); len([]rune(f.Number)) > store.MaxCallSearchLen {
		return f, errValidation("q", "must be at most %d characters", store.MaxCallSearchLen)
	}
	for _, pair := range [][2]string{{"since", "from"}, {"until", "to"}} {
		if q.Has(pair[0]) && q.Has(pair[1]) {
			return f, errValidation(pair[1], "is the same as %s: give one of them", pair[0])
		}
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}, {"from", &f.Since}, {"to", &f.Until}} {
		v := q.Get(t.name)
		if v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, errValidation(t.name, "must be an RFC 3339 time such as 2026-11-23T08:00:00Z")
		}
		*t.dst = at
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		if q.Has("to") {
			return f, errValidation("to", "must be after from")
		}
		return f, errValidation("until", "must be after since")
	}
	return f, nil
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.storedCall(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) callTranscript(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.storedCall(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	t, err := store.GetTranscript(r.Context(), s.store, p.TenantID, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		msg := "The call has no transcript: only calls an agent answers have one"
		if c.Live() {
			msg = "The call's transcript is written when it ends; follow it live on the call:" + c.ID + " topic"
		}
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: msg}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) callEvents(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	// Another tenant's call is not found, like a made-up one.
	c, err := s.storedCall(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	items, total, err := store.ListCallEvents(r.Context(), s.store, p.TenantID, c.ID, page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.CallEvent]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) callRecording(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.cfg.RecordingsDir == "" {
		if _, err := s.storedCall(r.Context(), p.TenantID, r.PathValue("id")); err != nil {
			return err
		}
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "Calls are not recorded on this node (SWITCHBOARD_RECORD_CALLS)"}
	}
	return s.callFile(w, r, p, s.cfg.RecordingsDir, "recording")
}

func (s *Server) callVoicemail(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.callFile(w, r, p, s.cfg.VoicemailsDir, "voicemail")
}

// callFile serves a call's WAV of dir ("<call id>.wav") to the call's tenant once the call
// has ended.
func (s *Server) callFile(w http.ResponseWriter, r *http.Request, p *Principal, dir, what string) error {
	c, err := s.storedCall(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if c.Live() {
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "The call is still live; its " + what + " is complete once it ends"}
	}
	if dir == "" {
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "The call has no " + what}
	}
	// The ID comes from the store, so it names a file of the directory and nothing else.
	f, err := os.Open(filepath.Join(dir, c.ID+".wav"))
	if errors.Is(err, os.ErrNotExist) {
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "The call has no " + what}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Content-Disposition", `attachment; filename="`+c.ID+"-"+what+`.wav"`)
	http.ServeContent(w, r, c.ID+".wav", st.ModTime(), f)
	return nil
}

func (s *Server) hangupCall(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.liveCall(r.Context(), p.TenantID, r.PathValue("id"), "hung up")
	if err != nil {
		return err
	}
	if err := s.cfg.Calls.Hangup(r.Context(), p.TenantID, c.ID); err != nil {
		return callError(err)
	}
	if c, err = s.storedCall(r.Context(), p.TenantID, c.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) transferCall(w http.ResponseWriter, r *http.Request, p *Principal) error {
	id := r.PathValue("id")
	// Another tenant's call is not found, whatever the body says.
	if _, err := s.storedCall(r.Context(), p.TenantID, id); err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req TransferRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	req.To = strings.TrimSpace(req.To)
	if err := store.ValidateTransferTarget(req.To); err != nil {
		return err
	}
	c, err := s.liveCall(r.Context(), p.TenantID, id, "transferred")
	if err != nil {
		return err
	}
	if err := s.cfg.Calls.Transfer(r.Context(), p.TenantID, c.ID, req.To); err != nil {
		return callError(err)
	}
	if c, err = s.storedCall(r.Context(), p.TenantID, c.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, c)
	return nil
}

// storedCall reads a call of the tenant; another tenant's is not found.
func (s *Server) storedCall(ctx context.Context, tenantID, id string) (*store.Call, error) {
	// A call live here is read from memory: its record is written behind it, and the
	// node's copy is the newest.
	if s.cfg.Calls != nil {
		if rec, ok := s.cfg.Calls.Record(ctx, tenantID, id); ok {
			return &rec, nil
		}
	}
	c, err := store.Get[store.Call](ctx, s.store, tenantID, id)
	if err != nil {
		return nil, callError(err)
	}
	return c, nil
}

// liveCall reads a call that is to be steered: it must exist in the tenant, not have ended,
// and this node must have telephony.
func (s *Server) liveCall(ctx context.Context, tenantID, id, action string) (*store.Call, error) {
	c, err := s.storedCall(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if !c.Live() {
		return nil, &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: "The call has ended (status " + c.Status + "); only a live call can be " + action,
			Details: []store.FieldError{{Field: "status", Message: "is " + c.Status + ", not queued, ringing or in-progress"}}}
	}
	if s.cfg.Calls == nil {
		return nil, errNoTelephony
	}
	return c, nil
}

// callError names the call in a not-found answer; other errors keep their classification
// (a *store.ConflictError is 409, a *store.ValidationError 422, a refusal of the SIP server
// what sipRefusals says).
func callError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Call")
	}
	return err
}
