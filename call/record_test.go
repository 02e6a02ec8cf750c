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
