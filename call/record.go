package call

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Recorder keeps a call's record while the call goes on: under its own lock, written to the
// store at each change of state (write-behind: see Update), and published as the call's
// events. Every transport's calls share it.
type Recorder struct {
	st      *store.Store
	events  Publisher
	log     *slog.Logger
	onEvent func(typ string, data any)

	mu  sync.Mutex
	rec store.Call
}

// NewRecorder keeps rec, which the store already holds when st is set. events (when set)
// receives the call's events, and onEvent (when set) each of them first: a transport that
// carries them to its client.
func NewRecorder(rec store.Call, st *store.Store, events Publisher, log *slog.Logger, onEvent func(typ string, data any)) *Recorder {
	return &Recorder{st: st, events: events, log: log, onEvent: onEvent, rec: rec}
}

// Record is a snapshot of the call's record.
func (r *Recorder) Record() store.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot()
}

// snapshot copies the record, maps included; r.mu is held.
func (r *Recorder) snapshot() store.Call {
	s := r.rec
	s.Metadata, s.Report = maps.Clone(s.Metadata), maps.Clone(s.Report)
	return s
}

// SetReport attaches the handler's end-of-call report to the record; it is written, with
// the call's ended reason and duration, and published with call.ended when the call ends.
// A handler sets it before it returns.
func (r *Recorder) SetReport(report map[string]any) {
	r.Edit(func(rec *store.Call) { rec.Report = report })
}

// SetUsage keeps what the call's conversation used and what its model and speech cost; it
// is written when the call ends, with the call's telephony added (Ended).
func (r *Recorder) SetUsage(u store.CallUsage) {
	r.Edit(func(rec *store.Call) { rec.CallUsage = u })
}

// SetMetadata sets one key of the record's metadata (written when the call's state is next
// written, at the latest when it ends).
func (r *Recorder) SetMetadata(key string, value any) {
	r.Edit(func(rec *store.Call) {
		if rec.Metadata == nil {
			rec.Metadata = map[string]any{}
		}
		rec.Metadata[key] = value
	})
}

// Edit changes the record under its lock without writing it: the change is written with
// the next Update, at the latest when the call ends.
func (r *Recorder) Edit(fn func(rec *store.Call)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.rec)
}

// Update changes the record under its lock and hands it to the store's call writer, when a
// store keeps it, without waiting for the database: signalling never waits for it. The
// state is handed over under the lock, so that states are written in the order they were
// made; the writer batches them with other calls' and retries one the database refuses
// until it returns (see store.UpdateCallState), long after the call is gone if need be.
func (r *Recorder) Update(ctx context.Context, fn func(rec *store.Call)) {
	r.write(ctx, fn, false)
}

// write is Update; wait says to wait until the state is in the database (or queued).
func (r *Recorder) write(ctx context.Context, fn func(rec *store.Call), wait bool) {
	r.mu.Lock()
	fn(&r.rec)
	// The state is dated when it is made: its call.* event and its row in the store carry
	// the same updated_at, however far behind the store's writer is.
	r.rec.UpdatedAt = time.Now().UTC()
	if r.st == nil {
		r.mu.Unlock()
		return
	}
	w := store.QueueCallState(r.st, &r.rec)
	status := r.rec.Status
	r.mu.Unlock()
	if !wait {
		w.Behind()
		return
	}
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
// answered (with its duration) or else the status of a call unanswered for that reason,
// its media quality when known, and the handler's report given the call's own ending.
//
// It waits until the state is in the database (or queued while the database is away): a
// record is final before call.ended goes out, and whoever reads it then reads the end.
func (r *Recorder) Ended(ctx context.Context, reason Reason, quality *store.CallQuality) {
	perMinute := r.telephonyPrice(ctx)
	now := time.Now().UTC()
	r.write(ctx, func(rec *store.Call) {
		rec.EndedAt = &now
		rec.EndedReason = string(reason)
		if rec.AnsweredAt != nil {
			rec.Status = store.CallCompleted
			rec.DurationSeconds = now.Sub(*rec.AnsweredAt).Seconds()
		} else {
			rec.Status = reason.Unanswered()
		}
		if quality != nil {
			rec.Quality = *quality
		}
		rec.Cost.Telephony = rec.DurationSeconds / 60 * perMinute
		rec.Cost.Sum()
		rec.CostUSD = rec.Cost.Total
		if len(rec.Report) > 0 {
			rec.Report["cost"] = rec.Cost
			rec.Report["ended_reason"] = string(reason)
			rec.Report["duration_seconds"] = rec.DurationSeconds
			// The report reads whole: how the media fared (late packets too) is part of
			// what the conversation was.
			rec.Report["quality"] = rec.Quality
		}
	}, true)
}

// Publish sends an event about the call to its topic (and so, through the hub, to the
// tenant's topic that dashboards follow), and keeps it in the call's history.
func (r *Recorder) Publish(typ string, data any) {
	if r.onEvent != nil {
		r.onEvent(typ, data)
	}
	r.mu.Lock()
	tenantID, id := r.rec.TenantID, r.rec.ID
	r.mu.Unlock()
	// The call's history keeps what it published, written behind the call, after the hub
	// has forgotten it.
	store.RecordCallEvent(r.st, tenantID, id, typ, data)
	if r.events == nil {
		return
	}
	// The hub carries every event of a call's topic to the tenant's topic too, once.
	if err := r.events.Publish(tenantID, Topic(id), typ, data); err != nil {
		r.log.Warn("call event not published", "type", typ, "error", err)
	}
}

// telephonyPrice is the price a minute of the call's trunk (0 for a call over none, a
// browser's or a media stream's). A trunk that cannot be read prices the call's telephony
// at 0, and says so.
func (r *Recorder) telephonyPrice(ctx context.Context) float64 {
	r.mu.Lock()
	trunkID, tenantID := r.rec.TrunkID, r.rec.TenantID
	r.mu.Unlock()
	if trunkID == nil || r.st == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), trunkReadTimeout)
	defer cancel()
	t, err := store.Get[store.Trunk](ctx, r.st, tenantID, *trunkID)
	if err != nil {
		r.log.Warn("the call's trunk is not readable: its telephony is not priced", "trunk", *trunkID, "error", err)
		return 0
	}
	return t.PricePerMinuteUSD
}

// trunkReadTimeout bounds the read of a call's trunk as the call ends: a database that is
// away does not hold the call's end up for long.
const trunkReadTimeout = 2 * time.Second
