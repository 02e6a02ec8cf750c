package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/store"
)

// leaseMargin is added to an attempt's timeout to make its claim's lease: the time after
// which a delivery whose node died while attempting it is due again.
const leaseMargin = 30 * time.Second

// maxErrorBody is how much of a failed answer's body last_error keeps.
const maxErrorBody = 256

// Run sends the deliveries that are due, this node's and any other's, until ctx ends; then
// it waits for the attempts in flight (each bounded by Timeout). A delivery whose attempt
// ctx cut short stays pending, due at once: the next node to run picks it up.
func (h *Hooks) Run(ctx context.Context) {
	sem := make(chan struct{}, h.cfg.Concurrency)
	var inflight sync.WaitGroup
	defer h.client.CloseIdleConnections()
	defer inflight.Wait()
	tick := time.NewTicker(h.cfg.PollEvery)
	defer tick.Stop()
	for {
		for ctx.Err() == nil {
			free := cap(sem) - len(sem)
			if free == 0 {
				break
			}
			due, err := h.claim(ctx, free)
			for i := range due {
				sem <- struct{}{}
				d := due[i]
				inflight.Go(func() {
					defer func() { <-sem }()
					h.attempt(ctx, &d)
				})
			}
			if err != nil {
				h.log.Warn("call webhooks: the queue is not readable", "error", err)
				break
			}
			if len(due) < free {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.wake:
		}
	}
}

// claim takes up to n due deliveries. It is not cut short by ctx: a claim whose answer
// was lost would hold its deliveries for a lease with no attempt; what it took is attempted
// (at once recorded due again, when the node is stopping).
func (h *Hooks) claim(ctx context.Context, n int) ([]store.WebhookDelivery, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Timeout)
	defer cancel()
	return store.ClaimWebhooks(cctx, h.cfg.Store, h.cfg.Timeout+leaseMargin, n)
}

// attempt posts d once and records how it went.
func (h *Hooks) attempt(ctx context.Context, d *store.WebhookDelivery) {
	code, err := h.post(ctx, d)
	a := store.WebhookAttempt{ResponseCode: code, Status: store.DeliveryDelivered}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// The node is stopping: the delivery is due again at once, for the next node to run.
		a = store.WebhookAttempt{Status: store.DeliveryPending, Next: time.Now(), Error: "the node stopped during the attempt"}
	case errors.Is(err, netguard.ErrPrivateAddress):
		// It would be refused again: no retry can succeed while the operator forbids it.
		a.Status, a.Error = store.DeliveryFailed, "the server's address is not public, and this node does not post to loopback or private addresses (SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS)"
	case d.Attempts >= h.cfg.MaxAttempts:
		a.Status, a.Error = store.DeliveryFailed, err.Error()
	default:
		a.Status, a.Error, a.Next = store.DeliveryPending, err.Error(), time.Now().Add(h.backoff(d.Attempts))
	}
	// The outcome is written even when the node is stopping, within its own bound.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := store.FinishWebhookAttempt(wctx, h.cfg.Store, d, a); err != nil {
		h.log.Warn("call webhook attempt not recorded; it is attempted again when its claim runs out",
			"delivery", d.ID, "error", err)
	} else if o := h.events.Load(); o != nil {
		ev := DeliveryEvent{ID: d.ID, CallID: d.CallID, Event: d.Event, Status: a.Status, Attempts: d.Attempts,
			ResponseCode: a.ResponseCode, LastError: a.Error}
		if err := (*o).Publish(d.TenantID, call.Topic(d.CallID), EventDelivery, ev); err != nil {
			h.log.Warn("call webhook attempt not published", "delivery", d.ID, "error", err)
		}
	}
	if a.Status == store.DeliveryFailed {
		h.log.Warn("call webhook given up", "delivery", d.ID, "tenant_id", d.TenantID, "call_id", d.CallID,
			"event", d.Event, "attempts", d.Attempts, "error", a.Error)
	}
}

// backoff is the wait after the attempts-th failed attempt: Backoff doubled per attempt
// after the first, at most MaxBackoff, jittered to between half and all of it.
func (h *Hooks) backoff(attempts int) time.Duration {
	d := h.cfg.Backoff
	for i := 1; i < attempts && d < h.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, h.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// post sends d, signed now, and returns the answer's status; an error unless it is 2xx.
func (h *Hooks) post(ctx context.Context, d *store.WebhookDelivery) (int, error) {
	secret, err := store.OpenSecret(h.cfg.Store, d.SecretEnc)
	if err != nil {
		return 0, fmt.Errorf("the server's secret cannot be opened: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Webhooks/1")
	req.Header.Set(HeaderEvent, d.Event)
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, d.Payload))
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(err, netguard.ErrPrivateAddress) {
			return 0, netguard.ErrPrivateAddress
		}
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %s", h.cfg.Timeout)
		}
		return 0, fmt.Errorf("the server could not be reached: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := "answered " + resp.Status
		if s := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD")); s != "" {
			msg += ": " + s
		}
		return resp.StatusCode, errors.New(msg)
	}
	return resp.StatusCode, nil
}
