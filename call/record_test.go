package call_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// The end-of-call report of an answered call carries how its media fared, late packets
// included: a report read alone must not say a call went well when its audio came late.
func TestReportCarriesQuality(t *testing.T) {
	at := time.Now().UTC()
	r := call.NewRecorder(store.Call{AnsweredAt: &at}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	r.SetReport(map[string]any{"turns": 2})
	q := store.CallQuality{PacketsReceived: 100, PacketsLate: 26}
	r.Ended(context.Background(), call.ReasonCallerHangup, &q)
	rec := r.Record()
	if rec.Quality != q || rec.Status != store.CallCompleted {
		t.Fatalf("record %s quality %+v, want completed with %+v", rec.Status, rec.Quality, q)
	}
	if got, ok := rec.Report["quality"].(store.CallQuality); !ok || got.PacketsLate != 26 {
		t.Errorf("report %v, want its quality with 26 packets late", rec.Report)
	}
	if rec.Report["ended_reason"] != string(call.ReasonCallerHangup) {
		t.Errorf("report %v lost its ended reason", rec.Report)
	}
}

// A call over a trunk with a price a minute costs its answered time at that price, added to
// what its conversation cost; the record, the report and the stored row all say so.
func TestEndedPricesTelephony(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten, err := st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	tr := store.NewTrunk()
	tr.Name, tr.PricePerMinuteUSD = "carrier", 1.2
	tr.Inbound.AllowedCIDRs = []string{"192.0.2.0/24"}
	if err := store.Create(ctx, st, ten.ID, tr); err != nil {
		t.Fatal(err)
	}
	answered := time.Now().UTC().Add(-30 * time.Second)
	rec := store.Call{Direction: store.CallInbound, Status: store.CallInProgress, Destination: "echo", TrunkID: &tr.ID, AnsweredAt: &answered}
	if err := store.Create(ctx, st, ten.ID, &rec); err != nil {
		t.Fatal(err)
	}
	r := call.NewRecorder(rec, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	r.SetReport(map[string]any{"turns": 1})
	r.SetUsage(store.CallUsage{InputTokens: 10, Cost: store.CallCost{Model: 0.01, STT: 0.002}})
	r.Ended(ctx, call.ReasonCallerHangup, nil)
	got := r.Record()
	tel := got.DurationSeconds / 60 * 1.2
	if got.Cost.Telephony < 0.59 || got.Cost.Telephony > 0.7 || got.Cost.Telephony != store.RoundUSD(tel) ||
		got.Cost.Total != store.RoundUSD(0.012+got.Cost.Telephony) || got.CostUSD != got.Cost.Total || got.Cost.Currency != "USD" {
		t.Fatalf("cost %+v (cost_usd %v) of %.1f s at 1.2 a minute", got.Cost, got.CostUSD, got.DurationSeconds)
	}
	if c, ok := got.Report["cost"].(store.CallCost); !ok || c != got.Cost {
		t.Errorf("report's cost %v, want %+v", got.Report["cost"], got.Cost)
	}
	stored, err := store.Get[store.Call](ctx, st, ten.ID, rec.ID)
	if err != nil || stored.CostUSD != got.CostUSD || stored.InputTokens != 10 || stored.Cost != got.Cost {
		t.Errorf("stored %+v (%v), want the record's cost %+v", stored.CallUsage, err, got.Cost)
	}
}
