// Package llmtest provides stand-in model upstreams for tests: real HTTP servers that speak
// OpenAI's chat completions or Anthropic's messages protocol byte for byte, answer what the
// test scripts, fail the way real upstreams fail, and record every request they receive.
package llmtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// Reply is the next answer of a stand-in.
type Reply struct {
	// Model is the model the answer names; empty echoes the request's.
	Model string
	Text  string
	// Chunks are the text as streamed; empty splits Text after each space.
	Chunks    []string
	ToolCalls []ToolCall
	// StopReason is empty for the natural one: tool_calls when there are tool calls, stop
	// otherwise. StopSequence, when set, is the sequence that stopped the answer (Anthropic
	// says stop_sequence).
	StopReason   llm.StopReason
	StopSequence string
	// RawStopReason, when set, is sent as the finish_reason or stop_reason as is.
	RawStopReason string
	// Usage zero is DefaultUsage.
	Usage llm.Usage

	// Status of 400 or more answers with the dialect's error body of ErrorType and
	// ErrorMessage (defaults by status) instead.
	Status       int
	ErrorType    string
	ErrorMessage string

	// Fault breaks a streamed answer after FaultAfter events (a complete answer: at once).
	Fault      Fault
	FaultAfter int
	// Delay is waited before each event; FirstDelay before the first one only (a model's
	// time to its first token, the rest streaming at once).
	Delay      time.Duration
	FirstDelay time.Duration
	// JSON answers a streaming request with a complete JSON answer, as servers that ignore
	// "stream" do.
	JSON bool
}

// ToolCall is a tool call of a Reply.
type ToolCall struct {
	// ID empty is made up ("call_…" or "toolu_…").
	ID        string
	Name      string
	Arguments string
	// Chunks are the arguments as streamed; empty splits them in pieces of a few bytes.
	Chunks []string
}

// DefaultUsage is the usage of a Reply that sets none.
var DefaultUsage = llm.Usage{InputTokens: 10, OutputTokens: 20}

// Fault is a way for a streamed answer to go wrong.
type Fault uint8

const (
	NoFault Fault = iota
	// FaultStall sends nothing more and holds the connection until the client leaves.
	FaultStall
	// FaultStallHeaders holds the request before any header is sent.
	FaultStallHeaders
	// FaultMalformed sends a chunk that is not JSON, then ends the body.
	FaultMalformed
	// FaultStreamError sends the dialect's in-stream error event (ErrorType, ErrorMessage),
	// then ends the body.
	FaultStreamError
	// FaultTruncate ends the body without the end of the answer.
	FaultTruncate
)

// Request is a request the stand-in received.
type Request struct {
	// Seq numbers requests from 1.
	Seq    int
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Decode unmarshals the request's JSON body.
func (r Request) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Map is the request's JSON body as a map (nil if it is not an object).
func (r Request) Map() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil
	}
	return m
}

// Server is a stand-in upstream.
type Server struct {
	// URL is the base URL to configure a provider with: ".../v1" for OpenAI, the root for
	// Anthropic, as their official clients take them.
	URL string

	srv     *httptest.Server
	dialect dialect
	quit    chan struct{}
	aborted chan int
	once    sync.Once

	mu       sync.Mutex
	key      string
	models   []string
	replies  []Reply
	respond  func(Request) Reply
	requests []Request
}

// NewOpenAI starts a stand-in OpenAI (POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models) that
// closes when the test ends.
func NewOpenAI(t testing.TB) *Server {
	t.Helper()
	s := start(openAI{})
	s.URL = s.srv.URL + "/v1"
	t.Cleanup(s.Close)
	return s
}

// NewAnthropic starts a stand-in Anthropic (POST /v1/messages, GET /v1/models) that closes
// when the test ends.
func NewAnthropic(t testing.TB) *Server {
	t.Helper()
	s := start(anthropic{})
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

func start(d dialect) *Server {
	s := &Server{dialect: d, quit: make(chan struct{}), aborted: make(chan int, 64)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server, releasing requests it holds.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.quit)
		s.srv.Close()
	})
}

// RequireKey makes the server refuse requests without this key, as the real one does.
func (s *Server) RequireKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// SetModels sets what GET /v1/models lists.
func (s *Server) SetModels(models ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models = models
}

// Enqueue scripts the next answers, in order.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
}

// Respond answers requests when no scripted answer is queued; without it the answer is
// Reply{Text: "Hello from the stand-in."}.
func (s *Server) Respond(f func(Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// Requests are the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// Last is the last request received (a zero Request if none).
func (s *Server) Last() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return Request{}
	}
	return s.requests[len(s.requests)-1]
}

// Aborted delivers the Seq of each request whose client went away before its answer was
// complete.
func (s *Server) Aborted() <-chan int { return s.aborted }

// apiError is an error answer of a dialect.
type apiError struct {
	status  int
	typ     string
	message string
}

// dialect is what differs between the two protocols.
type dialect interface {
	// endpoint says which route a request is: "complete", "models", or "".
	endpoint(method, path string) string
	authorize(h http.Header, key string) *apiError
	// validate checks the body as the real server would and reads what the answer needs.
	validate(body []byte) (call, *apiError)
	writeError(w http.ResponseWriter, e *apiError)
	// events renders a streamed answer as SSE frames; end is where the answer's closing
	// frames start (a truncated stream stops before them).
	events(c call, r Reply) (frames [][]byte, end int)
	streamError(e *apiError) []byte
	malformed() []byte
	whole(c call, r Reply) []byte
	models(ids []string) []byte
}

