package call_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// openStore is a migrated store on SQLite or PostgreSQL, and its default tenant.
func openStore(t *testing.T, d store.Dialect) (*store.Store, string) {
	t.Helper()
	opts := store.Options{DataDir: t.TempDir()}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	st, err := store.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	def, err := st.EnsureTenant(t.Context(), store.DefaultTenantSlug)
	if err != nil {
		t.Fatal(err)
	}
	return st, def.ID
}

// TestRecordingSweep: a node deletes the recordings it holds whose retention ran out at the
// time it is given, and clears their records' links; a recording still within its
// retention, one kept for good, and another node's stay. The sweeper's clock is the time
// passed to Sweep: no test waits for retention to run out.
func TestRecordingSweep(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st, tenant := openStore(t, d)
			dir := t.TempDir()
			now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			mk := func(node string, expires *time.Time) string {
				t.Helper()
				ended := now.Add(-40 * 24 * time.Hour)
				c := store.Call{Direction: store.CallWeb, Status: store.CallCompleted, Destination: "echo", Node: node,
					StartedAt: &ended, AnsweredAt: &ended, EndedAt: &ended, EndedReason: store.EndedCallerHangup}
				if err := store.Create[store.Call](ctx, st, tenant, &c); err != nil {
					t.Fatal(err)
				}
				// The record is linked as the call's end links it.
				call.KeepRecording(&c, 0, ended)
				c.RecordingExpiresAt = expires
				if err := store.UpdateCallState(ctx, st, &c); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, c.ID+".wav"), []byte("RIFF"), 0o600); err != nil {
					t.Fatal(err)
				}
				return c.ID
			}
			past, future := now.Add(-time.Hour), now.Add(time.Hour)
			expired, expiredGone, kept, forever, other := mk("node-a", &past), mk("node-a", &past), mk("node-a", &future), mk("node-a", nil), mk("node-b", &past)
			// A file deleted by hand still has its link cleared.
			if err := os.Remove(filepath.Join(dir, expiredGone+".wav")); err != nil {
				t.Fatal(err)
			}
			r := call.Recordings{Dir: dir, Retention: time.Hour}
			n, err := r.Sweep(ctx, st, "node-a", now)
			if err != nil || n != 2 {
				t.Fatalf("Sweep: %d, %v; want 2 deleted", n, err)
			}
			for id, want := range map[string]bool{expired: false, expiredGone: false, kept: true, forever: true, other: true} {
				_, statErr := os.Stat(filepath.Join(dir, id+".wav"))
				c, err := store.Get[store.Call](ctx, st, tenant, id)
				if err != nil {
					t.Fatal(err)
				}
				if linked := c.RecordingURL == store.RecordingURL(id); linked != want || (statErr == nil) != want ||
					(!want && c.RecordingExpiresAt != nil) {
					t.Errorf("%s: file kept %v, link %q expires %v; want kept %v", id, statErr == nil, c.RecordingURL, c.RecordingExpiresAt, want)
				}
			}
			// Nothing left to sweep at that time; an hour later, the next one goes.
			if n, err := r.Sweep(ctx, st, "node-a", now); err != nil || n != 0 {
				t.Errorf("second Sweep: %d, %v", n, err)
			}
			if n, err := r.Sweep(ctx, st, "node-a", now.Add(time.Hour)); err != nil || n != 1 {
				t.Errorf("Sweep an hour later: %d, %v; want 1", n, err)
			}
		})
	}
}

