package sip

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// CallRecord is a call's record while the call goes on: kept under its own lock, written
// to the store at each change of state, and published as the call's events. SIP calls and
// the calls of browsers and media sockets share it.
type CallRecord struct {
	st      *store.Store
	events  Publisher
	log     *slog.Logger
	onEvent func(typ string, data any)

	mu  sync.Mutex
	rec store.Call
}

// NewCallRecord keeps rec, which the store already holds when st is set. events (when set)
// receives the call's events, and onEvent (when set) each of them first: a transport that
// carries them to its client.
func NewCallRecord(rec store.Call, st *store.Store, events Publisher, log *slog.Logger, onEvent func(typ string, data any)) *CallRecord {
	return &CallRecord{st: st, events: events, log: log, onEvent: onEvent, rec: rec}
}

// Record is a snapshot of the call's record.
func (r *CallRecord) Record() store.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot()
}

// snapshot copies the record, maps included; r.mu is held.
func (r *CallRecord) snapshot() store.Call {
	s := r.rec
	s.Metadata, s.Report = maps.Clone(s.Metadata), maps.Clone(s.Report)
	return s
}

// SetReport attaches the handler's end-of-call report to the record; it is written, with
// the call's ended reason and duration, and published with call.ended when the call ends.
// A handler sets it before it returns.
func (r *CallRecord) SetReport(report map[string]any) {
	r.edit(func(rec *store.Call) { rec.Report = report })
}

// SetMetadata sets one key of the record's metadata (written when the call's state is next
// written, at the latest when it ends).
func (r *CallRecord) SetMetadata(key string, value any) {
	r.edit(func(rec *store.Call) {
		if rec.Metadata == nil {
			rec.Metadata = map[string]any{}
		}
		rec.Metadata[key] = value
	})
}

// edit changes the record under its lock without writing it.
func (r *CallRecord) edit(fn func(rec *store.Call)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.rec)
}

// Update changes the record under its lock and writes it, when a store keeps it. The state
// is handed to the store's call writer under the lock, so that states are written in the
// order they were made; one the database refuses is retried by the store until it returns
// (see store.UpdateCallState), long after the call is gone if need be.
func (r *CallRecord) Update(ctx context.Context, fn func(rec *store.Call)) {
	r.mu.Lock()
	fn(&r.rec)
	if r.st == nil {
		r.mu.Unlock()
		return
	}
	w := store.QueueCallState(r.st, &r.rec)
	status := r.rec.Status
	r.mu.Unlock()
	err := w.Wait(context.WithoutCancel(ctx))
	switch {
	case err == nil:
	case errors.Is(err, store.ErrCallQueued):
		r.log.Info("call record queued until the database returns", "status", status, "error", err)
	default:
		r.log.Warn("call record not updated", "status", status, "error", err)
	}
}

// Ended writes the record's final state: ended now with reason, completed when it was
// answered (with its duration) or else unanswered (the status of a call that never was),
// its media quality when known, and the handler's report given the call's own ending.
func (r *CallRecord) Ended(ctx context.Context, reason, unanswered string, quality *store.CallQuality) {
	now := time.Now().UTC()
	r.Update(ctx, func(rec *store.Call) {
		rec.EndedAt = &now
		rec.EndedReason = reason
		if rec.AnsweredAt != nil {
			rec.Status = store.CallCompleted
			rec.DurationSeconds = now.Sub(*rec.AnsweredAt).Seconds()
		} else {
			rec.Status = unanswered
		}
		if quality != nil {
			rec.Quality = *quality
		}
		if len(rec.Report) > 0 {
			rec.Report["ended_reason"] = reason
			rec.Report["duration_seconds"] = rec.DurationSeconds
		}
	})
}

// Publish sends an event about the call to its topic (and so, through the hub, to the
// tenant's topic that dashboards follow).
func (r *CallRecord) Publish(typ string, data any) {
	if r.onEvent != nil {
		r.onEvent(typ, data)
	}
	if r.events == nil {
		return
	}
	r.mu.Lock()
	tenantID, id := r.rec.TenantID, r.rec.ID
	r.mu.Unlock()
	// The hub carries every event of a call's topic to the tenant's topic too, once.
	if err := r.events.Publish(tenantID, "call:"+id, typ, data); err != nil {
		r.log.Warn("call event not published", "type", typ, "error", err)
	}
}

// PublishEnded publishes call.ended for a call that ended without its carrier: a call of a
// lost node, failed by the node that noticed (store.Heartbeat's OnLost). Subscribers see it
// on the same topics as any other call's end.
func PublishEnded(events Publisher, rec store.Call) error {
	return events.Publish(rec.TenantID, "call:"+rec.ID, EventCallEnded, rec)
}
