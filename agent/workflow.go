package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// Defaults of the workflow brain.
const (
	// DefaultMaxSteps bounds the nodes one call may run: a graph that loops without the
	// caller's help ends instead of talking forever.
	DefaultMaxSteps = 200
	// DefaultGatherTimeout is how long a gather without a timeout waits for the caller.
	DefaultGatherTimeout = 10 * time.Second

	DefaultLLMFallback          = "Sorry, I can't help with that right now."
	DefaultKnowledgeUnavailable = "Sorry, I can't look that up right now: the knowledge base is not available."
	DefaultVoicemailPrompt      = "Please leave a message after the tone."
	DefaultVoicemailThanks      = "Thank you for your message. Goodbye."
	DefaultVoicemailFailed      = "Sorry, your message could not be saved. Please call back later. Goodbye."
	DefaultTransferFailed       = "Sorry, I couldn't transfer your call. Please call back later. Goodbye."
)

// WorkflowBrainConfig is what a workflow brain needs: the graph, and what its nodes use.
type WorkflowBrainConfig struct {
	Workflow *store.Workflow
	// Agent, when set, gives llm nodes its instructions (before the node's) and temperature.
	Agent *store.Agent
	// Provider and Model answer llm nodes and recognise intents; without a Provider, llm
	// nodes say LLMFallback and intents never match.
	Provider llm.Provider
	Model    string
	// Tools are the tools tool nodes may run, found by ID, through Webhooks.
	Tools    []*store.Tool
	Webhooks *Webhooks
	// SaveVoicemail keeps what a voicemail node recorded.
	SaveVoicemail func(ctx context.Context, rec Recording) error
	// Knowledge searches the bases of knowledge nodes (and, for llm nodes, the agent's own,
	// as the LLM brain does); nil: knowledge nodes say KnowledgeUnavailable.
	// KnowledgeTimeout bounds one search (zero: DefaultKnowledgeTimeout).
	Knowledge        KnowledgeSearcher
	KnowledgeTimeout time.Duration
	// Variables are there from the start ({{caller}}, {{called}}, …).
	Variables map[string]any
	// MaxSteps is DefaultMaxSteps when zero; GatherTimeout DefaultGatherTimeout.
	MaxSteps      int
	GatherTimeout time.Duration
	// FillerPhrase and FillerDelay are as for the LLM brain: said while a slow tool runs.
	FillerPhrase string
	FillerDelay  time.Duration
	// The phrases of the engine's own; empty ones are the Default… constants.
	LLMFallback, KnowledgeUnavailable, VoicemailPrompt, VoicemailThanks, VoicemailFailed, TransferFailed string

	Logger *slog.Logger
}

// WorkflowBrain runs a workflow graph: node by node, along the edges the caller's input and
// the variables select.
type WorkflowBrain struct {
	cfg   WorkflowBrainConfig
	nodes map[string]*store.Node
	edges map[string][]store.Edge
	tools map[string]*store.Tool
	llm   *LLMBrain
	// kn searches knowledge nodes' bases; nil without a searcher.
	kn  *knowledgeUse
	log *slog.Logger
}

// NewWorkflowBrain returns the brain of an agent that follows a workflow.
func NewWorkflowBrain(cfg WorkflowBrainConfig) Brain { return newWorkflowBrain(cfg) }

