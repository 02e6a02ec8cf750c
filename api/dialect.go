package api

import (
	"net/http"
	"strconv"
	"strings"
)

// dialect is the error shape a route answers in. The canonical surface has its own; the
// compatible surfaces answer as the platform their clients were written for, because those
// clients parse errors (the OpenAI and Anthropic SDKs raise typed exceptions from them).
type dialect uint8

const (
	dialectCanonical dialect = iota
	// dialectOpenAI: {"error":{"message","type","param","code"}}.
	dialectOpenAI
	// dialectAnthropic: {"type":"error","error":{"type","message"}}.
	dialectAnthropic
	// dialectAmaStudio: {"error":{"message","code":<status>}}.
	dialectAmaStudio
	// dialectAmaOpenAI and dialectAmaAnthropic answer AmaStudio's requests on the OpenAI
	// and Anthropic routes: each SDK's shape with AmaStudio's integer code in the error
	// object, a superset both clients read (see amastudio.go).
	dialectAmaOpenAI
	dialectAmaAnthropic
	// dialectAlumia: the canonical envelope with Alumia's codes ("UNAUTHORIZED"); chosen
	// per request on canonical routes (dialectOf).
	dialectAlumia
	// dialectFastAPI: {"detail":"…"}, and {"detail":[{"loc","msg","type"}]} for a 422: the
	// root Amplifier paths (amplifier.go).
	dialectFastAPI
)

func (d dialect) write(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	switch d {
	case dialectOpenAI:
		writeOpenAIError(w, e)
	case dialectAnthropic:
		writeAnthropicError(w, e)
	case dialectAmaStudio, dialectAmaOpenAI, dialectAmaAnthropic:
		writeAmaStudioError(w, d, e)
	case dialectAlumia:
		writeAlumiaError(w, e)
	case dialectFastAPI:
		writeFastAPIError(w, e)
	default:
		writeError(w, e)
	}
}

// param is the field an error is about, in the form a dialect names it.
func (e *Error) param() any {
	if len(e.Details) == 0 || e.Details[0].Field == "body" {
		return nil
	}
	return e.Details[0].Field
}

func writeOpenAIError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	writeJSON(w, e.Status, map[string]any{"error": openAIErrorObject(e)})
}

// openAIErrorObject is the error object of OpenAI's shape: message, type, param, code.
func openAIErrorObject(e *Error) map[string]any {
	typ, code := "invalid_request_error", any(nil)
	switch {
	case e.Status == http.StatusUnauthorized:
		typ, code = "authentication_error", "invalid_api_key"
	case e.Status == http.StatusForbidden:
		typ = "permission_error"
	case e.Status == http.StatusNotFound:
		typ = "invalid_request_error"
		if e.Code == codeModelNotFound {
			code = "model_not_found"
		}
	case e.Status == http.StatusPaymentRequired:
		typ, code = "insufficient_quota", "insufficient_quota"
	case e.Status == http.StatusTooManyRequests:
		typ, code = "rate_limit_error", "rate_limit_exceeded"
	case e.Status >= 500:
		typ = "api_error"
	}
	return map[string]any{"message": e.Message, "type": typ, "param": e.param(), "code": code}
}

func writeAnthropicError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, map[string]any{"type": "error", "error": anthropicErrorObject(e)})
}

// anthropicErrorObject is the error object of Anthropic's shape: type, message.
func anthropicErrorObject(e *Error) map[string]any {
	typ := "invalid_request_error"
	switch {
	case e.Status == http.StatusUnauthorized:
		typ = "authentication_error"
	case e.Status == http.StatusForbidden:
		typ = "permission_error"
	case e.Status == http.StatusNotFound:
		typ = "not_found_error"
	case e.Status == http.StatusRequestEntityTooLarge:
		typ = "request_too_large"
	case e.Status == http.StatusPaymentRequired:
		typ = "billing_error"
	case e.Status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case e.Status == http.StatusServiceUnavailable:
		typ = "overloaded_error"
	case e.Status >= 500:
		typ = "api_error"
	}
	msg := e.Message
	if f := e.param(); f != nil && !strings.Contains(msg, f.(string)) {
		msg = f.(string) + ": " + msg
	}
	return map[string]any{"type": typ, "message": msg}
}
