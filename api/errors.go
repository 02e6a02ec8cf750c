package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// Error codes of the canonical surface.
const (
	codeValidation     = "validation_error"
	codeAuthentication = "authentication_error"
	codeAuthorization  = "authorization_error"
	codeNotFound       = "not_found"
	codeConflict       = "conflict"
	codeRateLimit      = "rate_limit_exceeded"
	codeTooLarge       = "payload_too_large"
	codeUnsupported    = "unsupported_media_type"
	codeMethod         = "method_not_allowed"
	codeUnavailable    = "service_unavailable"
	codeInternal       = "internal_error"
)

// Error is a failure a handler answers with: an HTTP status and the canonical error body
// {"error":{"code","message","details":[{"field","message"}]}}.
type Error struct {
	Status  int
	Code    string
	Message string
	Details []store.FieldError
	// RetryAfter, in seconds, is sent as Retry-After when set.
	RetryAfter int
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// errorBody is the wire shape of an Error.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string             `json:"code"`
	Message string             `json:"message"`
	Details []store.FieldError `json:"details"`
}

func errValidation(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Status: http.StatusUnprocessableEntity, Code: codeValidation, Message: "Invalid request: " + field + " " + msg,
		Details: []store.FieldError{{Field: field, Message: msg}}}
}

func errNotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: what + " not found"}
}

var (
	errUnauthenticated = &Error{Status: http.StatusUnauthorized, Code: codeAuthentication, Message: "Missing or invalid credentials: send an API key as X-API-Key or Authorization: Bearer"}
	errRouteNotFound   = &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "No such route"}
)

func errForbidden(scope string) *Error {
	return &Error{Status: http.StatusForbidden, Code: codeAuthorization, Message: "This credential lacks the " + scope + " scope"}
}

// asError classifies any error a handler returned into the Error the client sees.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if e := sipError(err); e != nil {
		return e
	}
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		msg := "Invalid request body"
		if len(ve.Fields) > 0 {
			msg = "Invalid request: " + ve.Fields[0].Field + " " + ve.Fields[0].Message
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: codeValidation, Message: msg, Details: ve.Fields}
	}
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "Conflict: " + ce.Field + " " + ce.Message,
			Details: []store.FieldError{{Field: ce.Field, Message: ce.Message}}}
	}
	var le *callcap.LimitError
	if errors.As(err, &le) {
		if errors.Is(le, callcap.ErrDraining) {
			return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: 5,
				Message: "This node is draining: it takes no new calls; try again shortly, or another node"}
		}
		if errors.Is(le, callcap.ErrTenantFull) && le.Cluster {
			return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimit, RetryAfter: 5,
				Message: fmt.Sprintf("Too many calls: the tenant has its limit of %d concurrent calls; try again when one ends", le.Limit)}
		}
		if errors.Is(le, callcap.ErrTenantFull) {
			return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimit, RetryAfter: 5,
				Message: fmt.Sprintf("Too many calls: the tenant has its limit of %d concurrent calls on this node; try again when one ends", le.Limit)}
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: 5,
			Message: fmt.Sprintf("This node carries its limit of %d concurrent calls; try again shortly, or another node", le.Limit)}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("Resource")
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "The database is unavailable; try again shortly"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "Internal server error"}
}

// sipRefusals is where each refusal of the SIP server (a *sip.DialError or *sip.CallError)
// meets the REST API: the status it is answered with and the request field at fault. The
// server's reason is the message; the field names are the API's alone.
var sipRefusals = []struct {
	err    error
	status int
	field  string
}{
	// POST /api/v1/calls
	{sip.ErrTrunkNotFound, http.StatusUnprocessableEntity, "trunk_id"},
	{sip.ErrTrunkInboundOnly, http.StatusUnprocessableEntity, "trunk_id"},
	{sip.ErrTrunkNoAddress, http.StatusUnprocessableEntity, "trunk_id"},
	{sip.ErrSRTPNeedsTLS, http.StatusUnprocessableEntity, "trunk_id"},
	{sip.ErrBadCallee, http.StatusUnprocessableEntity, "to"},
	{sip.ErrUnknownDestination, http.StatusUnprocessableEntity, "destination"},
	{sip.ErrAgentUnavailable, http.StatusConflict, "agent_id"},
	{sip.ErrNodeFull, http.StatusConflict, "to"},
	// POST /api/v1/calls/{id}/hangup and /transfer
	{sip.ErrCallEnded, http.StatusConflict, "id"},
	{sip.ErrCallElsewhere, http.StatusConflict, "id"},
	{sip.ErrNotAnswered, http.StatusConflict, "id"},
	{sip.ErrBadTarget, http.StatusUnprocessableEntity, "to"},
	{sip.ErrTransferRefused, http.StatusConflict, "to"},
}

// sipError is the answer to a refusal of the SIP server, or nil when err is none.
func sipError(err error) *Error {
	if errors.Is(err, sip.ErrCallNotFound) {
		return errNotFound("Call")
	}
	for _, r := range sipRefusals {
		if !errors.Is(err, r.err) {
			continue
		}
		reason := sip.RefusalReason(err)
		details := []store.FieldError{{Field: r.field, Message: reason}}
		if r.status == http.StatusConflict {
			return &Error{Status: r.status, Code: codeConflict, Message: "Conflict: " + r.field + " " + reason, Details: details}
		}
		return &Error{Status: r.status, Code: codeValidation, Message: "Invalid request: " + r.field + " " + reason, Details: details}
	}
	return nil
}
