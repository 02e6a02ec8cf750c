package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Viewer is who opened a stream, as the API authenticated them.
type Viewer struct {
	TenantID string
	// Key names the credential, for the per-credential connection limit.
	Key string
	// Credential is what authenticated the stream; revoking it ends the stream (see
	// Connections).
	Credential Credential
	// RemoteAddr is the client's address as the HTTP server saw it (host:port), for the
	// records of what its commands start (a browser's call is from it).
	RemoteAddr string
	// Send queues a frame on the socket a command came from, for a command that answers with
	// more than its ack (session.send streams an answer); nil outside a command.
	Send func(frame any)
}

// AfterAck is a command's reply that goes on after its ack: Start is called once the ack is
// queued, so that the frames it sends follow the ack.
type AfterAck interface {
	Start()
}

// TopicChecker says whether a tenant may watch a topic: nil, or ErrTopicNotFound when the
// thing the topic names does not exist for that tenant (another tenant's call is not found).
type TopicChecker func(ctx context.Context, tenantID, kind, id string) error

// ErrTopicNotFound is a topic naming something the tenant does not have.
var ErrTopicNotFound = errors.New("realtime: topic not found")

// CommandHandler runs the commands a WebSocket client sends beyond subscribing
// (session.send, call.hangup); capabilities register theirs.
type CommandHandler func(ctx context.Context, v Viewer, msg json.RawMessage) (reply any, err error)

// Limits bound what one connection or credential may take.
type Limits struct {
	// MaxMessageBytes is the largest frame a WebSocket client may send (64 KiB).
	MaxMessageBytes int64
	// MaxSubscriptions is how many topics one connection may watch (100).
	MaxSubscriptions int
	// MaxConnsPerKey is how many streams one credential may hold open (1,000).
	MaxConnsPerKey int
	// Heartbeat is the interval of SSE comments and WebSocket pings (15 s).
	Heartbeat time.Duration
	// WriteTimeout cuts off a client that does not take a write within it (10 s).
	WriteTimeout time.Duration
}

func (l *Limits) defaults() {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = 64 << 10
	}
	if l.MaxSubscriptions <= 0 {
		l.MaxSubscriptions = 100
	}
	if l.MaxConnsPerKey <= 0 {
		l.MaxConnsPerKey = 1000
	}
	if l.Heartbeat <= 0 {
		l.Heartbeat = 15 * time.Second
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 10 * time.Second
	}
}

// Server serves the hub's streams over SSE and WebSocket.
type Server struct {
	hub      *Hub
	check    TopicChecker
	limits   Limits
	log      *slog.Logger
	commands map[string]CommandHandler

	// registry holds every open stream under its credential, for revocation.
	registry *Connections

	mu    sync.Mutex
	conns map[string]int
	// live maps each open stream to its removal from the registry.
	live    map[*Subscriber]func()
	closing bool
	// wg counts the goroutines serving taken-over connections.
	wg sync.WaitGroup
}

// NewServer returns the stream endpoints of hub. check may be nil (every well-formed topic
// of the viewer's tenant is allowed).
func NewServer(hub *Hub, check TopicChecker, limits Limits, log *slog.Logger) *Server {
	limits.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{hub: hub, check: check, limits: limits, log: log, commands: map[string]CommandHandler{}, conns: map[string]int{}, live: map[*Subscriber]func(){},
		registry: NewConnections()}
}

// Connections is the registry every stream of this server registers in, under its
// credential; the API adds its other long-lived connections and revokes through it.
func (s *Server) Connections() *Connections { return s.registry }

// Handle registers the handler of a WebSocket command type (such as "call.hangup").
func (s *Server) Handle(typ string, h CommandHandler) { s.commands[typ] = h }

// ErrShuttingDown ends the streams of a node that is stopping.
var ErrShuttingDown = errors.New("realtime: server shutting down")

