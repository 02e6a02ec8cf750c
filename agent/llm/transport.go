package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/switchboard-go/switchboard/telemetry"
)

// maxResponseBody bounds a complete (non-streamed) answer.
const maxResponseBody = 32 << 20

// transport is what both dialects share: it sends a JSON request to the upstream with the
// provider's headers, classifies failures, and watches streams for stalls.
type transport struct {
	provider string
	client   *http.Client
	header   http.Header
	// stall is the longest silence a stream may keep, before its headers and between bytes.
	stall time.Duration
	// timeout bounds a complete (non-streamed) request.
	timeout time.Duration
}

// send POSTs body to url. A non-2xx answer is read and returned as an *UpstreamError.
func (t *transport) send(ctx context.Context, method, url string, body any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	stop := func() {}
	if body != nil {
		pl, ok := body.(payload)
		if !ok {
			pl = payload{wire: body}
		}
		var open func() io.Reader
		var n int64
		open, n, stop, err = pl.body()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		req.Body, req.ContentLength = io.NopCloser(open()), n
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(open()), nil }
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The provider sees the trace of the turn or gateway request that asked.
	telemetry.Inject(ctx, req.Header)
	resp, err := t.client.Do(req)
	if err != nil {
		stop()
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		stop()
		return nil, upstreamStatusError(t.provider, resp, b)
	}
	// The exchange ends when the answer's body is closed: then the request's stops too.
	resp.Body = &exchangeBody{ReadCloser: resp.Body, stop: stop}
	return resp, nil
}

// exchangeBody is an answer's body whose Close also stops the request's body readers.
type exchangeBody struct {
	io.ReadCloser
	stop func()
}

func (b *exchangeBody) Close() error {
	err := b.ReadCloser.Close()
	b.stop()
	return err
}

// fetch sends a request and decodes a complete JSON answer into out.
func (t *transport) fetch(ctx context.Context, method, url string, body, out any) error {
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if t.timeout > 0 {
		rctx, cancel = context.WithTimeoutCause(ctx, t.timeout, ErrStalled)
	}
	defer cancel()
	resp, err := t.send(rctx, method, url, body)
	if err != nil {
		return t.failure(ctx, rctx, err, t.timeout)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return t.failure(ctx, rctx, err, t.timeout)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return malformed(t.provider, "%v", err)
	}
	return nil
}

// failure classifies an error of sending or reading: the caller's cancellation stays the
// caller's; our stall timer is a stalled upstream; anything else is a connection failure.
// Errors already classified pass through.
func (t *transport) failure(parent, rctx context.Context, err error, limit time.Duration) error {
	var ue *UpstreamError
	if errors.As(err, &ue) || errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrConfig) {
		return err
	}
	if parent.Err() != nil {
		return context.Cause(parent)
	}
	switch cause := context.Cause(rctx); {
	case errors.Is(cause, ErrStalled):
		return &UpstreamError{Provider: t.provider, Type: "stalled",
			Message: fmt.Sprintf("upstream sent nothing for %s", limit), Err: ErrStalled}
	case errors.Is(cause, ErrClosed):
		return ErrClosed
	}
	return &UpstreamError{Provider: t.provider, Type: "connection_error", Message: err.Error(), Err: err}
}

// decoder turns one dialect's event stream into deltas.
type decoder interface {
	// event handles one event, appending what it yields to out; done reports that the
	// answer is complete (its DeltaDone appended).
	event(ev sseEvent, out []Delta) (_ []Delta, done bool, err error)
	// end is called when the stream ends before done: it appends the DeltaDone of an answer
	// that may end so, or fails.
	end(out []Delta) ([]Delta, error)
}

