// Package demo is Switchboard's demo line: the receptionist agent a node creates on its
// first start (SWITCHBOARD_DEMO), reached at sip:demo@ the node with no configuration.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/switchboard-go/switchboard/store"
)

// Number is the SIP user the demo agent answers: sip:demo@….
const Number = "demo"

// Workflow is the receptionist of the demo agent: a greeting, a menu by keys or words
// (opening hours, a message, the assistant), a voicemail, and a turn with the language
// model when one is configured. It runs on espeak-ng with no configuration at all.
func Workflow() *store.Workflow {
	on := func(keys string, words ...string) *store.Condition {
		return &store.Condition{DTMF: keys, Keywords: words}
	}
	return &store.Workflow{
		Name:        "Demo receptionist",
		Description: "The receptionist of Switchboard's demo line: opening hours, messages, and the assistant.",
		Metadata:    map[string]any{"demo": true},
		Graph: store.Graph{
			Start: "greet",
			Nodes: []store.Node{
				{ID: "greet", Type: "say", Text: "Hello, and thank you for calling Switchboard."},
				{ID: "menu", Type: "gather", Input: "any", MaxDigits: 1, TimeoutMS: 8000, Variable: "choice",
					Text: "For our opening hours, press 1. To leave a message, press 2. To talk to our assistant, press 3."},
				{ID: "hours", Type: "say", Text: "We are open Monday to Friday, from nine in the morning to five in the afternoon."},
				{ID: "again", Type: "gather", Input: "any", MaxDigits: 1, TimeoutMS: 6000,
					Text: "To hear the menu again, press 9. Otherwise, goodbye."},
				{ID: "message", Type: "voicemail", Text: "Please leave your message after the tone. Press any key or hang up when you are done."},
				{ID: "assistant", Type: "llm", Variable: "answer",
					Instructions: "You are the friendly assistant of Switchboard's demo line, an open-source voice agent server. " +
						"Answer in one or two short sentences; you are speaking on the phone."},
				{ID: "sorry", Type: "say", Text: "Sorry, I did not get that."},
				{ID: "bye", Type: "hangup", Text: "Thank you for calling. Goodbye."},
			},
			Edges: []store.Edge{
				{From: "greet", To: "menu"},
				{From: "menu", To: "hours", When: on("1", "hours", "open", "opening")},
				{From: "menu", To: "message", When: on("2", "message", "voicemail")},
				{From: "menu", To: "assistant", When: on("3", "assistant", "someone", "person", "talk")},
				{From: "menu", To: "bye", When: &store.Condition{Timeout: true}},
				{From: "menu", To: "sorry", When: &store.Condition{NoMatch: true}},
				{From: "sorry", To: "menu"},
				{From: "hours", To: "again"},
				{From: "again", To: "menu", When: on("9", "menu", "again", "repeat")},
				{From: "again", To: "bye"},
				{From: "assistant", To: "sorry", When: &store.Condition{NoMatch: true}},
				{From: "assistant", To: "assistant"},
			},
		},
	}
}

// Ensure creates the demo agent of the default tenant on first start: its workflow, the
// agent, and the number "demo" routed to it. Once the number exists (or was deleted and
// the tenant has other numbers) it is left alone: the demo is the operator's to change.
func Ensure(ctx context.Context, st *store.Store, def *store.Tenant, log *slog.Logger) error {
	// Numbers are unique on the node: one that another tenant took is left to it.
	if pn, err := st.PhoneNumberByNumber(ctx, Number); err == nil {
		if pn.TenantID != def.ID {
			log.Info("demo agent not created: another tenant has the number", "number", Number, "tenant", pn.TenantID)
		}
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, total, err := store.List[store.PhoneNumber](ctx, st, def.ID, store.Page{Limit: 1}); err != nil {
		return err
	} else if total > 0 {
		return nil
	}
	wf := Workflow()
	if err := store.Create(ctx, st, def.ID, wf); err != nil {
		return fmt.Errorf("demo workflow: %w", err)
	}
	ag := store.NewAgent()
	ag.Name = "Demo receptionist"
	ag.Instructions = "The demo line of Switchboard."
	ag.WorkflowID = &wf.ID
	ag.Limits.IdleTimeoutS = 20
	ag.Limits.MaxDurationS = 600
	ag.Turn.FirstMessageInterruptible = false // the greeting and the menu's first words are heard whole
	ag.Metadata = map[string]any{"demo": true}
	if err := store.Create(ctx, st, def.ID, ag); err != nil {
		return fmt.Errorf("demo agent: %w", err)
	}
	pn := store.NewPhoneNumber()
	pn.Number, pn.Name, pn.AgentID = Number, "Demo line", &ag.ID
	if err := store.Create(ctx, st, def.ID, pn); err != nil {
		return fmt.Errorf("demo number: %w", err)
	}
	log.Info("demo agent created: call sip:demo@ this node", "agent", ag.ID, "workflow", wf.ID)
	return nil
}
