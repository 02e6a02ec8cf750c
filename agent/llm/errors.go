package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

var (
	// ErrModelName is a model not named "provider/model".
	ErrModelName = errors.New("llm: a model is named provider/model")
	// ErrUnknownProvider is a "provider/" that no configured provider has.
	ErrUnknownProvider = errors.New("llm: unknown provider")
	// ErrNoKey is a provider that needs an API key and has none.
	ErrNoKey = errors.New("llm: provider has no API key")
	// ErrInvalidRequest is a request the upstream's dialect cannot express.
	ErrInvalidRequest = errors.New("llm: invalid request")
	// ErrConfig is a provider configuration that cannot work.
	ErrConfig = errors.New("llm: invalid provider configuration")
	// ErrStalled is an upstream that sent nothing for longer than the stall timeout; it is
	// found inside an *UpstreamError.
	ErrStalled = errors.New("llm: upstream stalled")
	// ErrClosed is what a stream's Next returns after Close.
	ErrClosed = errors.New("llm: stream closed")
	// ErrMalformedStream is upstream data that is not the dialect's; it is found inside an
	// *UpstreamError.
	ErrMalformedStream = errors.New("llm: malformed upstream data")
)

// UpstreamError is a failure of the upstream: an error status, a refused connection, a
// malformed or stalled stream, or an error event inside a stream. The API answers it with
// 502 and Message.
type UpstreamError struct {
	// Provider is the registry name of the upstream.
	Provider string
	// Status is the upstream's HTTP status, or 0 when the failure came without one (no
	// connection, a stalled or malformed stream, an error event after a 200).
	Status int
	// Type is the upstream's error type (rate_limit_error, overloaded_error,
	// invalid_request_error…), or ours: connection_error, stalled, malformed_stream.
	Type    string
	Message string
	// RequestID is the upstream's request ID, for its support.
	RequestID string
	// Err is the cause, when there is one beyond the upstream's word (ErrStalled,
	// ErrMalformedStream, a network error).
	Err error
}

func (e *UpstreamError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": upstream")
	if e.Status != 0 {
		b.WriteString(" " + strconv.Itoa(e.Status))
	}
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	b.WriteString(": " + e.Message)
	return b.String()
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// maxErrorBody bounds what is read of an upstream's error answer.
const maxErrorBody = 64 << 10

// upstreamStatusError classifies a non-2xx answer whose body has been read. Both dialects
// put the message at error.message and the type at error.type (OpenAI may add error.code);
// anything else (a proxy's HTML page) keeps its text.
func upstreamStatusError(provider string, resp *http.Response, body []byte) *UpstreamError {
	e := &UpstreamError{Provider: provider, Status: resp.StatusCode, RequestID: requestID(resp.Header)}
	var wire struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && len(wire.Error) > 0 {
		var detail struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Code    any    `json:"code"`
		}
		if json.Unmarshal(wire.Error, &detail) == nil {
			e.Type, e.Message = detail.Type, detail.Message
			if e.Type == "" {
				if code, ok := detail.Code.(string); ok {
					e.Type = code
				}
			}
		} else {
			// Some OpenAI-compatible servers answer {"error":"text"}.
			var text string
			if json.Unmarshal(wire.Error, &text) == nil {
				e.Message = text
			}
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512] + "…"
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

func requestID(h http.Header) string {
	for _, k := range []string{"Request-Id", "X-Request-Id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// malformed is the error of upstream data that is not the dialect's.
func malformed(provider, format string, args ...any) *UpstreamError {
	msg := fmt.Sprintf(format, args...)
	return &UpstreamError{Provider: provider, Type: "malformed_stream", Message: "malformed upstream data: " + msg,
		Err: ErrMalformedStream}
}

// errorType is what an upstream's error type may look like to be passed on from a tenant's
// provider: a short identifier, not text.
var errorType = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Messages of a tenant's provider's failures (see opaqueError).
const (
	tenantUnreachable = "the provider did not answer"
	tenantMalformed   = "the provider's answer was not in its dialect"
)

// opaqueError is err as the tenant whose provider failed may see it. A tenant's provider
// is a URL of the tenant's choosing: relaying what it answered would let the tenant read,
// through the node, whatever the node can reach (an error page, a metadata document), and
// telling a refused connection from a timeout or an unknown name would let it map the
// network around the node. So the tenant learns the status and, when it is an identifier,
// the upstream's error type (invalid_api_key, rate_limit_error), or that the provider did
// not answer; the cause stays in Err for the node's logs.
func opaqueError(err error) error {
	var ue *UpstreamError
	if !errors.As(err, &ue) {
		return err
	}
	o := &UpstreamError{Provider: ue.Provider, Status: ue.Status, Err: err}
	if errorType.MatchString(ue.Type) {
		o.Type = ue.Type
	}
	switch {
	case ue.Status != 0:
		o.Message = "the provider answered " + strconv.Itoa(ue.Status)
		if text := http.StatusText(ue.Status); text != "" {
			o.Message += " " + text
		}
		if o.Type != "" {
			o.Message += " (" + o.Type + ")"
		}
	case errors.Is(ue, ErrMalformedStream):
		o.Type, o.Message = "malformed_stream", tenantMalformed
	case ue.Type == "connection_error" || errors.Is(ue, ErrStalled):
		o.Type, o.Message = "connection_error", tenantUnreachable
	default: // an error event in a stream that had begun
		o.Message = "the provider reported an error"
		if o.Type != "" {
			o.Message += " (" + o.Type + ")"
		}
	}
	return o
}
