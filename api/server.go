// Package api serves Switchboard's REST surfaces: the canonical /api/v1 (authentication,
// tenants, keys, users, agents, workflows, tools, phone numbers, trunks), health and version,
// and the OpenAPI document with its documentation pages. Compatible surfaces of other
// platforms are added beside it over the same store.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/webhook"

	"github.com/switchboard-go/switchboard/telemetry"
)

// Config holds what the API needs; cmd/switchboard builds it.
type Config struct {
	Store *store.Store
	Auth  *Authenticator
	Log   *slog.Logger
	// Version and Commit identify the build.
	Version, Commit string
	// Node names this node in the answer leases of sessions (see session.Config.Node) and in
	// knowledge documents' leases (SWITCHBOARD_NODE).
	Node string
	// DefaultRateLimit is requests a minute for keys without a limit of their own.
	DefaultRateLimit int
	// LoginRateLimit is login and refresh attempts a minute from one address.
	LoginRateLimit int
	// AuthFailureLimit is how many wrong credentials one client address may present in a
	// minute before the rest of the minute is refused with 429 (default 30); a credential
	// this node already holds valid is never refused by it.
	AuthFailureLimit int
	// Hub carries the events the API publishes (agent.updated); Streams serves them over
	// SSE and WebSocket. Both may be nil: then there are no stream routes.
	Hub     *realtime.Hub
	Streams *realtime.Server
	// Webhooks run agents' tools; nil makes a runner that refuses private addresses.
	Webhooks *agent.Webhooks
	// Providers resolves each tenant's model, speech and embedding providers (the node's
	// with the tenant's own over them) for the model gateway, the runner's audio parts and
	// knowledge; the node shares it with the agents' runtime. Nil builds one of Models,
	// Speech and Store.
	Providers *provider.Registry
	// Models are the node's model providers, used when Providers is nil; nil answers every
	// model as unsupported. The providers a tenant creates connect through its tenant
	// client (llm.WithTenantClient).
	Models *llm.Registry
	// GatewayBodyBudget bounds the bytes of bodies that gateway requests hold at once
	// (those over 1 MiB leave a sixteenth of it to smaller ones); a request past it is
	// answered 503 with Retry-After. Zero is DefaultGatewayBodyBudget.
	GatewayBodyBudget int64
	// AllowPrivateProviders lets tenants create providers whose base_url is a loopback or
	// private address; it is the operator's switch that built Models' tenant client.
	AllowPrivateProviders bool
	// Calls places and steers live calls (the SIP server); nil answers the call-control
	// routes with 503: telephony is not enabled on this node.
	Calls CallControl
	// RecordingsDir holds the calls' WAV recordings ("<call id>.wav"); empty: none are served.
	RecordingsDir string
	// VoicemailsDir holds the voicemails agents took ("<call id>.wav").
	VoicemailsDir string
	// WebRTC answers browsers' calls; nil: the WebRTC routes say it is not enabled.
	WebRTC WebRTCCalls
	// MediaStreams runs the calls of media-stream sockets; nil answers them with 503.
	MediaStreams MediaStreamCalls
	// Checks reports the node's parts besides the database for /health (the SIP
	// listeners); nil: none.
	Checks func() []HealthCheck
	// Speech are the node's speech providers, used when Providers is nil, for the runner's
	// audio parts (Amarsia); nil has only the built-in voice, so audio parts are refused.
	Speech *speech.Registry
	// AllowPrivateFiles lets the runner fetch the files users name (file_uri) from loopback
	// and private addresses; FileLimits bound each fetch (zero fields: netguard's defaults).
	AllowPrivateFiles bool
	FileLimits        netguard.FileLimits
	// Knowledge is the node's knowledge service; nil builds one over Store (see
	// newKnowledge), whose workers Server.Knowledge().Close stops.
	Knowledge *knowledge.Service
	// KnowledgeMaxUpload bounds an uploaded knowledge document in bytes (zero:
	// knowledge.DefaultMaxUpload).
	KnowledgeMaxUpload int64
	// ChatRateLimit is Alumia's chat requests (POST /api/v1/chat) a minute, per key or user
	// and per client address (zero: DefaultChatRateLimit).
	ChatRateLimit int
	// AmplifierAuthOptional lets keyless requests from loopback reach the root Amplifier
	// paths as the default tenant's admin (SWITCHBOARD_AMPLIFIER_AUTH_REQUIRED=false; see
	// amplifier.go). Off by default: every request needs a key.
	AmplifierAuthOptional bool
	// Metrics is the node's registry, served at /metrics; the API adds its requests, the
	// database pool and the hub to it. Nil makes one of the API's own.
	Metrics *metrics.Registry
	// MetricsToken and MetricsAllow open /metrics beyond loopback (see metricsAccess).
	MetricsToken string
	MetricsAllow []netip.Prefix
	// Draining reports that the node is stopping: /health/ready then answers 503, so that
	// an orchestrator sends it nothing new. Nil: never.
	Draining func() bool
	// Pprof serves the Go runtime's profiles at /debug/pprof/ to the operator
	// (SWITCHBOARD_PPROF; see pprof.go). Off by default: the paths are not found.
	Pprof bool

	// CallWebhooks tune the deliveries of call webhooks (webhooks.go), which the server
	// makes of the Hub's call events and sends while RunCallWebhooks runs.
	CallWebhooks webhook.Options

	// Tracing traces every request (a span per request, a client's traceparent followed;
	// tracing.go). Nil: none.
	Tracing *telemetry.Tracing
}

