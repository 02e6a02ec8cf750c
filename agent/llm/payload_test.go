package llm_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// lateReader is a RoundTripper that answers at once and reads the request's body only
// afterwards, as http.Transport may (RoundTrip may return before the body is written).
type lateReader struct {
	read chan error
}

func (l *lateReader) RoundTrip(req *http.Request) (*http.Response, error) {
	body := req.Body
	go func() {
		<-l.read
		_, err := body.Read(make([]byte, 1<<10))
		l.read <- err
	}()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`))}, nil
}

// TestRequestIsNotReadAfterTheAnswer: once a provider has answered, nothing reads the
// request again: the gateway reuses the memory a large request lay in as soon as its
// answer is complete, and a transport that went on reading would send another request's
// bytes.
func TestRequestIsNotReadAfterTheAnswer(t *testing.T) {
	t.Parallel()
	for _, large := range []bool{false, true} {
		rt := &lateReader{read: make(chan error)}
		p, err := llm.New(llm.ProviderConfig{Name: "x", Kind: llm.KindOpenAI, BaseURL: "https://example.com/v1"},
			llm.WithHTTPClient(&http.Client{Transport: rt}))
		if err != nil {
			t.Fatal(err)
		}
		text := "hi"
		if large {
			text = strings.Repeat("x", 1<<20)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := p.Complete(ctx, &llm.Request{Model: "m", Messages: []llm.Message{llm.TextMessage(llm.RoleUser, text)}}); err != nil {
			t.Fatal(err)
		}
		rt.read <- nil
		select {
		case err := <-rt.read:
			if err == nil {
				t.Errorf("large=%v: the request was read after its answer", large)
			}
		case <-ctx.Done():
			t.Fatal("the late read did not return")
		}
		cancel()
	}
}
