package speech

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/telemetry"
)

// Over HTTP, speech goes to any server of OpenAI's audio API: /audio/speech and
// /audio/transcriptions under a base URL like https://api.openai.com/v1.

// DefaultOpenAIBaseURL is OpenAI's own API.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// Default models, for a provider asked for without one.
const (
	DefaultTTSModel = "tts-1"
	DefaultSTTModel = "whisper-1"
	// DefaultOpenAIVoice is the voice of an empty voice name.
	DefaultOpenAIVoice = "alloy"
)

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// retryDelay is the pause before the one retry; a Retry-After of up to maxRetryDelay is
// honoured instead.
const (
	retryDelay    = 200 * time.Millisecond
	maxRetryDelay = 2 * time.Second
)

// openAIClient is what the two HTTP providers share.
type openAIClient struct {
	base   string
	key    string
	model  string
	client *http.Client
	header http.Header
}

func newOpenAIClient(baseURL, apiKey, model, def string, client *http.Client) openAIClient {
	if baseURL == "" {
		baseURL = DefaultOpenAIBaseURL
	}
	if model == "" {
		model = def
	}
	if client == nil {
		client = http.DefaultClient
	}
	return openAIClient{base: strings.TrimRight(baseURL, "/"), key: apiKey, model: model, client: client}
}

// do sends the request that build makes, once more after a temporary failure (429, 5xx,
// no answer). build is called for each try, so the body is fresh. accept, when set, reads
// the start of a 2xx answer; a temporary *ProviderError from it (the stream cut before its
// first byte) is retried too, and it owns the body once it returns nil.
func (c *openAIClient) do(ctx context.Context, op string, build func() (*http.Request, error), accept func(*http.Response) error) (*http.Response, error) {
	var last error
	for try := 0; try < 2; try++ {
		if try > 0 {
			wait := retryDelay
			var pe *ProviderError
			if errors.As(last, &pe) && pe.retryAfter > 0 {
				wait = min(pe.retryAfter, maxRetryDelay)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, last
			case <-t.C:
			}
		}
		req, err := build()
		if err != nil {
			return nil, err
		}
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		for k, v := range c.header {
			req.Header[k] = v
		}
		telemetry.Inject(ctx, req.Header) // the provider sees the call's trace
		resp, err := c.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = &ProviderError{Op: op, Err: err}
			continue
		}
		if resp.StatusCode/100 == 2 {
			if accept == nil {
				return resp, nil
			}
			err := accept(resp)
			if err == nil {
				return resp, nil
			}
			resp.Body.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var pe *ProviderError
			if !errors.As(err, &pe) || !pe.Temporary() {
				return nil, err
			}
			last = err
			continue
		}
		pe := statusError(op, resp)
		last = pe
		if !pe.Temporary() {
			return nil, pe
		}
	}
	return nil, last
}

// statusError reads an error answer: OpenAI's {"error":{"message","type","code"}}, or the
// start of whatever else the server said.
func statusError(op string, resp *http.Response) *ProviderError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &ProviderError{Op: op, Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.retryAfter = time.Duration(s) * time.Second
	}
	var body struct {
		Error json.RawMessage `json:"error"`
		// Some compatible servers answer {"detail": "..."} (FastAPI) or {"message": "..."}.
		Detail  any    `json:"detail"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &body) == nil {
		var obj struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		}
		var str string
		switch {
		case json.Unmarshal(body.Error, &obj) == nil && obj.Message != "":
			e.Message, e.Type = obj.Message, obj.Type
		case json.Unmarshal(body.Error, &str) == nil && str != "":
			e.Message = str
		case body.Detail != nil:
			if s, ok := body.Detail.(string); ok {
				e.Message = s
			} else {
				d, _ := json.Marshal(body.Detail)
				e.Message = string(d)
			}
		case body.Message != "":
			e.Message = body.Message
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(b[:min(len(b), 300)]))
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
