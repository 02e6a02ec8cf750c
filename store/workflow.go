package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/uptrace/bun"
)

// Workflow is a scripted conversation: a graph of steps (say something, gather digits or
// words, look something up, hand over to the model, transfer, hang up) joined by edges that
// fire on what the caller did.
type Workflow struct {
	bun.BaseModel `bun:"table:workflows"`
	Row

	Name        string         `bun:"name,notnull" json:"name"`
	Description string         `bun:"description,notnull" json:"description"`
	Graph       Graph          `bun:"graph,type:json" json:"graph"`
	Metadata    map[string]any `bun:"metadata,type:json" json:"metadata"`
}

// Graph is a workflow's steps and the ways between them.
type Graph struct {
	Start string `json:"start"`
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is one step of a workflow. Which fields matter depends on Type (see nodeTypes).
type Node struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Text is what a say, gather or voicemail node speaks, and what a knowledge node says
	// when it found nothing.
	Text string `json:"text,omitempty"`
	// Instructions steer an llm node; on a knowledge node they have the model answer from
	// what was found (instead of reading out the best chunk).
	Instructions string `json:"instructions,omitempty"`
	// Query is what a knowledge node searches for (it may hold {{variables}}); empty, the
	// caller's last words.
	Query string `json:"query,omitempty"`
	// Input is what a gather node listens for: "dtmf", "speech" or "any".
	Input string `json:"input,omitempty"`
	// MaxDigits ends a DTMF gather early; TimeoutMS ends any gather.
	MaxDigits int `json:"max_digits,omitempty"`
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// To is a transfer's destination: an E.164 number or a SIP URI.
	To string `json:"to,omitempty"`
	// ToolID names the tool a tool node runs; KnowledgeBaseID the base a knowledge node searches.
	ToolID          string `json:"tool_id,omitempty"`
	KnowledgeBaseID string `json:"knowledge_base_id,omitempty"`
	// Variable names where a node keeps what it got: a gather the caller's digits or words,
	// a tool its result (the node's ID when empty), an llm node its answer, a knowledge node
	// what it found ({found, text, document, score}; the node's ID when empty). Later text reads
	// it as {{name}} (a field of a JSON result as {{name.field}}), and branch edges test it.
	Variable string `json:"variable,omitempty"`
	// Arguments are a tool node's arguments: a JSON object whose strings may hold
	// {{variables}}.
	Arguments string `json:"arguments,omitempty"`
	// Terminator is the key that ends a DTMF gather early ("#" when empty and MaxDigits is
	// not 1).
	Terminator string `json:"terminator,omitempty"`
}

// Edge leads from one node to another, when its condition holds (always, when When is nil).
type Edge struct {
	From string     `json:"from"`
	To   string     `json:"to"`
	When *Condition `json:"when"`
}

// Condition is what makes an edge fire: a key pressed, a word said, an intent the model
// recognised, nothing matching within the gather's time, or a variable holding a value.
// Every test set must pass, except that DTMF and Keywords together are two ways to answer
// one prompt ("press 1 or say hours"): either matching is enough.
type Condition struct {
	DTMF     string   `json:"dtmf,omitempty"`
	Keywords []string `json:"keywords,omitempty"`
	Intent   string   `json:"intent,omitempty"`
	Timeout  bool     `json:"timeout,omitempty"`
	NoMatch  bool     `json:"no_match,omitempty"`
	// Variable holds when the variable (a dotted path into a JSON result: "order.status")
	// equals Equals, ignoring case; an unset variable equals "".
	Variable string `json:"variable,omitempty"`
	Equals   string `json:"equals,omitempty"`
}

// nodeTypes are the steps the workflow engine runs; terminal ones end the workflow.
var nodeTypes = map[string]struct{ terminal bool }{
	"say":       {},
	"gather":    {},
	"llm":       {},
	"tool":      {},
	"knowledge": {},
	"branch":    {},
	"transfer":  {terminal: true},
	"voicemail": {terminal: true},
	"hangup":    {terminal: true},
}

// NodeTypes lists the types a workflow node may have, sorted (the API's document states them).
func NodeTypes() []string { return slices.Sorted(maps.Keys(nodeTypes)) }

