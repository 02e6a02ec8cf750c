package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// The model gateway: /v1/chat/completions (OpenAI's wire format) and /v1/messages
// (Anthropic's) over any configured provider, each translated to and from llm's neutral
// request, so that either kind of client reaches either kind of upstream. A model is
// "provider/model", or "agent/{id}": an agent of the tenant, answering with its
// instructions on its own model.

const codeModelNotFound = "model_not_found"

// call is one request through the gateway: where it goes and what it cost.
type call struct {
	principal *Principal
	surface   string // "openai" or "anthropic"
	asked     string // the model as the client named it
	route     llm.Route
	stream    bool
	started   time.Time
	firstByte time.Duration
	// tools are an agent's tools, run on the model's behalf (agent/{id} models).
	tools map[string]agent.ToolFunc
	// span is the request's trace below its HTTP span (a span that does nothing when
	// untraced).
	span trace.Span
}

// gatewayDialect is one surface of the gateway: how it reads a request into the neutral
// form, and writes a whole answer or a stream in its own wire format.
type gatewayDialect struct {
	surface string
	decode  func(r *http.Request, body []byte) (*llm.Request, gatewayAsk, error)
	whole   func(w http.ResponseWriter, model string, resp *llm.Response)
	stream  func(s *Server, w http.ResponseWriter, r *http.Request, c *call, st llm.Stream, ask gatewayAsk) llm.Usage
}

// gatewayAsk is what a request asked beyond the neutral form.
type gatewayAsk struct {
	model        string
	stream       bool
	includeUsage bool
}

// serveGateway serves one surface: decode, check the key's limits, resolve the model, ask
// the provider (with fallbacks and the agent's tools), answer, and record the usage.
func (s *Server) serveGateway(d gatewayDialect) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		body, release, err := s.readGatewayBody(w, r)
		if err != nil {
			return err
		}
		// The body's reservation and buffer are held until the answer is complete: the
		// request's images and long texts lie in the buffer (bodyString) till then. This
		// defer runs after those that close the provider's streams.
		defer release()
		req, ask, err := d.decode(r, body)
		if err != nil {
			return err
		}
		if err := s.checkSpend(r.Context(), w, p); err != nil {
			return err
		}
		c := &call{principal: p, surface: d.surface, asked: ask.model, stream: ask.stream, started: time.Now()}
		ctx, span := traceGateway(r.Context(), c)
		defer span.End()
		c.span = span
		if err := s.resolve(ctx, c, req); err != nil {
			return err
		}
		if err := s.refuseSpent(ctx, p.TenantID, ask.model, c.route.Price); err != nil {
			return err
		}
		if !ask.stream {
			resp, err := s.complete(ctx, c, req)
			if err != nil {
				s.record(c, llm.Usage{}, asError(err).Status)
				return err
			}
			c.firstByte = time.Since(c.started)
			d.whole(w, ask.model, resp)
			s.record(c, resp.Usage, http.StatusOK)
			return nil
		}
		st, err := s.stream(ctx, c, req)
		if err != nil {
			s.record(c, llm.Usage{}, asError(err).Status)
			return err
		}
		defer st.Close()
		s.record(c, d.stream(s, w, r, c, st, ask), http.StatusOK)
		return nil
	}
}

// resolve finds the provider of a model name, and for "agent/{id}" folds the agent into
// the request (its instructions before the client's system prompt, its temperature when
// the client set none).
func (s *Server) resolve(ctx context.Context, c *call, req *llm.Request) (err error) {
	c.route, err = s.resolveRoute(ctx, c, req)
	return err
}

func (s *Server) resolveRoute(ctx context.Context, c *call, req *llm.Request) (llm.Route, error) {
	p := c.principal
	name := req.Model
	if id, ok := strings.CutPrefix(name, "agent/"); ok {
		a, err := store.Get[store.Agent](ctx, s.store, p.TenantID, id)
		if errors.Is(err, store.ErrNotFound) {
			// An unknown model is a bad request, as an unknown provider is (the issue: 400).
			return llm.Route{}, &Error{Status: http.StatusBadRequest, Code: codeModelNotFound, Message: "The model " + name + " does not exist: no such agent",
				Details: []store.FieldError{{Field: "model", Message: "no such agent"}}}
		}
		if err != nil {
			return llm.Route{}, err
		}
		if a.Instructions != "" {
			req.System = strings.TrimSpace(a.Instructions + "\n\n" + req.System)
		}
		if req.Temperature == nil {
			t := a.Temperature
			req.Temperature = &t
		}
		if err := s.addAgentTools(ctx, c, a, req); err != nil {
			return llm.Route{}, err
		}
		name = a.Model
	}
	reg, err := s.registryFor(ctx, p.TenantID)
	if err != nil {
		return llm.Route{}, err
	}
	rt, err := reg.Route(name)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "llm:") {
			msg = msg[i+2:]
		}
		switch {
		case errors.Is(err, llm.ErrModelName), errors.Is(err, llm.ErrUnknownProvider):
			return llm.Route{}, &Error{Status: http.StatusBadRequest, Code: codeModelNotFound,
				Message: "Unsupported model " + req.Model + ": " + msg, Details: []store.FieldError{{Field: "model", Message: msg}}}
		case errors.Is(err, llm.ErrNoKey):
			return llm.Route{}, &Error{Status: http.StatusBadRequest, Code: codeModelNotFound,
				Message: "The provider of " + req.Model + " has no API key configured: " + msg, Details: []store.FieldError{{Field: "model", Message: msg}}}
		}
		return llm.Route{}, err
	}
	return rt, nil
}

