package api

import (
	"net/http"
	"strings"
)

// AmaStudio (../shared/seeds/000_…) is the /v1 surface: the model gateway it shares with
// the OpenAI and Anthropic SDKs, and routes of its own (keys, login, agent sessions). Its
// clients read errors as {"error":{"message","code":<status>}}; the SDKs read theirs. Which
// shape a /v1 error takes is decided here, by the route and the request:
//
//   - AmaStudio's own routes answer in AmaStudio's shape, whoever asks.
//   - A request is AmaStudio's when it presents an amallm_ key (X-API-Key or Bearer, valid
//     or not): AmaStudio's document gives its clients nothing else. On the OpenAI routes
//     (chat completions, models) it gets OpenAI's error object with AmaStudio's integer
//     code in place of OpenAI's string one, and on /v1/messages Anthropic's body with the
//     integer code added to its error object: supersets that AmaStudio's clients and both
//     SDKs (which read these bodies loosely) all parse.
//   - Any other request on those routes gets exactly the SDK's shape, which typed clients
//     of other languages decode strictly (OpenAI's code is a string there).
//   - A /v1 path that serves nothing answers an AmaStudio request in AmaStudio's shape, a
//     request with anthropic-version (which Anthropic's clients always send) in
//     Anthropic's, and any other in OpenAI's.
//
// In AmaStudio's shapes a request the canonical surface calls unprocessable (422) is a 400,
// as AmaStudio's document lists it.

// amaStudioKind is the prefix of AmaStudio's keys.
const amaStudioKind = "amallm_"

// amaStudioRequest reports whether a request presents an amallm_ key.
func amaStudioRequest(r *http.Request) bool {
	return strings.HasPrefix(credential(r, false), amaStudioKind)
}

// anthropicClient reports whether a request comes from a client of Anthropic's own API,
// which always sends anthropic-version (the API refuses requests without it).
func anthropicClient(r *http.Request) bool {
	return r.Header.Get("anthropic-version") != ""
}

// of is the error shape of a route of dialect d for this request.
func (d dialect) of(r *http.Request) dialect {
	switch d {
	case dialectOpenAI:
		if amaStudioRequest(r) {
			return dialectAmaOpenAI
		}
	case dialectAnthropic:
		if amaStudioRequest(r) {
			return dialectAmaAnthropic
		}
	case dialectCanonical:
		if isAlumia(r) {
			return dialectAlumia
		}
	}
	return d
}

// dialectFor is the error shape of a request that reached no route's handler: a path that
// serves nothing, a method its path does not serve, or a panic.
func (s *Server) dialectFor(r *http.Request) dialect {
	// The catch-all "/" is the pattern of every path that serves nothing; the root's own
	// route is registered as "/{$}".
	if _, pattern := s.mux.Handler(r); pattern != "" && pattern != "/" {
		if pattern == "/{$}" {
			pattern = "/"
		}
		for i := range s.routes {
			if s.routes[i].Path == pattern {
				return s.routes[i].Dialect.of(r)
			}
		}
	}
	if amplifierPath(r.URL.Path) {
		return dialectFastAPI
	}
	if p := r.URL.Path; p != "/v1" && !strings.HasPrefix(p, "/v1/") {
		return dialectCanonical.of(r)
	}
	switch {
	case amaStudioRequest(r):
		return dialectAmaStudio
	case anthropicClient(r):
		return dialectAnthropic
	}
	return dialectOpenAI
}

// writeAmaStudioError writes e in AmaStudio's shape, or in one of its supersets.
func writeAmaStudioError(w http.ResponseWriter, d dialect, e *Error) {
	status := e.Status
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	var obj map[string]any
	switch d {
	case dialectAmaOpenAI:
		obj = openAIErrorObject(e)
	case dialectAmaAnthropic:
		obj = anthropicErrorObject(e)
	default:
		obj = map[string]any{"message": e.Message}
	}
	obj["code"] = status
	body := map[string]any{"error": obj}
	if d == dialectAmaAnthropic {
		body["type"] = "error"
	}
	writeJSON(w, status, body)
}

// maxTokensRequired reports whether a /v1/messages request must name max_tokens: only a
// client of Anthropic's own API (anthropic-version) with a key that is not AmaStudio's.
// AmaStudio's document sends none; without it the provider's default applies, as on
// /v1/chat/completions: an Anthropic-kind provider's default_max_tokens (4096 unless
// configured), and an OpenAI-kind provider's own.
func maxTokensRequired(r *http.Request) bool {
	return anthropicClient(r) && !amaStudioRequest(r)
}

// errorResponse names the OpenAPI response that documents a route's errors.
func (d dialect) errorResponse() string {
	switch d {
	case dialectOpenAI:
		return "OpenAIError"
	case dialectAnthropic:
		return "AnthropicError"
	case dialectAmaStudio:
		return "AmaStudioError"
	case dialectFastAPI:
		return "FastAPIError"
	}
	return "Error"
}

// dialectErrorResponses document the error shapes of the /v1 routes, for the OpenAPI
// document.
func dialectErrorResponses() map[string]any {
	str := map[string]any{"type": "string"}
	obj := func(props map[string]any, required ...string) map[string]any {
		return map[string]any{"type": "object", "properties": props, "required": required}
	}
	resp := func(desc string, schema map[string]any) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	ama := obj(map[string]any{"message": str, "code": map[string]any{"type": "integer"}}, "message", "code")
	return map[string]any{
		"FastAPIError": resp("FastAPI's error (the root Amplifier paths): detail is a message, or for a 422 a list of {loc, msg, type}",
			obj(map[string]any{"detail": map[string]any{"oneOf": []any{str, map[string]any{"type": "array", "items": obj(map[string]any{
				"loc": map[string]any{"type": "array", "items": map[string]any{"type": []string{"string", "integer"}}}, "msg": str, "type": str}, "loc", "msg", "type")}}}}, "detail")),
		"AmaStudioError": resp("AmaStudio's error: the message and the HTTP status as code", obj(map[string]any{"error": ama}, "error")),
		"OpenAIError": resp("OpenAI's error; a request with an amallm_ key gets AmaStudio's integer code in place of OpenAI's string one",
			obj(map[string]any{"error": obj(map[string]any{"message": str, "type": str, "param": map[string]any{"type": []string{"string", "null"}},
				"code": map[string]any{"type": []string{"string", "integer", "null"}}}, "message", "type", "param", "code")}, "error")),
		"AnthropicError": resp("Anthropic's error; a request with an amallm_ key gets AmaStudio's integer code in the error object too",
			obj(map[string]any{"type": map[string]any{"const": "error"}, "error": obj(map[string]any{"type": str, "message": str,
				"code": map[string]any{"type": "integer"}}, "type", "message")}, "type", "error")),
	}
}