func newWorkflowBrain(cfg WorkflowBrainConfig) *WorkflowBrain {
	if cfg.Workflow == nil {
		cfg.Workflow = &store.Workflow{}
	}
	if cfg.MaxSteps <= 0 {
		cfg.MaxSteps = DefaultMaxSteps
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = DefaultGatherTimeout
	}
	if cfg.FillerPhrase == "" {
		cfg.FillerPhrase = DefaultFillerPhrase
	}
	if cfg.FillerDelay == 0 {
		cfg.FillerDelay = DefaultFillerDelay
	}
	if cfg.Webhooks == nil {
		cfg.Webhooks = NewWebhooks(false)
	}
	for p, d := range map[*string]string{&cfg.LLMFallback: DefaultLLMFallback, &cfg.KnowledgeUnavailable: DefaultKnowledgeUnavailable,
		&cfg.VoicemailPrompt: DefaultVoicemailPrompt, &cfg.VoicemailThanks: DefaultVoicemailThanks,
		&cfg.VoicemailFailed: DefaultVoicemailFailed, &cfg.TransferFailed: DefaultTransferFailed} {
		if *p == "" {
			*p = d
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &WorkflowBrain{cfg: cfg, nodes: map[string]*store.Node{}, edges: map[string][]store.Edge{}, tools: map[string]*store.Tool{}, log: log}
	g := &cfg.Workflow.Graph
	for i := range g.Nodes {
		b.nodes[g.Nodes[i].ID] = &g.Nodes[i]
	}
	for _, e := range g.Edges {
		b.edges[e.From] = append(b.edges[e.From], e)
	}
	for _, t := range cfg.Tools {
		b.tools[t.ID] = t
	}
	if cfg.Provider != nil {
		b.llm = newLLMBrain(LLMBrainConfig{Agent: cfg.Agent, Provider: cfg.Provider, Model: cfg.Model, Builtins: []string{},
			Knowledge: cfg.Knowledge, KnowledgeTimeout: cfg.KnowledgeTimeout, Logger: log})
	}
	if cfg.Knowledge != nil {
		// Each node names its base; the agent's settings bound what a search returns.
		tenantID, settings := cfg.Workflow.TenantID, store.KnowledgeSettings{}
		if cfg.Agent != nil {
			settings = cfg.Agent.Knowledge
			if tenantID == "" {
				tenantID = cfg.Agent.TenantID
			}
		}
		b.kn = newKnowledgeUse(cfg.Knowledge, tenantID, nil, settings, cfg.KnowledgeTimeout)
	}
	return b
}

// workflowRun is the state of one call through the graph.
type workflowRun struct {
	vars map[string]any
	// history is the conversation as llm nodes read it.
	history []llm.Message
	// said is the caller's last words (not keys), which knowledge is searched with.
	said string
}

// outcome is what a node did, for choosing the edge out of it.
type outcome struct {
	// input is the caller's input a gather or llm node got.
	input *Input
	// failed says the node could not do its work (a tool failed, no model): the no_match
	// edge is preferred.
	failed bool
	// end says the call is over (a terminal node ran).
	end bool
}

// Run runs the graph from its start until a terminal node, a dead end, the caller leaving,
// or MaxSteps nodes.
func (b *WorkflowBrain) Run(ctx context.Context, c Conversation) error {
	err := b.run(ctx, c)
	if errors.Is(err, ErrHangup) || errors.Is(err, errCallEnded) {
		return nil
	}
	return err
}

func (b *WorkflowBrain) run(ctx context.Context, c Conversation) error {
	r := &workflowRun{vars: map[string]any{}}
	for k, v := range b.cfg.Variables {
		r.vars[k] = v
	}
	id := b.cfg.Workflow.Graph.Start
	for step := 0; ; step++ {
		n, ok := b.nodes[id]
		if !ok {
			c.Event("agent.error", map[string]any{"error": "the workflow has no node " + strconv.Quote(id), "node": id})
			c.Hangup(string(call.ReasonError))
			return errCallEnded
		}
		if step >= b.cfg.MaxSteps {
			c.Event("agent.error", map[string]any{"error": fmt.Sprintf("the workflow ran %d steps without ending", step), "node": id})
			b.log.Warn("workflow loop stopped", "steps", step, "node", id)
			c.Hangup(string(call.ReasonError))
			return errCallEnded
		}
		c.Event("workflow.node", map[string]any{"node": n.ID, "type": n.Type})
		// A step after the caller's input is traced under that turn.
		out, err := b.step(TurnContext(ctx, c), c, r, n)
		if err != nil {
			return err
		}
		if out.end {
			return errCallEnded
		}
		next, ok := b.next(ctx, c, r, n, out)
		if !ok {
			// A dead end is the workflow's end.
			c.Hangup(string(call.ReasonAgentHangup))
			return errCallEnded
		}
		id = next
	}
}

// say speaks text (its variables filled in) and keeps it in the history.
func (b *WorkflowBrain) say(ctx context.Context, c Conversation, r *workflowRun, text string) (Spoken, error) {
	text = strings.TrimSpace(interpolate(text, r.vars, false))
	if text == "" {
		return Spoken{}, nil
	}
	sp, err := c.Say(ctx, text)
	if sp.Text != "" {
		r.history = append(r.history, llm.TextMessage(llm.RoleAssistant, sp.Text))
	}
	return sp, err
}

func (b *WorkflowBrain) step(ctx context.Context, c Conversation, r *workflowRun, n *store.Node) (outcome, error) {
	switch n.Type {
	case "say":
		_, err := b.say(ctx, c, r, n.Text)
		return outcome{}, err
	case "gather":
		return b.gather(ctx, c, r, n)
	case "branch":
		return outcome{}, nil
	case "tool":
		return b.tool(ctx, c, r, n)
	case "llm":
		return b.llmTurn(ctx, c, r, n)
	case "knowledge":
		return b.knowledge(ctx, c, r, n)
	case "transfer":
		if _, err := b.say(ctx, c, r, n.Text); err != nil {
			return outcome{}, err
		}
		to := interpolate(n.To, r.vars, false)
		err := c.Transfer(ctx, to)
		if err == nil || errors.Is(err, ErrHangup) || ctx.Err() != nil {
			return outcome{end: true}, err
		}
		c.Event("agent.error", map[string]any{"error": "transfer failed: " + err.Error(), "node": n.ID, "to": to})
		if _, err := b.say(ctx, c, r, b.cfg.TransferFailed); err != nil {
			return outcome{}, err
		}
		c.Hangup(string(call.ReasonError))
		return outcome{end: true}, nil
	case "voicemail":
		return b.voicemail(ctx, c, r, n)
	case "hangup":
		if _, err := b.say(ctx, c, r, n.Text); err != nil {
			return outcome{}, err
		}
		c.Hangup(string(call.ReasonAgentHangup))
		return outcome{end: true}, nil
	}
	c.Event("agent.error", map[string]any{"error": "unknown node type " + strconv.Quote(n.Type), "node": n.ID})
	return outcome{failed: true}, nil
}

func (b *WorkflowBrain) gather(ctx context.Context, c Conversation, r *workflowRun, n *store.Node) (outcome, error) {
	// A prompt the caller answers over is cut short; the answer is the next input.
	if _, err := b.say(ctx, c, r, n.Text); err != nil {
		return outcome{}, err
	}
	opts := ListenOptions{MaxDigits: n.MaxDigits, Timeout: time.Duration(n.TimeoutMS) * time.Millisecond}
	switch n.Input {
	case "dtmf":
		opts.DTMF = true
	case "speech":
		opts.Speech = true
	}
	if n.Terminator != "" {
		opts.Terminator = []rune(n.Terminator)[0]
	}
	if opts.Timeout <= 0 {
		opts.Timeout = b.cfg.GatherTimeout
	}
	in, err := c.Listen(ctx, opts)
	if err != nil {
		return outcome{}, err
	}
	b.heard(r, n, in)
	return outcome{input: &in}, nil
}

// heard keeps the caller's input in the node's variable and the history.
func (b *WorkflowBrain) heard(r *workflowRun, n *store.Node, in Input) {
	value := ""
	switch in.Kind {
	case InputSpeech:
		value = in.Text
	case InputDTMF:
		value = in.Digits
	}
	if n.Variable != "" && (n.Type == "gather" || in.Kind != InputTimeout) {
		r.vars[n.Variable] = value
	}
	if msg, ok := userMessage(in); ok {
		r.history = append(r.history, msg)
	}
	if in.Kind == InputSpeech && strings.TrimSpace(in.Text) != "" {
		r.said = strings.TrimSpace(in.Text)
	}
}

// callerSpokeLast reports whether the caller has had the last word: a node that answers the
// caller need not listen first.
func (r *workflowRun) callerSpokeLast() bool {
	return len(r.history) > 0 && r.history[len(r.history)-1].Role == llm.RoleUser
}

// lastWords is what the caller said in the last turn, "" when the caller's last turn was
// keys or the agent spoke since.
func (r *workflowRun) lastWords() string {
	if r.callerSpokeLast() && r.history[len(r.history)-1].Text() == r.said {
		return r.said
	}
	return ""
}

func (b *WorkflowBrain) tool(ctx context.Context, c Conversation, r *workflowRun, n *store.Node) (outcome, error) {
	name := n.Variable
	if name == "" {
		name = n.ID
	}
	args := "{}"
	if strings.TrimSpace(n.Arguments) != "" {
		args = interpolate(n.Arguments, r.vars, true)
	}
	rec := ToolRecord{Name: n.ToolID, Arguments: args}
	t, ok := b.tools[n.ToolID]
	if !ok {
		rec.Error = "the tool is not available to this workflow"
		c.ToolCall(rec)
		r.vars[name] = map[string]any{"error": rec.Error}
		return outcome{failed: true}, nil
	}
	rec.Name = t.Name
	start := time.Now()
	out, err := runWithFiller(ctx, c, b.cfg.FillerPhrase, b.cfg.FillerDelay, &fillerState{}, func(ctx context.Context) (string, error) {
		return b.cfg.Webhooks.Run(ctx, t, args)
	})
	rec.Duration = time.Since(start)
	if errors.Is(err, ErrHangup) || ctx.Err() != nil {
		return outcome{}, errors.Join(err, ctx.Err())
	}
	if err != nil {
		rec.Error = err.Error()
		c.ToolCall(rec)
		r.vars[name] = map[string]any{"error": err.Error()}
		return outcome{failed: true}, nil
	}
	rec.Result = out
	c.ToolCall(rec)
	var v any
	if json.Unmarshal([]byte(out), &v) != nil {
		v = out
	}
	r.vars[name] = v
	return outcome{}, nil
}

func (b *WorkflowBrain) llmTurn(ctx context.Context, c Conversation, r *workflowRun, n *store.Node) (outcome, error) {
	if b.llm == nil {
		_, err := b.say(ctx, c, r, b.cfg.LLMFallback)
		return outcome{failed: true}, err
	}
	var out outcome
	// The model answers the caller: when the caller has not spoken since the agent last
	// did, the node listens first.
	if !r.callerSpokeLast() {
		in, err := c.Listen(ctx, ListenOptions{Timeout: b.cfg.GatherTimeout})
		if err != nil {
			return outcome{}, err
		}
		out.input = &in
		if in.Kind == InputTimeout {
			return out, nil
		}
		b.heard(r, &store.Node{Type: "llm"}, in)
	}
	system := interpolate(n.Instructions, r.vars, false)
	if b.cfg.Agent != nil && strings.TrimSpace(b.cfg.Agent.Instructions) != "" {
		system = strings.TrimSpace(b.cfg.Agent.Instructions + "\n\n" + system)
	}
	if words := r.lastWords(); words != "" {
		// The agent's own knowledge in auto mode, as its LLM brain would use it.
		var err error
		if system, err = b.llm.system(ctx, c, system, words); err != nil {
			return outcome{}, err
		}
	}
	req := &llm.Request{Model: b.cfg.Model, System: system, Messages: modelMessages(trimHistory(r.history, DefaultHistoryLimit))}
	if b.cfg.Agent != nil {
		temp := b.cfg.Agent.Temperature
		req.Temperature = &temp
	}
	ans, err := b.llm.speakAnswer(ctx, c, req)
	if ans.spoken != "" {
		r.history = append(r.history, llm.TextMessage(llm.RoleAssistant, ans.spoken))
	}
	if n.Variable != "" {
		r.vars[n.Variable] = ans.spoken
	}
	var tf *turnFailure
	if errors.As(err, &tf) {
		c.Event("agent.error", map[string]any{"error": tf.err.Error(), "node": n.ID})
		if _, err := b.say(ctx, c, r, b.llm.cfg.Apology); err != nil {
			return outcome{}, err
		}
		out.failed = true
		return out, nil
	}
	return out, err
}

// knowledge searches the node's base for the caller's last words (listening first when the
// caller has not spoken since the agent did) or for the node's query, and speaks what it
// found: the best chunk, or the model's answer from the chunks when the node has
// instructions. It leaves the node by the found edge (the first without a condition, or one
// testing {{variable.found}}) or, having found nothing, by no_match; the variable (the
// node's ID when unnamed) holds {found, text, document, score, query}.
func (b *WorkflowBrain) knowledge(ctx context.Context, c Conversation, r *workflowRun, n *store.Node) (outcome, error) {
	if b.kn == nil {
		_, err := b.say(ctx, c, r, b.cfg.KnowledgeUnavailable)
		return outcome{failed: true}, err
	}
	query := strings.TrimSpace(interpolate(n.Query, r.vars, false))
	if strings.TrimSpace(n.Query) == "" {
		if !r.callerSpokeLast() {
			in, err := c.Listen(ctx, ListenOptions{Timeout: b.cfg.GatherTimeout})
			if err != nil {
				return outcome{}, err
			}
			b.heard(r, &store.Node{Type: "knowledge"}, in)
			if in.Kind == InputTimeout {
				return outcome{input: &in}, nil
			}
		}
		query = r.lastWords()
	}
	name := n.Variable
	if name == "" {
		name = n.ID
	}
	result := map[string]any{"found": false, "text": "", "document": "", "score": 0.0, "query": query}
	r.vars[name] = result
	var hits []knowledge.Hit
	if query != "" {
		var err error
		hits, err = b.kn.search(ctx, c, RetrievalWorkflow, n.ID, query, []string{n.KnowledgeBaseID})
		if err != nil {
			if ctx.Err() != nil {
				return outcome{}, ctx.Err()
			}
			c.Event("agent.error", map[string]any{"error": "knowledge search failed: " + err.Error(), "node": n.ID})
			b.log.Warn("knowledge search failed", "error", err, "node", n.ID)
			result["error"] = err.Error()
			_, err := b.say(ctx, c, r, b.cfg.KnowledgeUnavailable)
			return outcome{failed: true}, err
		}
	}
	if len(hits) == 0 {
		text := n.Text
		if strings.TrimSpace(text) == "" && !b.hasNoMatchEdge(n.ID) {
			text = DefaultKnowledgeNotFound
		}
		_, err := b.say(ctx, c, r, text)
		return outcome{failed: true}, err
	}
	best := hits[0]
	result["found"], result["text"], result["document"], result["score"] = true, best.Text, best.DocumentName, best.Score
	if strings.TrimSpace(n.Instructions) != "" && b.llm != nil {
		ok, err := b.answerFrom(ctx, c, r, n, query, hits)
		if err != nil || ok {
			return outcome{}, err
		}
	}
	_, err := b.say(ctx, c, r, spokenChunk(best.Text))
	return outcome{}, err
}

// answerFrom has the model answer the caller from hits, steered by the node's instructions;
// false when the model failed (the caller then hears the best chunk instead).
func (b *WorkflowBrain) answerFrom(ctx context.Context, c Conversation, r *workflowRun, n *store.Node, query string, hits []knowledge.Hit) (bool, error) {
	system := interpolate(n.Instructions, r.vars, false)
	if b.cfg.Agent != nil && strings.TrimSpace(b.cfg.Agent.Instructions) != "" {
		system = b.cfg.Agent.Instructions + "\n\n" + system
	}
	system = strings.TrimSpace(system) + "\n\n" + contextPrompt(hits, b.kn.settings.MaxChars)
	msgs := trimHistory(r.history, DefaultHistoryLimit)
	if !r.callerSpokeLast() {
		msgs = append(slices.Clone(msgs), llm.TextMessage(llm.RoleUser, query))
	}
	req := &llm.Request{Model: b.cfg.Model, System: system, Messages: modelMessages(msgs)}
	if b.cfg.Agent != nil {
		temp := b.cfg.Agent.Temperature
		req.Temperature = &temp
	}
	ans, err := b.llm.speakAnswer(ctx, c, req)
	if ans.spoken != "" {
		r.history = append(r.history, llm.TextMessage(llm.RoleAssistant, ans.spoken))
	}
	var tf *turnFailure
	if errors.As(err, &tf) {
		c.Event("agent.error", map[string]any{"error": tf.err.Error(), "node": n.ID})
		return ans.spoken != "", nil
	}
	return true, err
}

// hasNoMatchEdge reports whether a node has a no_match edge to take when it finds nothing.
func (b *WorkflowBrain) hasNoMatchEdge(id string) bool {
	for _, e := range b.edges[id] {
		if e.When != nil && e.When.NoMatch {
			return true
		}
	}
	return false
}

func (b *WorkflowBrain) voicemail(ctx context.Context, c Conversation, r *workflowRun, n *store.Node) (outcome, error) {
	prompt := n.Text
	if strings.TrimSpace(prompt) == "" {
		prompt = b.cfg.VoicemailPrompt
	}
	if _, err := b.say(ctx, c, r, prompt); err != nil {
		return outcome{}, err
	}
	opts := RecordOptions{Beep: true, StopOnDTMF: true, MaxDuration: time.Duration(n.TimeoutMS) * time.Millisecond}
	rec, err := c.Record(ctx, opts)
	if err != nil {
		return outcome{}, err
	}
	bye := b.cfg.VoicemailThanks
	switch {
	case b.cfg.SaveVoicemail == nil:
		err = errors.New("no place to keep voicemail is configured")
	default:
		err = b.cfg.SaveVoicemail(context.WithoutCancel(ctx), rec)
	}
	if err != nil {
		c.Event("agent.error", map[string]any{"error": "voicemail not saved: " + err.Error(), "node": n.ID})
		b.log.Error("voicemail not saved", "error", err, "node", n.ID)
		bye = b.cfg.VoicemailFailed
	} else {
		c.Event("workflow.voicemail", map[string]any{"node": n.ID, "duration_ms": rec.Duration.Milliseconds()})
	}
	if _, err := b.say(ctx, c, r, bye); err != nil {
		return outcome{}, err
	}
	c.Hangup(string(call.ReasonAgentHangup))
	return outcome{end: true}, nil
}

// next chooses the edge out of n: the first whose condition holds (keys, keywords, intent,
// variable); then a timeout edge for a gather that heard nothing; then a no_match edge when
// something was to be matched and nothing was, or the node failed; then the first edge
// without a condition.
func (b *WorkflowBrain) next(ctx context.Context, c Conversation, r *workflowRun, n *store.Node, out outcome) (string, bool) {
	edges := b.edges[n.ID]
	intent := lazyIntent{b: b, ctx: ctx, c: c, edges: edges, in: out.input}
	matchable := out.input != nil || n.Type == "branch"
	for _, e := range edges {
		if e.When == nil || !positive(e.When) {
			continue
		}
		matchable = true
		if b.holds(e.When, r, out.input, &intent) {
			return e.To, true
		}
	}
	if out.input != nil && out.input.Kind == InputTimeout {
		for _, e := range edges {
			if e.When != nil && e.When.Timeout {
				return e.To, true
			}
		}
	}
	if out.failed || matchable {
		for _, e := range edges {
			if e.When != nil && e.When.NoMatch {
				return e.To, true
			}
		}
	}
	for _, e := range edges {
		if e.When == nil {
			return e.To, true
		}
	}
	return "", false
}

// positive reports a condition that tests something (rather than timeout or no_match).
func positive(w *store.Condition) bool {
	return w.DTMF != "" || len(w.Keywords) > 0 || w.Intent != "" || w.Variable != ""
}

// holds reports whether the condition's tests pass: every one of them, except that keys and
// words are two ways of answering one prompt ("press 1 or say hours"), so a condition with
// both holds when either matches.
func (b *WorkflowBrain) holds(w *store.Condition, r *workflowRun, in *Input, intent *lazyIntent) bool {
	if w.Timeout || w.NoMatch {
		if in == nil || in.Kind != InputTimeout || w.NoMatch {
			return false
		}
	}
	if w.DTMF != "" || len(w.Keywords) > 0 {
		byKey := w.DTMF != "" && in != nil && in.Kind == InputDTMF && in.Digits == w.DTMF
		byWord := len(w.Keywords) > 0 && in != nil && in.Kind == InputSpeech && anyKeyword(in.Text, w.Keywords)
		if !byKey && !byWord {
			return false
		}
	}
	if w.Variable != "" {
		v, _ := lookup(r.vars, w.Variable)
		if !strings.EqualFold(strings.TrimSpace(valueText(v)), strings.TrimSpace(w.Equals)) {
			return false
		}
	}
	if w.Intent != "" && !strings.EqualFold(intent.get(), w.Intent) {
		return false
	}
	return true
}

// words splits text into lower-case words of letters and digits.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

// anyKeyword reports whether one of the keywords (a word or a phrase) is said in text, as
// whole words, ignoring case.
func anyKeyword(text string, keywords []string) bool {
	said := words(text)
	for _, k := range keywords {
		kw := words(k)
		if len(kw) == 0 {
			continue
		}
		for i := 0; i+len(kw) <= len(said); i++ {
			match := true
			for j := range kw {
				if said[i+j] != kw[j] {
					match = false
					break
				}
			}
			if match {
				return true
			}
		}
	}
	return false
}

// lazyIntent asks the model which intent the caller's words express, once, and only when
// an edge needs it.
type lazyIntent struct {
	b     *WorkflowBrain
	ctx   context.Context
	c     Conversation
	edges []store.Edge
	in    *Input
	done  bool
	value string
}

func (l *lazyIntent) get() string {
	if l.done {
		return l.value
	}
	l.done = true
	if l.b.cfg.Provider == nil || l.in == nil || l.in.Kind != InputSpeech || strings.TrimSpace(l.in.Text) == "" {
		return ""
	}
	var intents []string
	for _, e := range l.edges {
		if e.When != nil && e.When.Intent != "" {
			intents = append(intents, e.When.Intent)
		}
	}
	req := &llm.Request{Model: l.b.cfg.Model, MaxTokens: 20,
		System: "Classify what the caller said into exactly one of these intents: " + strings.Join(intents, ", ") +
			". Answer with the intent's name only, or \"none\" if none fits.",
		Messages: []llm.Message{llm.TextMessage(llm.RoleUser, l.in.Text)}}
	zero := 0.0
	req.Temperature = &zero
	resp, err := l.b.cfg.Provider.Complete(l.ctx, req)
	if err != nil {
		l.c.Event("agent.error", map[string]any{"error": "intent not recognised: " + err.Error()})
		return ""
	}
	l.c.Usage(resp.Usage)
	answer := strings.Trim(strings.TrimSpace(resp.Content), ".\"'` ")
	for _, it := range intents {
		if strings.EqualFold(answer, it) {
			l.value = it
		}
	}
	return l.value
}

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}`)

// interpolate fills in the {{variables}} of text; unknown ones are empty. For JSON, the
// values are escaped to sit inside a JSON string.
func interpolate(text string, vars map[string]any, forJSON bool) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		v, _ := lookup(vars, placeholder.FindStringSubmatch(m)[1])
		s := valueText(v)
		if forJSON {
			q, _ := json.Marshal(s)
			s = string(q[1 : len(q)-1])
		}
		return s
	})
}

// lookup finds a variable by a dotted path into JSON objects (and arrays, by index).
func lookup(vars map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	v, ok := vars[parts[0]]
	for _, p := range parts[1:] {
		if !ok {
			return nil, false
		}
		switch x := v.(type) {
		case map[string]any:
			v, ok = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			ok = err == nil && i >= 0 && i < len(x)
			if ok {
				v = x[i]
			}
		default:
			return nil, false
		}
	}
	return v, ok
}

// valueText is a variable as text: strings as they are, numbers without needless
// decimals, objects and arrays as JSON.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