// TestCallRecorded: a web call of a node that records is written to "<id>.wav" as its
// stream reads and writes it, the caller left and the destination right, and its record
// links it with its expiry; an agent that asks for mono gets mono; a node that records
// nothing and an agent that does not ask leave no file.
func TestCallRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, tenant := openStore(t, store.SQLite)
	dir := t.TempDir()
	mono := store.NewAgent()
	mono.Name, mono.Recording = "mono", store.RecordingSettings{Enabled: true, Channels: store.RecordMono, RetentionDays: 2}
	quiet := store.NewAgent()
	quiet.Name = "quiet"
	for _, a := range []*store.Agent{mono, quiet} {
		if err := store.Create[store.Agent](ctx, st, tenant, a); err != nil {
			t.Fatal(err)
		}
	}
	talk := func(ctx context.Context, c *call.Call, _ *store.Agent) {
		st := c.Stream()
		f := media.Frame{Rate: st.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(st.SampleRate()))}
		for i := 0; st.ReadFrame(&f) == nil && st.WriteFrame(&f) == nil && i < 25; i++ {
		}
		c.Hangup("")
	}
	run := func(t *testing.T, r call.Recordings, target call.Spec) store.Call {
		t.Helper()
		base, stop := context.WithCancel(ctx)
		defer stop()
		n := call.NewNode(base, call.NodeConfig{Store: st, Node: "node-a", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Agent: talk, Recordings: r})
		target.TenantID, target.Stream = tenant, newMemStream()
		c, err := n.Start(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if target.Destination != "" {
			select {
			case <-target.Stream.(*memStream).waitWritten(30):
			case <-time.After(5 * time.Second):
			}
			c.End(call.ReasonCallerHangup)
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the call did not end")
		}
		rec, err := store.Get[store.Call](ctx, st, tenant, c.ID())
		if err != nil {
			t.Fatal(err)
		}
		return *rec
	}
	readWAV := func(t *testing.T, id string) *media.WAV {
		t.Helper()
		f, err := os.Open(filepath.Join(dir, id+".wav"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w, err := media.ReadWAV(f)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	t.Run("node records every call", func(t *testing.T) {
		rec := run(t, call.Recordings{Dir: dir, All: true, Retention: time.Hour}, call.Spec{Destination: "echo"})
		w := readWAV(t, rec.ID)
		if w.Channels != 2 || w.Rate != media.Rate16k || len(w.Samples) < 2*20*media.SamplesPerFrame(media.Rate16k) {
			t.Fatalf("recording: %d channels at %d Hz, %d samples", w.Channels, w.Rate, len(w.Samples))
		}
		// The stream hears a level of 1000; the echo plays it back half a second later.
		left, right := w.Channel(0), w.Channel(1)
		if left[0] != 1000 || right[len(right)-1] != 1000 || right[0] != 0 {
			t.Errorf("left starts %d, right starts %d and ends %d; want the caller at once and the echo later", left[0], right[0], right[len(right)-1])
		}
		if rec.RecordingURL != "/api/v1/calls/"+rec.ID+"/recording" || rec.RecordingExpiresAt == nil ||
			rec.RecordingExpiresAt.Sub(*rec.EndedAt).Round(time.Minute) != time.Hour {
			t.Errorf("record: recording %q expires %v, ended %v", rec.RecordingURL, rec.RecordingExpiresAt, rec.EndedAt)
		}
	})
	t.Run("agent asks for mono", func(t *testing.T) {
		rec := run(t, call.Recordings{Dir: dir, Retention: time.Hour}, call.Spec{AgentID: mono.ID})
		if w := readWAV(t, rec.ID); w.Channels != 1 || len(w.Samples) < 20*media.SamplesPerFrame(media.Rate16k) {
			t.Fatalf("recording: %d channels, %d samples", w.Channels, len(w.Samples))
		}
		// The agent's retention wins over the node's.
		if rec.RecordingExpiresAt == nil || rec.RecordingExpiresAt.Sub(*rec.EndedAt).Round(time.Minute) != 48*time.Hour {
			t.Errorf("expires %v, ended %v: want the agent's 2 days", rec.RecordingExpiresAt, rec.EndedAt)
		}
	})
	t.Run("not asked", func(t *testing.T) {
		for _, tc := range []struct {
			r    call.Recordings
			spec call.Spec
		}{{call.Recordings{Dir: dir}, call.Spec{AgentID: quiet.ID}}, {call.Recordings{}, call.Spec{AgentID: mono.ID}}} {
			rec := run(t, tc.r, tc.spec)
			if _, err := os.Stat(filepath.Join(dir, rec.ID+".wav")); !os.IsNotExist(err) || rec.RecordingURL != "" {
				t.Errorf("%+v: file %v, link %q; want neither", tc.r, err, rec.RecordingURL)
			}
		}
	})
}