// Server is the HTTP API of one node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	auth     *Authenticator
	limiter  *RateLimiter
	tokens   *tokenCounter
	webhooks *agent.Webhooks
	usageLog usageBatch
	started  time.Time
	routes   []route
	mux      *http.ServeMux
	handler  http.Handler

	// bodies is the budget of gateway bodies, bodyBufs the buffers of large ones (see
	// readGatewayBody).
	bodies   *bodyBudget
	bodyBufs *bodyBuffers

	// passwordChecks counts the password hashes logins checked (see login).
	passwordChecks atomic.Uint64

	// providers resolves each tenant's models, speech and embeddings: the node's providers
	// with the tenant's own over them (see registryFor).
	providers *provider.Registry
	// modelLists caches what providers answered for their models (see upstreamModels).
	modelLists sync.Map
	// voiceLists caches the speech providers' voices by tenant and provider (voices.go).
	voiceLists sync.Map

	// sessions keeps the tenants' sessions and answers their messages.
	sessions *session.Engine
	// orgs resolves Alumia's X-Alumia-Org slugs (alumia.go); balances caches whether
	// tenants' balances are spent (alumia_chat.go).
	orgs     alumiaOrgs
	balances sync.Map

	// files fetches the files of the runner's parts, within the node's guard and limits.
	files *netguard.FileFetcher

	// conns holds every authenticated long-lived connection under its credential, so that
	// a revocation ends them (see revoke).
	conns *realtime.Connections

	// knowledge keeps the tenants' knowledge bases.
	knowledge *knowledge.Service

	// metrics is the node's registry; metricsHandler serves it.
	metrics        *metrics.Registry
	metricsHandler http.Handler

	openAPIOnce sync.Once
	openAPIJSON []byte

	// hooks are the node's call webhooks (webhooks.go).
	hooks *webhook.Hooks
}

// route is one operation: how it is reached, who may call it, what it takes and answers
// (for the OpenAPI document), and the code that serves it. The router and the document
// are both built from the same list, so they cannot disagree.
type route struct {
	Method, Path string
	Tag, Summary string
	// Scope is the scope a credential needs; "" makes the route public.
	Scope string
	// Request and Response are values of the body types, for the document (nil: none).
	Request, Response any
	// RequestType is the media type of the request body when it is not JSON
	// ("multipart/form-data").
	RequestType string
	// Status is the status of success.
	Status int
	// Query lists query parameters, for the document.
	Query []param
	// QueryToken lets the credential come as ?token= (browsers cannot set headers on a
	// WebSocket or an EventSource).
	QueryToken bool
	Handle     func(w http.ResponseWriter, r *http.Request, p *Principal) error
	// Raw routes write their own non-JSON answers (documentation pages).
	Raw bool
	// ContentType is the media type of a raw route's answer, for the document (default
	// text/html).
	ContentType string
	// Dialect is the error shape of the route: the canonical one, or that of a compatible
	// surface (OpenAI, Anthropic, AmaStudio), whose clients parse their own.
	Dialect dialect
	// Keyless routes take keyless requests from loopback when the operator allows it
	// (Config.AmplifierAuthOptional): the root Amplifier paths.
	Keyless bool
}

type param struct {
	Name, Description string
	Integer           bool
}