// upstreamError turns a provider's failure into the gateway's answer: 502 with the
// upstream's message; a request the upstream refused as invalid stays a 400.
func upstreamError(err error) error {
	var ue *llm.UpstreamError
	if errors.As(err, &ue) {
		status := http.StatusBadGateway
		if ue.Status == http.StatusBadRequest || ue.Status == http.StatusUnprocessableEntity {
			status = http.StatusBadRequest
		}
		msg := ue.Message
		if msg == "" {
			msg = ue.Error()
		}
		return &Error{Status: status, Code: "upstream_error", Message: "Upstream provider error: " + msg}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, llm.ErrInvalidRequest) {
		return &Error{Status: http.StatusBadRequest, Code: codeValidation, Message: err.Error()}
	}
	return &Error{Status: http.StatusBadGateway, Code: "upstream_error", Message: "Upstream provider error: " + err.Error()}
}

// complete asks for a whole answer, trying the model's fallbacks when it fails.
func (s *Server) complete(ctx context.Context, c *call, req *llm.Request) (*llm.Response, error) {
	return withFallbacks(ctx, s, c, req, func(ctx context.Context, p llm.Provider, r *llm.Request) (*llm.Response, error) {
		if len(c.tools) == 0 {
			return p.Complete(ctx, r)
		}
		st, err := agent.WithTools(ctx, p, r, c.tools)
		if err != nil {
			return nil, err
		}
		return llm.Collect(st)
	})
}

// stream opens an answer as it is written. Fallbacks are tried only while nothing has been
// sent to the client, which is the case until the stream opens.
func (s *Server) stream(ctx context.Context, c *call, req *llm.Request) (llm.Stream, error) {
	return withFallbacks(ctx, s, c, req, func(ctx context.Context, p llm.Provider, r *llm.Request) (llm.Stream, error) {
		if len(c.tools) == 0 {
			return p.Stream(ctx, r)
		}
		return agent.WithTools(ctx, p, r, c.tools)
	})
}

// withFallbacks asks the call's route, then each of its fallbacks, until one answers; the
// call's route becomes the one that did.
func withFallbacks[T any](ctx context.Context, s *Server, c *call, req *llm.Request, ask func(context.Context, llm.Provider, *llm.Request) (T, error)) (T, error) {
	var (
		zero    T
		lastErr error
	)
	for _, rt := range s.candidates(ctx, c) {
		r := *req
		r.Model = rt.Upstream
		out, err := askTraced(ctx, rt, func(ctx context.Context) (T, error) { return ask(ctx, rt.Provider, &r) })
		if err == nil {
			c.route = rt
			return out, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		s.metrics.Gateway().Failed(rt.ProviderName)
	}
	return zero, upstreamError(lastErr)
}

// askTraced is one ask of an upstream, a span of its own below the gateway request's (each
// fallback tried is one more), so that the provider's traceparent names the ask it answers.
// A stream's span covers its opening.
func askTraced[T any](ctx context.Context, rt llm.Route, ask func(context.Context) (T, error)) (T, error) {
	ctx, span := telemetry.Start(ctx, "gateway upstream", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("gen_ai.provider.name", rt.ProviderName), attribute.String("gen_ai.request.model", rt.Upstream))
	}
	out, err := ask(ctx)
	telemetry.Fail(span, err)
	return out, err
}