// stream POSTs a streaming request and returns the stream once the upstream has said how
// its answer starts, so that a failure before the first byte of the answer (an error status,
// an error event first thing, a refused connection) is returned here, where a caller can
// still fall back to another model. An upstream that ignores stream:true and answers with
// JSON is played back through whole.
func (t *transport) stream(ctx context.Context, url string, body any, dec decoder, whole func([]byte) (*Response, error)) (Stream, error) {
	sctx, cancel := context.WithCancelCause(ctx)
	var timer *time.Timer
	if t.stall > 0 {
		timer = time.AfterFunc(t.stall, func() { cancel(ErrStalled) })
	}
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
		cancel(ErrClosed)
	}
	resp, err := t.send(sctx, http.MethodPost, url, body)
	if err != nil {
		err = t.failure(ctx, sctx, err, t.stall)
		stop()
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		defer stop()
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		if err != nil {
			return nil, t.failure(ctx, sctx, err, t.stall)
		}
		r, err := whole(b)
		if err != nil {
			return nil, err
		}
		return StreamResponse(r), nil
	}
	if timer != nil {
		// From here the timer runs only while a read waits: a caller that is slow to ask
		// for the next delta is not a stalled upstream.
		timer.Stop()
	}
	s := &httpStream{
		t: t, parent: ctx, ctx: sctx, cancel: cancel, timer: timer,
		body: resp.Body,
		dec:  dec,
	}
	s.sse = newSSEReader(&idleReader{r: resp.Body, timer: timer, d: t.stall})
	for len(s.queue) == 0 && s.err == nil && !s.finished {
		s.fill()
	}
	if s.err != nil {
		s.Close()
		return nil, s.err
	}
	return s, nil
}

// drainWait bounds the wait for the end of an answer's body after its last event, so that
// the connection can be reused without a misbehaving upstream holding Next.
const drainWait = 250 * time.Millisecond

// httpStream is a Stream over an upstream's event stream.
type httpStream struct {
	t      *transport
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	body   io.ReadCloser
	sse    *sseReader
	dec    decoder

	queue    []Delta
	head     int
	finished bool
	err      error
}

func (s *httpStream) Next() (Delta, error) {
	for s.head == len(s.queue) {
		if s.err != nil {
			return Delta{}, s.err
		}
		if s.finished {
			s.drain()
			s.Close()
			s.err = io.EOF
			continue
		}
		s.fill()
	}
	d := s.queue[s.head]
	s.head++
	return d, nil
}

// fill reads events until one yields deltas, the answer ends, or the stream fails.
func (s *httpStream) fill() {
	s.queue, s.head = s.queue[:0], 0
	for len(s.queue) == 0 {
		ev, err := s.sse.next()
		if errors.Is(err, io.EOF) {
			s.queue, err = s.dec.end(s.queue)
			if err != nil {
				s.err = err
				return
			}
			s.finished = true
			return
		}
		if err != nil {
			if errors.Is(err, errSSELineTooLong) {
				s.err = malformed(s.t.provider, "%v", err)
				return
			}
			s.err = s.t.failure(s.parent, s.ctx, err, s.t.stall)
			return
		}
		var done bool
		s.queue, done, err = s.dec.event(ev, s.queue)
		if err != nil {
			s.err = err
			return
		}
		if done {
			s.finished = true
			return
		}
	}
}

// drain reads what little is left after the last event so that the connection goes back
// to the pool.
func (s *httpStream) drain() {
	t := time.AfterFunc(drainWait, func() { s.cancel(ErrClosed) })
	defer t.Stop()
	for i := 0; i < 16; i++ {
		if _, err := s.sse.next(); err != nil {
			return
		}
	}
}

// Close ends the upstream request at once. It is safe to call from any goroutine, and
// more than once; Next then fails.
func (s *httpStream) Close() error {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.cancel(ErrClosed)
	return s.body.Close()
}

// idleReader runs the stall timer while a read waits for the upstream.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.timer == nil {
		return r.r.Read(p)
	}
	r.timer.Reset(r.d)
	n, err := r.r.Read(p)
	r.timer.Stop()
	return n, err
}
