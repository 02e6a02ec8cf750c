package store_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// menuWorkflow is a menu that uses what the workflow engine reads beyond the basic steps:
// a gather into a variable with a terminator, a tool with argument templates, a branch on
// a variable.
func menuWorkflow(toolID string) *store.Workflow {
	return &store.Workflow{Name: "orders", Graph: store.Graph{
		Start: "ask",
		Nodes: []store.Node{
			{ID: "ask", Type: "gather", Text: "Enter your order number.", Input: "dtmf", MaxDigits: 6, Terminator: "#", Variable: "order_id"},
			{ID: "look", Type: "tool", ToolID: toolID, Arguments: `{"id":"{{order_id}}"}`, Variable: "order"},
			{ID: "check", Type: "branch"},
			{ID: "shipped", Type: "say", Text: "Order {{order_id}} has shipped."},
			{ID: "bye", Type: "hangup"},
		},
		Edges: []store.Edge{
			{From: "ask", To: "look"},
			{From: "look", To: "check"},
			{From: "check", To: "shipped", When: &store.Condition{Variable: "order.status", Equals: "shipped"}},
			{From: "check", To: "bye", When: &store.Condition{NoMatch: true}},
			{From: "shipped", To: "bye"},
		},
	}}
}

func TestWorkflowValidate(t *testing.T) {
	t.Parallel()
	const toolID = "tool_01jbq000000000000000000000"
	cases := []struct {
		name   string
		edit   func(w *store.Workflow)
		fields []string
	}{
		{"valid", func(*store.Workflow) {}, nil},
		{"variable name", func(w *store.Workflow) { w.Graph.Nodes[0].Variable = "1st" }, []string{"graph.nodes[0].variable"}},
		{"terminator", func(w *store.Workflow) { w.Graph.Nodes[0].Terminator = "9" }, []string{"graph.nodes[0].terminator"}},
		{"terminator off a gather", func(w *store.Workflow) { w.Graph.Nodes[3].Terminator = "#" }, []string{"graph.nodes[3].terminator"}},
		{"arguments not an object", func(w *store.Workflow) { w.Graph.Nodes[1].Arguments = `["x"]` }, []string{"graph.nodes[1].arguments"}},
		{"placeholder outside a string", func(w *store.Workflow) { w.Graph.Nodes[1].Arguments = `{"id":{{order_id}}}` }, []string{"graph.nodes[1].arguments"}},
		{"arguments off a tool", func(w *store.Workflow) { w.Graph.Nodes[3].Arguments = `{}` }, []string{"graph.nodes[3].arguments"}},
		{"variable path", func(w *store.Workflow) { w.Graph.Edges[2].When.Variable = "order..status" }, []string{"graph.edges[2].when.variable"}},
		{"equals without a variable", func(w *store.Workflow) { w.Graph.Edges[3].When.Equals = "x" }, []string{"graph.edges[3].when.equals"}},
		{"empty condition", func(w *store.Workflow) { w.Graph.Edges[3].When = &store.Condition{} }, []string{"graph.edges[3].when"}},
		{"branch may equal the empty string", func(w *store.Workflow) { w.Graph.Edges[2].When.Equals = "" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := menuWorkflow(toolID)
			tc.edit(w)
			if got := fieldsOf(w.Validate()); !slices.Equal(got, tc.fields) {
				t.Fatalf("fields %q, want %q", got, tc.fields)
			}
		})
	}
}

// The engine's fields survive the database in both dialects.
func TestWorkflowRoundTrip(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ten, err := s.EnsureTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		tool := store.NewTool()
		tool.Name = "lookup_order"
		tool.Webhook.URL = "https://example.com/orders"
		if err := store.Create(ctx, s, ten.ID, tool); err != nil {
			t.Fatal(err)
		}
		w := menuWorkflow(tool.ID)
		if err := store.Create(ctx, s, ten.ID, w); err != nil {
			t.Fatal(err)
		}
		got, err := store.Get[store.Workflow](ctx, s, ten.ID, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Graph, w.Graph) {
			t.Fatalf("graph\n got %+v\nwant %+v", got.Graph, w.Graph)
		}
	})
}