// candidates are the route and then its fallbacks that resolve.
func (s *Server) candidates(ctx context.Context, c *call) []llm.Route {
	out := []llm.Route{c.route}
	reg, err := s.registryFor(ctx, c.principal.TenantID)
	if err != nil {
		return out
	}
	for _, fb := range c.route.Fallbacks {
		if r, err := reg.Route(fb); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// registryFor returns the registry a tenant's requests resolve models in: the node's
// providers, with the tenant's own over them (a tenant's "openai" replaces the server's).
// Stored providers that cannot be built are the client's to fix: 400.
func (s *Server) registryFor(ctx context.Context, tenantID string) (*llm.Registry, error) {
	reg, err := s.providers.Models(ctx, tenantID)
	if errors.Is(err, provider.ErrUnusable) {
		return nil, &Error{Status: http.StatusBadRequest, Code: codeModelNotFound,
			Message: "The tenant's model providers are not usable: " + strings.TrimPrefix(err.Error(), provider.ErrUnusable.Error()+": ")}
	}
	return reg, err
}

// record stores what a gateway request used; it runs after the answer is out.
func (s *Server) record(c *call, usage llm.Usage, status int) {
	if c.span != nil {
		endGateway(c.span, c, usage, status)
	}
	cost := 0.0
	if c.route.Price != nil {
		cost = c.route.Price.Cost(usage)
	}
	s.metrics.Gateway().Answered(c.route.ProviderName, status, int64(usage.InputTokens), int64(usage.OutputTokens), cost)
	if s.store == nil {
		return
	}
	u := &store.UsageRecord{
		KeyID: c.principal.KeyID, UserID: c.principal.UserID, Surface: c.surface,
		Provider: c.route.ProviderName, Model: c.asked, UpstreamModel: c.route.Upstream,
		InputTokens: usage.InputTokens, OutputTokens: usage.OutputTokens, CostUSD: cost,
		LatencyMS: int(time.Since(c.started).Milliseconds()), TTFTMS: int(c.firstByte.Milliseconds()),
		Status: status, Stream: c.stream,
	}
	u.TenantID = c.principal.TenantID
	if keys := c.principal.keyLimits(); len(keys) > 0 {
		for _, k := range keys {
			s.tokens.add(k.ID, usage.InputTokens+usage.OutputTokens)
		}
	} else {
		s.tokens.add(c.principal.limiterKey(), usage.InputTokens+usage.OutputTokens)
	}
	s.usageLog.add(u)
	s.flushUsage()
}

// usageBatch gathers usage records while one request writes them: under load, many
// requests' records go in one insert instead of a transaction each.
type usageBatch struct {
	mu       sync.Mutex
	pending  []*store.UsageRecord
	flushing bool
}

func (b *usageBatch) add(u *store.UsageRecord) {
	b.mu.Lock()
	b.pending = append(b.pending, u)
	b.mu.Unlock()
}

// flushUsage writes what is pending, unless another request is writing already, in which
// case that request writes this one's record too. A request alone writes its own before it
// ends, so what a client did is in /api/v1/usage when its answer is complete.
//
//nolint:contextcheck // a batch may hold other requests' records; it has a deadline of its own
func (s *Server) flushUsage() {
	b := &s.usageLog
	for {
		b.mu.Lock()
		if b.flushing || len(b.pending) == 0 {
			b.mu.Unlock()
			return
		}
		batch := b.pending
		b.pending, b.flushing = nil, true
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.store.CreateUsage(ctx, batch); err != nil {
			s.log.Warn("usage not recorded", "records", len(batch), "err", err)
		}
		cancel()
		b.mu.Lock()
		b.flushing = false
		b.mu.Unlock()
	}
}

// checkSpend refuses a request of a key whose tokens this minute or whose spending budget
// are used up, or those of any key above it in its chain of makers: what a key made by a key
// uses counts against its maker's limits too (see recordUsage), so the keys a key makes can
// never together spend more than it may.
func (s *Server) checkSpend(ctx context.Context, w http.ResponseWriter, p *Principal) error {
	for _, k := range p.keyLimits() {
		if k.TokenLimit > 0 {
			if used, reset := s.tokens.used(k.ID); used >= k.TokenLimit {
				retry := int(time.Until(reset).Seconds()) + 1
				w.Header().Set("Retry-After", strconv.Itoa(retry))
				return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimit,
					Message: "Token limit of " + strconv.Itoa(k.TokenLimit) + " tokens a minute reached" + ofMaker(p, k) + "; retry after " + strconv.Itoa(retry) + " s"}
			}
		}
		if k.BudgetUSD > 0 {
			spent, err := s.store.SpentUSDTree(ctx, p.TenantID, k.ID)
			if err != nil {
				return err
			}
			if spent >= k.BudgetUSD {
				return &Error{Status: http.StatusPaymentRequired, Code: "budget_exhausted",
					Message: "The spending budget of this key is used up" + ofMaker(p, k)}
			}
		}
	}
	return nil
}

// ofMaker says, in a refusal, that the limit reached is that of a key above p's in its
// chain of makers.
func ofMaker(p *Principal, k *store.APIKey) string {
	if k == p.key {
		return ""
	}
	return " (the limit of " + k.ID + ", the key that made it or one above it)"
}

// addAgentTools offers the model the agent's tools and makes the call run them: their
// webhooks are called on the model's behalf, and only the answer reaches the client.
func (s *Server) addAgentTools(ctx context.Context, c *call, a *store.Agent, req *llm.Request) error {
	for _, id := range a.ToolIDs {
		t, err := store.Get[store.Tool](ctx, s.store, c.principal.TenantID, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since: the agent does without it
		}
		if err != nil {
			return err
		}
		params, _ := json.Marshal(t.Parameters)
		req.Tools = append(req.Tools, llm.Tool{Name: t.Name, Description: t.Description, Parameters: params})
		if c.tools == nil {
			c.tools = map[string]agent.ToolFunc{}
		}
		c.tools[t.Name] = func(ctx context.Context, args string) (string, error) {
			return s.webhooks.Run(ctx, t, args)
		}
	}
	return nil
}