// New builds the API server and its routes.
func New(cfg Config) *Server {
	if cfg.DefaultRateLimit == 0 {
		cfg.DefaultRateLimit = 100
	}
	if cfg.LoginRateLimit == 0 {
		cfg.LoginRateLimit = 10
	}
	if cfg.AuthFailureLimit == 0 {
		cfg.AuthFailureLimit = 30
	}
	if cfg.Providers == nil {
		cfg.Providers = provider.New(provider.Config{Store: cfg.Store, Models: cfg.Models, Speech: cfg.Speech,
			TenantClient: netguard.NewTenantClient(cfg.AllowPrivateProviders)})
	}
	if cfg.Webhooks == nil {
		cfg.Webhooks = agent.NewWebhooks(false)
	}
	if cfg.GatewayBodyBudget <= 0 {
		cfg.GatewayBodyBudget = DefaultGatewayBodyBudget
	}
	if cfg.ChatRateLimit <= 0 {
		cfg.ChatRateLimit = DefaultChatRateLimit
	}
	s := &Server{cfg: cfg, log: cfg.Log, store: cfg.Store, auth: cfg.Auth, limiter: NewRateLimiter(), tokens: newTokenCounter(), webhooks: cfg.Webhooks, started: time.Now(),
		bodies: &bodyBudget{limit: cfg.GatewayBodyBudget}, bodyBufs: &bodyBuffers{limit: cfg.GatewayBodyBudget, idle: bodyBuffersIdle}, providers: cfg.Providers}
	s.conns = realtime.NewConnections()
	s.files = netguard.NewFileFetcher(cfg.AllowPrivateFiles, cfg.FileLimits)
	if cfg.Streams != nil {
		s.conns = cfg.Streams.Connections()
	}
	if cfg.Hub != nil {
		s.followRevocations(cfg.Hub)
	}
	s.knowledge = cfg.Knowledge
	if s.knowledge == nil {
		s.knowledge = s.newKnowledge()
	}
	// Sessions' agents search their knowledge as calls' do.
	s.sessions = session.New(session.Config{Store: cfg.Store, Models: s.registryFor, Webhooks: cfg.Webhooks,
		Knowledge: s.knowledge, Publisher: sessionPublisher{s}, Logger: cfg.Log, Node: cfg.Node})
	s.metrics = cfg.Metrics
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	s.metricsHandler = s.metrics.Handler()
	s.hooks = webhook.New(webhook.Config{Options: cfg.CallWebhooks, Store: cfg.Store, Log: cfg.Log, Node: cfg.Node, RecordingsDir: cfg.RecordingsDir})
	if cfg.Hub != nil {
		s.hooks.Observe(cfg.Hub)
	}
	s.registerMetrics()
	s.routes = s.allRoutes()
	s.mux = s.buildMux()
	s.handler = s.recoverer(s.traceRequests(s.logRequests(s.mux)))
	return s
}

// Sessions is the engine of the tenants' sessions; the node shuts it down (Shutdown) after
// the HTTP server, so that answers being made are stored.
func (s *Server) Sessions() *session.Engine { return s.sessions }

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) allRoutes() []route {
	var rs []route
	rs = append(rs, s.metaRoutes()...)
	rs = append(rs, s.healthRoutes()...)
	rs = append(rs, s.metricsRoutes()...)
	rs = append(rs, s.authRoutes()...)
	rs = append(rs, s.tenantRoutes()...)
	rs = append(rs, s.keyRoutes()...)
	rs = append(rs, userResource.routes(s)...)
	rs = append(rs, agentResource.routes(s)...)
	rs = append(rs, workflowResource.routes(s)...)
	rs = append(rs, toolResource.routes(s)...)
	rs = append(rs, phoneNumberResource.routes(s)...)
	rs = append(rs, trunkResource.routes(s)...)
	rs = append(rs, providerResource.routes(s)...)
	rs = append(rs, s.voiceRoutes()...)
	rs = append(rs, s.callRoutes()...)
	rs = append(rs, s.sessionRoutes()...)
	rs = append(rs, s.mediaStreamRoutes()...)
	rs = append(rs, s.webrtcRoutes()...)
	rs = append(rs, s.streamRoutes()...)
	rs = append(rs, s.v1Routes()...)
	rs = append(rs, s.usageRoutes()...)
	rs = append(rs, s.analyticsRoutes()...)
	rs = append(rs, s.alumiaChatRoutes()...)
	rs = append(rs, s.amplifierRoutes()...)
	rs = append(rs, s.amarsiaRoutes()...)
	rs = append(rs, s.knowledgeRoutes()...)
	rs = append(rs, s.amaKnowledgeRoutes()...)
	rs = append(rs, s.pprofRoutes()...)
	rs = append(rs, s.webhookRoutes()...)
	return rs
}

