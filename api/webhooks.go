package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"

	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/store"
)

// Call webhooks: where an agent's or a phone number's calls' events go is their server
// field (store.CallServer); what became of each event is a delivery, listed and redelivered
// here. The node's webhook.Hooks turns events into deliveries and sends them
// (RunCallWebhooks).

func (s *Server) webhookRoutes() []route {
	const tag = "Call webhooks"
	item := "/api/v1/webhook-deliveries/{id}"
	return []route{
		{Method: http.MethodGet, Path: "/api/v1/webhook-deliveries", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List the deliveries of call webhooks, newest first: each event posted (or to post) to an agent's or a phone number's server, with its status, attempts, last answer and error",
			Query: append([]param{{Name: "call_id", Description: "Only the deliveries of this call"},
				{Name: "status", Description: "Only deliveries in this state: pending, delivered or failed"}}, pageQuery...),
			Response: List[store.WebhookDelivery]{}, Handle: s.listWebhookDeliveries},
		{Method: http.MethodGet, Path: item, Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a delivery of a call webhook", Response: store.WebhookDelivery{}, Handle: s.getWebhookDelivery},
		{Method: http.MethodPost, Path: item + "/redeliver", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusAccepted,
			Summary:  "Post a delivery again: it becomes pending, due now, with its attempts counted afresh (the same body, signed anew)",
			Response: store.WebhookDelivery{}, Handle: s.redeliverWebhook},
	}
}

var deliveryStatuses = []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	f := store.WebhookFilter{CallID: r.URL.Query().Get("call_id"), Status: r.URL.Query().Get("status")}
	if f.Status != "" && !slices.Contains(deliveryStatuses, f.Status) {
		return errValidation("status", "must be pending, delivered or failed")
	}
	items, total, err := store.ListWebhookDeliveries(r.Context(), s.store, p.TenantID, f, page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.WebhookDelivery]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) getWebhookDelivery(w http.ResponseWriter, r *http.Request, p *Principal) error {
	d, err := store.GetWebhookDelivery(r.Context(), s.store, p.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Webhook delivery")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) redeliverWebhook(w http.ResponseWriter, r *http.Request, p *Principal) error {
	d, err := store.RedeliverWebhook(r.Context(), s.store, p.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Webhook delivery")
	}
	if err != nil {
		return err
	}
	s.hooks.Wake()
	writeJSON(w, http.StatusAccepted, d)
	return nil
}

// RunCallWebhooks sends the node's call-webhook deliveries until ctx ends (see
// webhook.Hooks.Run); the node runs it once.
func (s *Server) RunCallWebhooks(ctx context.Context) { s.hooks.Run(ctx) }

// StartCallWebhooks runs RunCallWebhooks, and beside it each of with (the node's other
// background writers), each on a goroutine of its own until ctx ends; the channel is
// closed once all returned: the attempts in flight are recorded by then.
func (s *Server) StartCallWebhooks(ctx context.Context, with ...func(context.Context)) chan struct{} {
	var wg sync.WaitGroup
	wg.Go(func() { s.hooks.Run(ctx) })
	for _, f := range with {
		wg.Go(func() { f(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// checkCallServer refuses a server whose URL is obviously not public (a loopback, private or
// link-local address, localhost) unless the operator allows private webhooks. It is a
// courtesy: every delivery is checked where it connects, whatever a name resolves to.
func checkCallServer(s *Server, srv *store.CallServer) error {
	if srv == nil || srv.URL == "" || s.cfg.CallWebhooks.AllowPrivate {
		return nil
	}
	if err := netguard.CheckURL(srv.URL); errors.Is(err, netguard.ErrPrivateAddress) {
		return errValidation("server.url", "must be a public address: this server does not post call webhooks to loopback, private or link-local addresses (SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS)")
	}
	return nil
}

// checkAgent vets an agent's server, then its model (checkAgentModel), then its voice and
// transcriber (checkAgentSpeech).
func checkAgent(ctx context.Context, s *Server, tenantID string, a, before *store.Agent) error {
	if err := checkCallServer(s, a.Server); err != nil {
		return err
	}
	if err := checkAgentModel(ctx, s, tenantID, a); err != nil {
		return err
	}
	return checkAgentSpeech(ctx, s, tenantID, a, before)
}

// checkNumberServer is checkCallServer of a phone number's server.
func checkNumberServer(_ context.Context, s *Server, _ string, p, _ *store.PhoneNumber) error {
	return checkCallServer(s, p.Server)
}