func (*Workflow) idPrefix() string { return prefixWorkflow }

// Validate checks the workflow and its graph: known node types with what each needs, edges
// between nodes that exist, and every node reachable from the start.
func (w *Workflow) Validate() error {
	var fe fieldErrors
	fe.requireName("name", w.Name)
	fe.maxText("description", w.Description)
	if w.Metadata == nil {
		w.Metadata = map[string]any{}
	}
	fe.metadata("metadata", w.Metadata)
	w.Graph.validate(&fe)
	return fe.err()
}

func (g *Graph) validate(fe *fieldErrors) {
	if g.Nodes == nil {
		g.Nodes = []Node{}
	}
	if g.Edges == nil {
		g.Edges = []Edge{}
	}
	if len(g.Nodes) == 0 {
		fe.add("graph.nodes", "must hold at least one node")
		return
	}
	if len(g.Nodes) > 500 || len(g.Edges) > 2000 {
		fe.add("graph", "must hold at most 500 nodes and 2000 edges")
		return
	}
	index := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		field := fmt.Sprintf("graph.nodes[%d]", i)
		switch {
		case strings.TrimSpace(n.ID) == "":
			fe.add(field+".id", "is required")
		case len(n.ID) > 64:
			fe.add(field+".id", "must be at most 64 characters")
		default:
			if _, dup := index[n.ID]; dup {
				fe.add(field+".id", "duplicates node %q", n.ID)
			}
			index[n.ID] = i
		}
		n.validate(fe, field)
	}
	if g.Start == "" {
		fe.add("graph.start", "is required")
	} else if _, ok := index[g.Start]; !ok {
		fe.add("graph.start", "names no node: %q", g.Start)
	}
	adj := make(map[string][]string, len(g.Nodes))
	for i, e := range g.Edges {
		field := fmt.Sprintf("graph.edges[%d]", i)
		from, okFrom := index[e.From]
		_, okTo := index[e.To]
		if !okFrom {
			fe.add(field+".from", "names no node: %q", e.From)
		}
		if !okTo {
			fe.add(field+".to", "names no node: %q", e.To)
		}
		if okFrom && nodeTypes[g.Nodes[from].Type].terminal {
			fe.add(field+".from", "node %q is a %s and ends the workflow; nothing can follow it", e.From, g.Nodes[from].Type)
		}
		if e.When != nil {
			e.When.validate(fe, field+".when")
		}
		if okFrom && okTo {
			adj[e.From] = append(adj[e.From], e.To)
		}
	}
	if _, ok := index[g.Start]; !ok {
		return
	}
	reached := map[string]bool{g.Start: true}
	queue := []string{g.Start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, next := range adj[n] {
			if !reached[next] {
				reached[next] = true
				queue = append(queue, next)
			}
		}
	}
	for i, n := range g.Nodes {
		if n.ID != "" && !reached[n.ID] {
			fe.add(fmt.Sprintf("graph.nodes[%d]", i), "node %q cannot be reached from the start", n.ID)
		}
	}
}