// buildMux registers one handler per path that dispatches on the method, so that a known
// path with an unknown method is a 405 in the error shape, with Allow.
func (s *Server) buildMux() *http.ServeMux {
	mux := http.NewServeMux()
	byPath := map[string]map[string]*route{}
	var paths []string
	for i := range s.routes {
		rt := &s.routes[i]
		if byPath[rt.Path] == nil {
			byPath[rt.Path] = map[string]*route{}
			paths = append(paths, rt.Path)
		}
		byPath[rt.Path][rt.Method] = rt
	}
	for _, path := range paths {
		methods := byPath[path]
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		if _, ok := methods[http.MethodGet]; ok {
			allow = append(allow, http.MethodHead)
		}
		sort.Strings(allow)
		allowHeader := strings.Join(allow, ", ")
		pattern := path
		if path == "/" {
			pattern = "/{$}"
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			m := r.Method
			if m == http.MethodHead {
				m = http.MethodGet
			}
			rt := methods[m]
			if rt == nil {
				w.Header().Set("Allow", allowHeader)
				s.dialectFor(r).write(w, &Error{Status: http.StatusMethodNotAllowed, Code: codeMethod, Message: r.Method + " is not allowed here; allowed: " + allowHeader})
				return
			}
			s.serveRoute(w, r, rt)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.dialectFor(r).write(w, errRouteNotFound) })
	return mux
}

// serveRoute authenticates, rate-limits and authorises a request, then runs the route.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt *route) {
	var p *Principal
	if rt.Scope != "" {
		var err error
		if p, err = s.authenticate(r, rt); err != nil {
			s.fail(w, r, rt, err)
			return
		}
		// The node's requests of itself (smoke tests) were counted once, as the request
		// that made them.
		if principalInContext(r.Context()) == nil {
			if e := s.limitRate(w, p); e != nil {
				rt.Dialect.of(r).write(w, e)
				return
			}
		}
		if !p.Has(rt.Scope) {
			rt.Dialect.of(r).write(w, errForbidden(rt.Scope))
			return
		}
	}
	if err := rt.Handle(w, r, p); err != nil {
		s.fail(w, r, rt, err)
	}
}

// limitRate counts a request against the rate limit of its principal and, for a key made by
// a key, against the limits of every key above it: the keys a key makes share its requests a
// minute, they do not add to them. The headers tell the principal's own limit unless a
// maker's is the one refusing.
func (s *Server) limitRate(w http.ResponseWriter, p *Principal) *Error {
	for _, m := range p.makers {
		limit := m.RateLimit
		if limit == 0 {
			limit = s.cfg.DefaultRateLimit
		}
		if e := s.limiter.limit(w, m.ID, limit); e != nil {
			return e
		}
	}
	limit := p.RateLimit
	if limit == 0 {
		limit = s.cfg.DefaultRateLimit
	}
	return s.limiter.limit(w, p.limiterKey(), limit)
}

// fail answers with the error's classification and logs what the client cannot see.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	e := asError(err)
	switch {
	case e.Status == http.StatusServiceUnavailable:
		s.log.Warn("database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	case e.Status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	}
	rt.Dialect.of(r).write(w, e)
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streaming handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// logRequests gives every request an ID (X-Request-ID, kept when the client sent a sane
// one) and logs it at debug level, or at warn when it failed on the server's side.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if id == "" || len(id) > 64 {
			id = nextRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		s.metrics.HTTP().Start()
		returned := false
		defer func() {
			status := sw.status
			if !returned && status == 0 {
				// The handler panicked before answering: recoverer, above, answers 500.
				status = http.StatusInternalServerError
			}
			s.observe(r, status, time.Since(start))
		}()
		next.ServeHTTP(sw, r)
		returned = true
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		if s.log.Enabled(r.Context(), level) {
			s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"duration", time.Since(start), "request_id", id, "remote", r.RemoteAddr)
		}
	})
}

// recoverer turns a panic in a handler into a 500 in the error shape and a log line with the
// stack; the server goes on.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			// net/http's signal to abort the response silently must reach net/http as it was.
			if v == http.ErrAbortHandler { //nolint:errorlint // recover gives the value itself, never a wrapped error
				panic(v) //nolint:forbidigo // re-raised for net/http, which recovers it
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.dialectFor(r).write(w, &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "Internal server error"})
		}()
		next.ServeHTTP(w, r)
	})
}

// requestIDs are this process's random prefix and a counter: unique, and cheap to make.
var (
	requestIDPrefix = func() string {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) + "-"
	}()
	requestIDCount atomic.Uint64
)

func nextRequestID() string {
	var b [32]byte
	out := append(b[:0], requestIDPrefix...)
	return string(strconv.AppendUint(out, requestIDCount.Add(1), 10))
}

// clientIP is the address a request came from (the proxy's, behind a proxy).
func clientIP(r *http.Request) string { return remoteHost(r.RemoteAddr) }

// remoteHost is the host of a client's address as the HTTP server saw it (host:port).
func remoteHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
