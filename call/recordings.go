package call

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// Recordings is how a node records its calls and how long it keeps the recordings: every
// answered call when All is set (SWITCHBOARD_RECORD_CALLS), else the calls of agents that
// ask for it (store.RecordingSettings), as "<call id>.wav" under Dir, whatever carries the
// call. A recording is deleted, and its record's link cleared, once its retention ran out
// (the agent's retention_days, else Retention; zero keeps it), by the node that holds the
// file (SweepRecordings).
type Recordings struct {
	// Dir holds the recordings; "" records nothing.
	Dir string
	// All records every answered call.
	All bool
	// Retention is how long a recording is kept after its call ended; zero: kept.
	Retention time.Duration
}

// recordingPlan is how one call is recorded.
type recordingPlan struct {
	channels  int
	retention time.Duration
}

// plan says whether and how a call that ag (nil: a built-in destination) talks on is
// recorded.
func (r Recordings) plan(ag *store.Agent) (recordingPlan, bool) {
	if r.Dir == "" {
		return recordingPlan{}, false
	}
	p := recordingPlan{channels: 2, retention: r.Retention}
	asked := false
	if ag != nil {
		s := ag.Recording.WithDefaults()
		asked = s.Enabled
		if s.Channels == store.RecordMono {
			p.channels = 1
		}
		if s.RetentionDays > 0 {
			p.retention = time.Duration(s.RetentionDays) * 24 * time.Hour
		}
	}
	return p, r.All || asked
}

// Plan says whether a call that ag (nil: a built-in destination) talks on is recorded, in
// how many channels (2 or 1), and how long its recording is kept (zero: for good): what
// every transport asks before it records.
func (r Recordings) Plan(ag *store.Agent) (channels int, retention time.Duration, ok bool) {
	p, ok := r.plan(ag)
	return p.channels, p.retention, ok
}

// KeepRecording links a call's recording from its record (rec, which ended at now), with
// the time it is deleted when retention is set.
func KeepRecording(rec *store.Call, retention time.Duration, now time.Time) {
	rec.RecordingURL = store.RecordingURL(rec.ID)
	rec.RecordingExpiresAt = nil
	if retention > 0 {
		at := now.Add(retention).UTC()
		rec.RecordingExpiresAt = &at
	}
}

// callRecording is the recording of a running call.
type callRecording struct {
	f    *os.File
	rec  *media.Recording
	plan recordingPlan
}

// startRecording opens the recording of call id of a stream at rate. A recording that
// cannot be opened is logged and the call goes on unrecorded.
func startRecording(dir, id string, rate int, p recordingPlan, log *slog.Logger) *callRecording {
	f, err := os.Create(filepath.Join(dir, id+".wav"))
	if err != nil {
		log.Warn("call not recorded", "error", err)
		return nil
	}
	rec, err := media.NewRecording(f, rate, p.channels)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		log.Warn("call not recorded", "error", err)
		return nil
	}
	return &callRecording{f: f, rec: rec, plan: p}
}

// finish closes the recording and says how long it is; one with nothing in it (a call
// never answered) is removed.
func (r *callRecording) finish(log *slog.Logger) time.Duration {
	d := r.rec.Duration()
	err := r.rec.Close()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Warn("recording not finished", "error", err)
	}
	if d == 0 {
		_ = os.Remove(r.f.Name())
	}
	return d
}

// sweepBatch bounds how many expired recordings one query returns.
const sweepBatch = 500

// Sweep deletes the recordings of node's calls whose retention ran out by now and clears
// their records' links; it returns how many it deleted. A file that cannot be deleted
// keeps its link, to be tried again at the next sweep.
func (r Recordings) Sweep(ctx context.Context, st *store.Store, node string, now time.Time) (int, error) {
	if r.Dir == "" || st == nil {
		return 0, nil
	}
	swept := 0
	for {
		ids, err := store.ExpiredRecordings(ctx, st, node, now, sweepBatch)
		if err != nil {
			return swept, err
		}
		failed := 0
		for _, id := range ids {
			if err := os.Remove(filepath.Join(r.Dir, id+".wav")); err != nil && !errors.Is(err, os.ErrNotExist) {
				failed++
				continue
			}
			if err := store.ClearRecording(ctx, st, id); err != nil {
				return swept, fmt.Errorf("recording of %s deleted, its link not cleared: %w", id, err)
			}
			swept++
		}
		if len(ids) < sweepBatch || failed > 0 {
			if failed > 0 {
				return swept, fmt.Errorf("%d expired recordings not deleted", failed)
			}
			return swept, nil
		}
	}
}

// sweepEvery is how often a node looks for expired recordings: retention is counted in
// hours and days.
const sweepEvery = 10 * time.Minute

// SweepRecordings sweeps the node's expired recordings now and every sweepEvery until ctx
// ends (Recordings.Sweep). In a cluster each node sweeps the recordings it holds.
func (n *Node) SweepRecordings(ctx context.Context) {
	r := n.cfg.Recordings
	if r.Dir == "" || n.cfg.Store == nil {
		return
	}
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		count, err := r.Sweep(ctx, n.cfg.Store, n.cfg.Node, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			n.cfg.Log.Warn("expired recordings not swept", "deleted", count, "error", err)
		case count > 0:
			n.cfg.Log.Info("expired recordings deleted", "count", count)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
