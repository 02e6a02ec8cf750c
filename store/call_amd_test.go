package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// An outbound call's answering-machine detection is stored with the call (the request
// when it is created, the result as the call's state) in both dialects, and a call
// without one reads back without one.
func TestCallAMDStored(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		plain := liveCall(t, s, f.tenant.ID, "node-a")
		c := store.NewOutboundCall()
		c.To, c.Destination, c.Node = "sip:far@127.0.0.1", "echo", "node-a"
		c.AMD = &store.CallAMD{Mode: store.AMDDetect}
		if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
			t.Fatal(err)
		}
		if c.AMD.TimeoutSeconds != store.DefaultAMDTimeout {
			t.Errorf("timeout %d; want the default %d", c.AMD.TimeoutSeconds, store.DefaultAMDTimeout)
		}
		res := *c.AMD
		res.Result, res.Confidence, res.DecisionMS, res.Reason, res.Beep = store.AMDMachine, 0.95, 2140, "beep", true
		c.AMD = &res
		c.Status = store.CallInProgress
		if err := store.UpdateCallState(ctx, s, c); err != nil {
			t.Fatal(err)
		}
		got, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AMD == nil || *got.AMD != res {
			t.Errorf("stored %+v; want %+v", got.AMD, res)
		}
		if p, err := store.Get[store.Call](ctx, s, f.tenant.ID, plain.ID); err != nil || p.AMD != nil {
			t.Errorf("a call without detection reads back with %+v (%v)", p.AMD, err)
		}
	})
}

func TestCallAMDValidation(t *testing.T) {
	agent := "agt_01jz3v6y8q2n4m5p7r9s1t3v5x"
	for _, tt := range []struct {
		amd   store.CallAMD
		agent bool
		field string // "": valid
	}{
		{store.CallAMD{Mode: "detect"}, false, ""},
		{store.CallAMD{Mode: "detect_then_message", Message: "Call us back."}, true, ""},
		{store.CallAMD{Mode: "detect", TimeoutSeconds: 60}, false, ""},
		{store.CallAMD{}, false, "amd.mode"},
		{store.CallAMD{Mode: "Detect"}, false, "amd.mode"},
		{store.CallAMD{Mode: "detect", TimeoutSeconds: 1}, false, "amd.timeout_seconds"},
		{store.CallAMD{Mode: "detect", TimeoutSeconds: -5}, false, "amd.timeout_seconds"},
		{store.CallAMD{Mode: "detect", Message: "hi"}, false, "amd.message"},
		{store.CallAMD{Mode: "detect_then_message"}, true, "amd.message"},
		{store.CallAMD{Mode: "detect_then_message", Message: "hi"}, false, "amd.mode"},
	} {
		c := store.NewOutboundCall()
		c.To, c.Destination = "sip:far@127.0.0.1", "echo"
		if tt.agent {
			c.To, c.Destination, c.AgentID = "sip:far@127.0.0.1", "", &agent
		}
		a := tt.amd
		c.AMD = &a
		err := c.Validate()
		var ve *store.ValidationError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v: %v; want valid", tt.amd, err)
		case tt.field != "" && (!errors.As(err, &ve) || !hasField(ve, tt.field)):
			t.Errorf("%+v: %v; want an error naming %s", tt.amd, err, tt.field)
		}
	}
	in := store.Call{Direction: store.CallInbound, Status: store.CallInProgress, AMD: &store.CallAMD{Mode: "detect"}}
	var ve *store.ValidationError
	if err := in.Validate(); !errors.As(err, &ve) || !hasField(ve, "amd") {
		t.Errorf("an inbound call with detection: %v; want refused naming amd", err)
	}
}

func hasField(ve *store.ValidationError, field string) bool {
	for _, f := range ve.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}