// open starts a stream of the credential: it counts it against the limit and makes its
// subscriber. It answers nil when the credential holds too many streams or the server is
// shutting down.
func (s *Server) open(v Viewer) (*Subscriber, *streamError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, &streamError{status: http.StatusServiceUnavailable, body: errorBody{Code: "service_unavailable", Message: "This node is shutting down; reconnect", Details: []fieldDetail{}}}
	}
	if s.conns[v.Key] >= s.limits.MaxConnsPerKey {
		return nil, &streamError{status: http.StatusTooManyRequests, body: errorBody{Code: "rate_limit_exceeded",
			Message: "Too many open streams for this credential (limit " + strconv.Itoa(s.limits.MaxConnsPerKey) + ")", Details: []fieldDetail{}}}
	}
	s.conns[v.Key]++
	sub := s.hub.Subscribe(v.TenantID)
	s.live[sub] = s.registry.Register(v.Credential, func(reason string) { sub.fail(&RevokedError{Reason: reason}) })
	return sub, nil
}

// close ends a stream opened by open.
func (s *Server) close(v Viewer, sub *Subscriber) {
	sub.Close()
	s.mu.Lock()
	if unregister := s.live[sub]; unregister != nil {
		unregister()
	}
	delete(s.live, sub)
	if s.conns[v.Key]--; s.conns[v.Key] <= 0 {
		delete(s.conns, v.Key)
	}
	s.mu.Unlock()
}

// Shutdown ends every open stream (SSE streams end, sockets close with "going away") and
// refuses new ones; clients reconnect to another node and resume. It waits a few seconds
// for the streams to finish closing.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.closing = true
	for sub := range s.live {
		sub.fail(ErrShuttingDown)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.limits.WriteTimeout):
	}
}

// Open reports how many streams are open.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Errors are in the canonical shape {"code","message","details":[{"field","message"}]}.
type errorBody struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details []fieldDetail `json:"details"`
}

type fieldDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// streamError is a refusal with the HTTP status an SSE request gets and the error a
// WebSocket client gets in an error frame.
type streamError struct {
	status int
	body   errorBody
}

func (e *streamError) Error() string { return e.body.Message }

func errField(status int, code, field, msg string) *streamError {
	return &streamError{status: status, body: errorBody{Code: code, Message: field + ": " + msg, Details: []fieldDetail{{Field: field, Message: msg}}}}
}

// checkTopics validates topics and asks the checker whether the viewer may watch each.
func (s *Server) checkTopics(ctx context.Context, v Viewer, topics []string, have int) *streamError {
	if len(topics) == 0 {
		return errField(http.StatusUnprocessableEntity, "validation_error", "topics", "name at least one topic")
	}
	if have+len(topics) > s.limits.MaxSubscriptions {
		return errField(http.StatusUnprocessableEntity, "validation_error", "topics", "at most "+strconv.Itoa(s.limits.MaxSubscriptions)+" topics per connection")
	}
	for i, t := range topics {
		kind, id, err := ParseTopic(t)
		if err != nil {
			return errField(http.StatusUnprocessableEntity, "validation_error", "topics["+strconv.Itoa(i)+"]",
				"unknown topic "+strconv.Quote(t)+": want tenant, call:{id}, session:{id}, agent:{id} or knowledge:{id}")
		}
		if s.check != nil && kind != TenantTopic {
			if err := s.check(ctx, v.TenantID, kind, id); err != nil {
				if errors.Is(err, ErrTopicNotFound) {
					return &streamError{status: http.StatusNotFound, body: errorBody{Code: "not_found", Message: "Topic " + t + " not found", Details: []fieldDetail{{Field: "topics[" + strconv.Itoa(i) + "]", Message: "not found"}}}}
				}
				return &streamError{status: http.StatusServiceUnavailable, body: errorBody{Code: "service_unavailable", Message: "Topic " + t + " could not be checked; try again", Details: []fieldDetail{}}}
			}
		}
	}
	return nil
}

// splitTopics reads a comma-separated topic list.
func splitTopics(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func writeHTTPError(w http.ResponseWriter, e *streamError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	if e.body.Details == nil {
		e.body.Details = []fieldDetail{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e.body})
}