// call is what an answer needs to know of its request.
type call struct {
	seq          int
	model        string
	stream       bool
	includeUsage bool
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	seq := len(s.requests) + 1
	s.requests = append(s.requests, Request{Seq: seq, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	key, models := s.key, s.models
	s.mu.Unlock()

	ep := s.dialect.endpoint(r.Method, r.URL.Path)
	if ep == "" {
		s.dialect.writeError(w, &apiError{status: http.StatusNotFound, typ: "not_found_error", message: "Unknown request URL: " + r.Method + " " + r.URL.Path})
		return
	}
	if e := s.dialect.authorize(r.Header, key); e != nil {
		s.dialect.writeError(w, e)
		return
	}
	if ep == "embeddings" {
		if e := embeddings(w, body); e != nil {
			s.dialect.writeError(w, e)
		}
		return
	}
	if ep == "models" {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.dialect.models(models))
		return
	}
	c, e := s.dialect.validate(body)
	if e != nil {
		s.dialect.writeError(w, e)
		return
	}
	c.seq = seq
	rep := s.next(Request{Seq: seq, Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: body})
	if rep.Status >= 400 {
		s.dialect.writeError(w, replyError(rep, rep.Status))
		return
	}
	if rep.Fault == FaultStallHeaders {
		s.hold(r.Context(), seq)
		return
	}
	if !c.stream || rep.JSON {
		s.answer(r.Context(), w, c, rep)
		return
	}
	s.stream(r.Context(), w, c, rep)
}

func (s *Server) next(req Request) Reply {
	s.mu.Lock()
	if len(s.replies) > 0 {
		rep := s.replies[0]
		s.replies = s.replies[1:]
		s.mu.Unlock()
		return rep
	}
	respond := s.respond
	s.mu.Unlock()
	// Called unlocked: a script may look at the requests so far.
	if respond != nil {
		return respond(req)
	}
	return Reply{Text: "Hello from the stand-in."}
}

// answer writes a complete answer.
func (s *Server) answer(ctx context.Context, w http.ResponseWriter, c call, rep Reply) {
	switch rep.Fault {
	case FaultStall:
		s.hold(ctx, c.seq)
		return
	case FaultStreamError:
		s.dialect.writeError(w, replyError(rep, http.StatusInternalServerError))
		return
	}
	b := s.dialect.whole(c, rep)
	switch rep.Fault {
	case FaultMalformed:
		b = s.dialect.malformed()
	case FaultTruncate:
		b = b[:len(b)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", requestID(c.seq))
	w.Write(b)
}

// stream writes a streamed answer event by event, flushing each.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, c call, rep Reply) {
	frames, end := s.dialect.events(c, rep)
	cut := len(frames)
	if rep.Fault != NoFault {
		cut = min(max(rep.FaultAfter, 0), len(frames))
		if rep.Fault == FaultTruncate {
			cut = min(cut, end)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Request-Id", requestID(c.seq))
	h.Set("Request-Id", requestID(c.seq))
	w.WriteHeader(http.StatusOK)
	flush := func() { http.NewResponseController(w).Flush() }
	flush()
	for i, f := range frames[:cut] {
		wait := rep.Delay
		if i == 0 {
			wait += rep.FirstDelay
		}
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				s.abort(c.seq)
				return
			case <-s.quit:
				return
			}
		}
		if _, err := w.Write(f); err != nil {
			s.abort(c.seq)
			return
		}
		flush()
	}
	switch rep.Fault {
	case FaultStall:
		s.hold(ctx, c.seq)
	case FaultMalformed:
		w.Write(s.dialect.malformed())
	case FaultStreamError:
		w.Write(s.dialect.streamError(replyError(rep, http.StatusInternalServerError)))
	}
}

// hold keeps a request open until its client leaves or the server closes.
func (s *Server) hold(ctx context.Context, seq int) {
	select {
	case <-ctx.Done():
		s.abort(seq)
	case <-s.quit:
	}
}

func (s *Server) abort(seq int) {
	select {
	case s.aborted <- seq:
	default:
	}
}

func replyError(rep Reply, status int) *apiError {
	e := &apiError{status: status, typ: rep.ErrorType, message: rep.ErrorMessage}
	if rep.Status >= 400 {
		e.status = rep.Status
	}
	if e.message == "" {
		e.message = http.StatusText(e.status)
	}
	return e
}

func requestID(seq int) string { return "req_standin_" + strconv.Itoa(seq) }

// textChunks is how the reply's text is streamed.
func textChunks(rep Reply) []string {
	if len(rep.Chunks) > 0 {
		return rep.Chunks
	}
	if rep.Text == "" {
		return nil
	}
	var out []string
	s := rep.Text
	for s != "" {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// argChunks is how a tool call's arguments are streamed: pieces of about eight bytes,
// never splitting a character.
func argChunks(tc ToolCall) []string {
	if len(tc.Chunks) > 0 {
		return tc.Chunks
	}
	var out []string
	s := tc.Arguments
	for s != "" {
		n := min(8, len(s))
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n++
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func usage(rep Reply) llm.Usage {
	if rep.Usage == (llm.Usage{}) {
		return DefaultUsage
	}
	return rep.Usage
}

func model(c call, rep Reply) string {
	if rep.Model != "" {
		return rep.Model
	}
	return c.model
}

// marshal encodes what the stand-in builds itself and so cannot fail to encode.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}