func (n *Node) validate(fe *fieldErrors, field string) {
	if _, ok := nodeTypes[n.Type]; !ok {
		fe.add(field+".type", "unknown node type %q (want say, gather, branch, llm, tool, knowledge, transfer, voicemail or hangup)", n.Type)
		return
	}
	switch n.Type {
	case "say":
		if strings.TrimSpace(n.Text) == "" {
			fe.add(field+".text", "is required for a say node")
		}
	case "gather":
		switch n.Input {
		case "":
			n.Input = "any"
		case "dtmf", "speech", "any":
		default:
			fe.add(field+".input", "must be dtmf, speech or any")
		}
		fe.rangeInt(field+".max_digits", n.MaxDigits, 0, 64)
		if n.Terminator != "" && n.Terminator != "#" && n.Terminator != "*" {
			fe.add(field+".terminator", "must be # or *")
		}
	case "tool":
		if !validID(prefixTool, n.ToolID) {
			fe.add(field+".tool_id", "is required for a tool node and must be a tool ID")
		}
		if n.Arguments != "" && !validArgumentsTemplate(n.Arguments) {
			fe.add(field+".arguments", "must be a JSON object (strings may hold {{variables}})")
		}
	case "knowledge":
		if !validID(prefixKnowledgeBase, n.KnowledgeBaseID) {
			fe.add(field+".knowledge_base_id", "is required for a knowledge node and must be a knowledge base ID")
		}
	case "transfer":
		if !reE164.MatchString(n.To) && !strings.HasPrefix(n.To, "sip:") && !strings.HasPrefix(n.To, "sips:") {
			fe.add(field+".to", "must be an E.164 number or a sip: URI")
		}
	}
	if n.Variable != "" && !reVariable.MatchString(n.Variable) {
		fe.add(field+".variable", "must be a name of letters, digits and underscores, not starting with a digit")
	}
	if n.Query != "" && n.Type != "knowledge" {
		fe.add(field+".query", "is only for a knowledge node")
	}
	if n.Arguments != "" && n.Type != "tool" {
		fe.add(field+".arguments", "is only for a tool node")
	}
	if n.Terminator != "" && n.Type != "gather" {
		fe.add(field+".terminator", "is only for a gather node")
	}
	fe.rangeInt(field+".timeout_ms", n.TimeoutMS, 0, 600_000)
	fe.maxText(field+".text", n.Text)
	fe.maxText(field+".instructions", n.Instructions)
	fe.maxText(field+".query", n.Query)
}

func (c *Condition) validate(fe *fieldErrors, field string) {
	set := 0
	if c.DTMF != "" {
		set++
		for _, d := range c.DTMF {
			if !strings.ContainsRune("0123456789*#ABCD", d) {
				fe.add(field+".dtmf", "must be digits from 0-9, *, #, A-D")
				break
			}
		}
	}
	if len(c.Keywords) > 0 {
		set++
		for i, k := range c.Keywords {
			if strings.TrimSpace(k) == "" {
				fe.add(fmt.Sprintf("%s.keywords[%d]", field, i), "must not be empty")
			}
		}
	}
	if c.Intent != "" {
		set++
	}
	if c.Timeout {
		set++
	}
	if c.NoMatch {
		set++
	}
	if c.Variable != "" {
		set++
		if len(c.Variable) > 200 || !reVariablePath.MatchString(c.Variable) {
			fe.add(field+".variable", "must be a variable name, or a dotted path into one (order.status)")
		}
	} else if c.Equals != "" {
		fe.add(field+".equals", "needs a variable to compare")
	}
	if set == 0 {
		fe.add(field, "must set one of dtmf, keywords, intent, timeout, no_match or variable (or be null to always follow)")
	}
}

var (
	reVariable     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	reVariablePath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)
	rePlaceholder  = regexp.MustCompile(`\{\{[^{}]*\}\}`)
)

// validArgumentsTemplate reports whether a tool node's arguments are a JSON object once its
// {{variables}} are filled in (they are filled in as JSON-escaped text, inside strings).
func validArgumentsTemplate(s string) bool {
	var obj map[string]any
	return json.Unmarshal([]byte(rePlaceholder.ReplaceAllString(s, "x")), &obj) == nil && obj != nil
}

func (w *Workflow) references() []reference {
	var refs []reference
	for i, n := range w.Graph.Nodes {
		if n.Type == "tool" && n.ToolID != "" {
			refs = append(refs, reference{field: fmt.Sprintf("graph.nodes[%d].tool_id", i), table: "tools", id: n.ToolID})
		}
		// A knowledge node searches a base of the workflow's tenant, never another's.
		if n.Type == "knowledge" && n.KnowledgeBaseID != "" {
			refs = append(refs, reference{field: fmt.Sprintf("graph.nodes[%d].knowledge_base_id", i), table: "knowledge_bases", id: n.KnowledgeBaseID})
		}
	}
	return refs
}

func (w *Workflow) checkDelete(ctx context.Context, tx bun.IDB) error {
	n, err := tx.NewSelect().Table("agents").Where("workflow_id = ?", w.ID).Where("tenant_id = ?", w.TenantID).Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return &ConflictError{Field: "id", Message: fmt.Sprintf("the workflow is used by %d agent(s)", n)}
	}
	return nil
}
