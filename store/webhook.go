package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/uptrace/bun"
)

const prefixWebhookDelivery = "whd_"

// The states of a webhook delivery.
const (
	// DeliveryPending waits for its next attempt (NextAttemptAt), or is being attempted.
	DeliveryPending = "pending"
	// DeliveryDelivered was answered 2xx.
	DeliveryDelivered = "delivered"
	// DeliveryFailed was given up: its attempts ran out, or it can never succeed (an
	// address the node may not reach).
	DeliveryFailed = "failed"
)

// WebhookDelivery is one event of a call to post to a call server (CallServer): written
// when the event happens, then attempted by whichever node claims it until the server
// answers 2xx or the attempts run out. Payload is the body exactly as it is posted.
type WebhookDelivery struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`
	Row

	CallID string `bun:"call_id,notnull" json:"call_id"`
	Event  string `bun:"event,notnull" json:"event"`
	URL    string `bun:"url,notnull" json:"url"`
	// Source is whose server it is: "agent" or "phone_number", and SourceID which.
	Source   string `bun:"source,notnull" json:"source"`
	SourceID string `bun:"source_id,notnull" json:"source_id"`
	Status   string `bun:"status,notnull" json:"status"`
	// Attempts counts the attempts begun; ResponseCode is the last answer's HTTP status (0:
	// none), LastError why the last attempt failed.
	Attempts     int    `bun:"attempts,notnull" json:"attempts"`
	ResponseCode int    `bun:"response_code,notnull" json:"response_code"`
	LastError    string `bun:"last_error,notnull" json:"last_error"`
	// NextAttemptAt is when a pending delivery is next attempted (nil once it is not).
	NextAttemptAt *time.Time      `bun:"next_attempt_at" json:"next_attempt_at"`
	DeliveredAt   *time.Time      `bun:"delivered_at" json:"delivered_at"`
	Payload       json.RawMessage `bun:"payload,notnull" json:"payload"`
	// SecretEnc is the server's secret (sealed) when the event happened.
	SecretEnc string `bun:"secret_enc,notnull" json:"-"`
	// DedupeKey makes an event's delivery to one server one row, however many nodes saw
	// the event.
	DedupeKey string `bun:"dedupe_key,notnull" json:"-"`
}

// NewWebhookDeliveryID returns the ID of a delivery to be enqueued; a payload names it, so
// that its receiver can tell a retry from a new event.
func NewWebhookDeliveryID() string { return newID(prefixWebhookDelivery) }

// EnqueueWebhook writes d as pending, due now, under d.TenantID with d.ID (a new one when
// empty). A delivery of the same DedupeKey already there is left as it is: enqueued
// reports whether d was written.
func EnqueueWebhook(ctx context.Context, s *Store, d *WebhookDelivery) (enqueued bool, err error) {
	now := s.now()
	if d.ID == "" {
		d.ID = NewWebhookDeliveryID()
	}
	d.CreatedAt, d.UpdatedAt, d.Status, d.NextAttemptAt = now, now, DeliveryPending, &now
	res, err := s.db.NewInsert().Model(d).On("CONFLICT (dedupe_key) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, classify(err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClaimWebhooks takes up to limit pending deliveries that are due, oldest due first, and
// holds each for lease: its next attempt is put off by lease and its attempts counted, so
// that no other node (nor this one) attempts it meanwhile, and a node that dies while
// attempting leaves it due again once the lease runs out. Each claim is a compare-and-set
// on the attempts, so two nodes never take the same delivery.
func ClaimWebhooks(ctx context.Context, s *Store, lease time.Duration, limit int) ([]WebhookDelivery, error) {
	now := s.now()
	var cand []WebhookDelivery
	err := s.db.NewSelect().Model(&cand).Where("status = ?", DeliveryPending).Where("next_attempt_at <= ?", now).
		Order("next_attempt_at ASC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	until := now.Add(lease)
	claimed := cand[:0]
	for _, d := range cand {
		res, err := s.db.NewUpdate().Model((*WebhookDelivery)(nil)).
			Set("attempts = attempts + 1").Set("next_attempt_at = ?", until).Set("updated_at = ?", now).
			Where("id = ?", d.ID).Where("status = ?", DeliveryPending).Where("attempts = ?", d.Attempts).Exec(ctx)
		if err != nil {
			return claimed, classify(err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			d.Attempts++
			d.NextAttemptAt, d.UpdatedAt = &until, now
			claimed = append(claimed, d)
		}
	}
	return claimed, nil
}

// WebhookAttempt is how one attempt of a delivery went.
type WebhookAttempt struct {
	// ResponseCode is the server's HTTP status (0: no answer); Error why it failed.
	ResponseCode int
	Error        string
	// Status is the delivery's state after it; Next, for a pending one, its next attempt.
	Status string
	Next   time.Time
}

// FinishWebhookAttempt records the attempt that claimed d (its attempts as claimed): a
// delivery redelivered or claimed again meanwhile is left to that.
func FinishWebhookAttempt(ctx context.Context, s *Store, d *WebhookDelivery, a WebhookAttempt) error {
	now := s.now()
	q := s.db.NewUpdate().Model((*WebhookDelivery)(nil)).Set("status = ?", a.Status).
		Set("response_code = ?", a.ResponseCode).Set("last_error = ?", a.Error).Set("updated_at = ?", now)
	switch a.Status {
	case DeliveryPending:
		q = q.Set("next_attempt_at = ?", a.Next.UTC())
	case DeliveryDelivered:
		q = q.Set("next_attempt_at = NULL").Set("delivered_at = ?", now)
	default:
		q = q.Set("next_attempt_at = NULL")
	}
	_, err := q.Where("id = ?", d.ID).Where("status = ?", DeliveryPending).Where("attempts = ?", d.Attempts).Exec(ctx)
	return classify(err)
}

// WebhookFilter narrows a list of deliveries: to a call's, and to a status ("" for any).
type WebhookFilter struct {
	CallID string
	Status string
}

// ListWebhookDeliveries reads a page of the tenant's deliveries, newest first, and how
// many there are.
func ListWebhookDeliveries(ctx context.Context, s *Store, tenantID string, f WebhookFilter, page Page) ([]WebhookDelivery, int, error) {
	items := make([]WebhookDelivery, 0, page.Limit)
	q := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID)
	if f.CallID != "" {
		q = q.Where("call_id = ?", f.CallID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	total, err := q.Order("created_at DESC", "id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// GetWebhookDelivery reads one of the tenant's deliveries; another tenant's is ErrNotFound.
func GetWebhookDelivery(ctx context.Context, s *Store, tenantID, id string) (*WebhookDelivery, error) {
	if !validID(prefixWebhookDelivery, id) {
		return nil, ErrNotFound
	}
	d := new(WebhookDelivery)
	if err := s.db.NewSelect().Model(d).Where("id = ?", id).Where("tenant_id = ?", tenantID).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return d, nil
}

// RedeliverWebhook makes one of the tenant's deliveries pending and due now with its
// attempts counted afresh, whatever became of it; another tenant's is ErrNotFound.
func RedeliverWebhook(ctx context.Context, s *Store, tenantID, id string) (*WebhookDelivery, error) {
	if !validID(prefixWebhookDelivery, id) {
		return nil, ErrNotFound
	}
	now := s.now()
	res, err := s.db.NewUpdate().Model((*WebhookDelivery)(nil)).Set("status = ?", DeliveryPending).
		Set("attempts = 0").Set("next_attempt_at = ?", now).Set("updated_at = ?", now).
		Where("id = ?", id).Where("tenant_id = ?", tenantID).Exec(ctx)
	if err != nil {
		return nil, classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return GetWebhookDelivery(ctx, s, tenantID, id)
}
