package voice

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
)

// TestReportCountsToolsAndErrors: the report counts the tools a brain ran and those that
// failed, and keeps the call's failures, the brain's own (a map event) and the tools', for
// the error log.
func TestReportCountsToolsAndErrors(t *testing.T) {
	r := newRig(t, 8000)
	ctx := testCtx(t, 60*time.Second)
	wait := r.run(ctx, brainFunc(func(ctx context.Context, c agent.Conversation) error {
		c.ToolCall(agent.ToolRecord{Name: "get_order", Result: `{"ok":true}`})
		c.ToolCall(agent.ToolRecord{Name: "get_order", Error: "the webhook answered 500"})
		c.Event(EventError, map[string]any{"error": "the model did not answer", "consecutive_failures": 1})
		c.Hangup("")
		return nil
	}))
	res := wait()
	rep := res.Report
	if rep.ToolCalls != 2 || rep.ToolFailures != 1 || len(rep.Errors) != 2 {
		t.Fatalf("report %+v, want 2 tool calls, 1 failure and 2 errors", rep)
	}
	if e := rep.Errors[0]; e.Stage != "tool" || e.Message != "get_order: the webhook answered 500" || e.At.IsZero() {
		t.Errorf("tool error %+v", e)
	}
	if e := rep.Errors[1]; e.Stage != "brain" || e.Message != "the model did not answer" {
		t.Errorf("brain error %+v", e)
	}
	r.caller.stop()
}
