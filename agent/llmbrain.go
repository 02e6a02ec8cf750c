package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/agent/llm"
	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// The built-in tools of the LLM brain: the model ends, transfers, and plays keys itself.
const (
	ToolEndCall      = "end_call"
	ToolTransferCall = "transfer_call"
	ToolSendDTMF     = "send_dtmf"
)

// Defaults of the LLM brain.
const (
	DefaultFillerPhrase = "One moment."
	DefaultFillerDelay  = time.Second
	DefaultApology      = "Sorry, I'm having trouble right now. Please try again in a moment."
	DefaultErrorGoodbye = "Sorry, I'm having technical difficulties. Please call back later. Goodbye."
	// MaxConsecutiveFailures is how many turns in a row may fail before the call is ended.
	MaxConsecutiveFailures = 3
	// DefaultHistoryLimit bounds the messages sent to the model.
	DefaultHistoryLimit = 200
	// conversationStart opens the messages sent to a model when the agent spoke first:
	// Anthropic's API refuses a conversation that does not start with the user.
	conversationStart = "[conversation started]"
)

// errCallEnded ends a brain's loop once it hung up or transferred the call itself.
var errCallEnded = errors.New("agent: the brain ended the call")

// LLMBrainConfig is what an LLM brain needs: the agent, the model that speaks for it, and
// the tools it may call.
type LLMBrainConfig struct {
	Agent *store.Agent
	// Provider and Model are the agent's "provider/model" resolved (llm.Registry.Resolve).
	Provider llm.Provider
	Model    string
	// Tools are the agent's webhook tools, run through Webhooks.
	Tools    []*store.Tool
	Webhooks *Webhooks
	// Builtins are the built-in tools offered to the model (ToolEndCall, ToolTransferCall,
	// ToolSendDTMF); nil offers all three, an empty non-nil slice none. transfer_call is
	// offered only to an agent with transfer targets, and accepts only those (the model is
	// told them).
	Builtins []string
	// FillerPhrase is said when a tool runs longer than FillerDelay (DefaultFillerPhrase
	// and DefaultFillerDelay when zero; a negative FillerDelay says nothing).
	FillerPhrase string
	FillerDelay  time.Duration
	// ToolTimeout bounds a webhook tool beyond its own timeout; zero leaves it to the tool.
	ToolTimeout time.Duration
	// Retries is how many times a completion that failed before anything was said is asked
	// again (zero: 2; negative: none), RetryDelay the wait before the first retry (zero:
	// 300 ms), doubled each time.
	Retries    int
	RetryDelay time.Duration
	// Apology and ErrorGoodbye replace DefaultApology and DefaultErrorGoodbye.
	Apology, ErrorGoodbye string
	// MaxTokens caps each answer; zero leaves it to the provider.
	MaxTokens int
	// HistoryLimit is how many messages of the conversation the model is sent at most
	// (zero: DefaultHistoryLimit); the oldest turns go first.
	HistoryLimit int
	// Knowledge searches the agent's knowledge bases (Agent.KnowledgeBaseIDs) as its
	// knowledge settings say; nil, or an agent without bases, uses none.
	// KnowledgeTimeout bounds one search (zero: DefaultKnowledgeTimeout).
	Knowledge        KnowledgeSearcher
	KnowledgeTimeout time.Duration
	Logger           *slog.Logger
}

// LLMBrain is a model with the agent's instructions and tools, answering the caller turn by
// turn.
type LLMBrain struct {
	cfg      LLMBrainConfig
	tools    []llm.Tool
	webhooks map[string]*store.Tool
	builtins map[string]bool
	// kn is the agent's knowledge in auto or tool mode; nil without.
	kn  *knowledgeUse
	log *slog.Logger
}

// NewLLMBrain returns the brain of an agent answered by a model.
func NewLLMBrain(cfg LLMBrainConfig) Brain { return newLLMBrain(cfg) }

func newLLMBrain(cfg LLMBrainConfig) *LLMBrain {
	if cfg.Agent == nil {
		cfg.Agent = store.NewAgent()
	}
	if cfg.FillerPhrase == "" {
		cfg.FillerPhrase = DefaultFillerPhrase
	}
	if cfg.FillerDelay == 0 {
		cfg.FillerDelay = DefaultFillerDelay
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 2
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 300 * time.Millisecond
	}
	if cfg.Apology == "" {
		cfg.Apology = DefaultApology
	}
	if cfg.ErrorGoodbye == "" {
		cfg.ErrorGoodbye = DefaultErrorGoodbye
	}
	if cfg.Webhooks == nil {
		cfg.Webhooks = NewWebhooks(false)
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = DefaultHistoryLimit
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &LLMBrain{cfg: cfg, webhooks: map[string]*store.Tool{}, builtins: map[string]bool{}, log: log}
	builtins := cfg.Builtins
	if builtins == nil {
		builtins = []string{ToolEndCall, ToolTransferCall, ToolSendDTMF}
	}
	for _, name := range builtins {
		if def, ok := builtinTool(name, cfg.Agent.TransferTargets); ok {
			b.builtins[name] = true
			b.tools = append(b.tools, def)
		}
	}
	if mode := cfg.Agent.Knowledge.WithDefaults().Mode; mode != store.KnowledgeOff && len(cfg.Agent.KnowledgeBaseIDs) > 0 {
		b.kn = newKnowledgeUse(cfg.Knowledge, cfg.Agent.TenantID, cfg.Agent.KnowledgeBaseIDs, cfg.Agent.Knowledge, cfg.KnowledgeTimeout)
	}
	if b.kn != nil && b.kn.settings.Mode == store.KnowledgeTool {
		name, desc, params := knowledgeTool()
		b.builtins[name] = true
		b.tools = append(b.tools, llm.Tool{Name: name, Description: desc, Parameters: params})
	}
	for _, t := range cfg.Tools {
		if b.builtins[t.Name] || b.webhooks[t.Name] != nil {
			log.Warn("agent tool hidden by a tool of the same name", "tool", t.Name, "tool_id", t.ID)
			continue
		}
		params, err := json.Marshal(t.Parameters)
		if err != nil || len(t.Parameters) == 0 {
			params = nil
		}
		b.webhooks[t.Name] = t
		b.tools = append(b.tools, llm.Tool{Name: t.Name, Description: t.Description, Parameters: params})
	}
	return b
}

func builtinTool(name string, targets []string) (llm.Tool, bool) {
	switch name {
	case ToolEndCall:
		return llm.Tool{Name: name, Description: "End the call. Use it when the conversation is over; say goodbye in the goodbye argument.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"goodbye":{"type":"string","description":"What to say before hanging up."}}}`)}, true
	case ToolTransferCall:
		if len(targets) == 0 {
			return llm.Tool{}, false
		}
		to := map[string]any{"type": "string", "description": "The E.164 number or SIP URI to transfer the caller to.", "enum": targets}
		params, _ := json.Marshal(map[string]any{"type": "object", "properties": map[string]any{"to": to}, "required": []string{"to"}})
		return llm.Tool{Name: name, Description: "Transfer the caller to another number or SIP address.", Parameters: params}, true
	case ToolSendDTMF:
		return llm.Tool{Name: name, Description: "Press keys on the phone keypad (to navigate another system's menu).",
			Parameters: json.RawMessage(`{"type":"object","properties":{"digits":{"type":"string","description":"Keys to press: 0-9, *, #."}},"required":["digits"]}`)}, true
	}
	return llm.Tool{}, false
}

// Run says the first message, then answers the caller turn by turn until either side ends
// the call. A caller who hangs up ends it without error.
func (b *LLMBrain) Run(ctx context.Context, c Conversation) error {
	err := b.run(ctx, c)
	if errors.Is(err, ErrHangup) || errors.Is(err, errCallEnded) {
		return nil
	}
	return err
}

func (b *LLMBrain) run(ctx context.Context, c Conversation) error {
	if b.cfg.Provider == nil {
		c.Event("agent.error", map[string]any{"error": "the agent has no model provider"})
		if _, err := c.Say(ctx, b.cfg.ErrorGoodbye); err != nil {
			return err
		}
		c.Hangup(string(callpkg.ReasonError))
		return errCallEnded
	}
	var history []llm.Message
	if first := strings.TrimSpace(b.cfg.Agent.FirstMessage); first != "" {
		sp, err := c.Say(ctx, first)
		if err != nil {
			return err
		}
		if sp.Text != "" {
			history = append(history, llm.TextMessage(llm.RoleAssistant, sp.Text))
		}
	}
	failures := 0
	for {
		in, err := c.Listen(ctx, ListenOptions{})
		if err != nil {
			return err
		}
		msg, ok := userMessage(in)
		if !ok {
			continue
		}
		history = trimHistory(append(history, msg), b.cfg.HistoryLimit)
		query := ""
		if in.Kind == InputSpeech {
			query = in.Text
		}
		// The turn's stages (retrieval, model, tools, speech) are traced under the turn.
		history, err = b.turn(TurnContext(ctx, c), c, history, query)
		if err == nil {
			failures = 0
			continue
		}
		var tf *turnFailure
		if !errors.As(err, &tf) {
			return err
		}
		failures++
		c.Event("agent.error", map[string]any{"error": tf.err.Error(), "consecutive_failures": failures})
		b.log.Warn("model turn failed", "error", tf.err, "consecutive_failures", failures)
		if failures >= MaxConsecutiveFailures {
			if _, err := c.Say(ctx, b.cfg.ErrorGoodbye); err != nil {
				return err
			}
			c.Hangup(string(callpkg.ReasonError))
			return errCallEnded
		}
		if _, err := c.Say(ctx, b.cfg.Apology); err != nil {
			return err
		}
	}
}

// Answer answers the last user message of a text session: history is the conversation so
// far, ending with that message, as stored (the caller trims it to the model's window). It
// returns the messages the answer added: the model's (text and tool calls) and the tools'
// results. ended says the brain ended the conversation (end_call); err is the model's
// failure (a turn that could not be answered after the brain's retries) or ctx's error,
// with what was made before it in added. Unlike a call, a failed turn gets no apology: the
// session stores the failure instead.
func (b *LLMBrain) Answer(ctx context.Context, c Conversation, history []llm.Message) (added []llm.Message, ended bool, err error) {
	if b.cfg.Provider == nil {
		return nil, false, &turnFailure{err: errors.New("the agent has no model provider")}
	}
	n := len(history)
	query := ""
	if n > 0 && history[n-1].Role == llm.RoleUser {
		query = history[n-1].Text()
	}
	out, err := b.turn(ctx, c, slices.Clone(history), query)
	if len(out) > n {
		added = out[n:]
	}
	if errors.Is(err, errCallEnded) || errors.Is(err, ErrHangup) {
		return added, true, nil
	}
	var tf *turnFailure
	if errors.As(err, &tf) {
		return added, false, tf.err
	}
	return added, false, err
}

// userMessage is the caller's input as the model reads it; false for no input.
func userMessage(in Input) (llm.Message, bool) {
	switch in.Kind {
	case InputSpeech:
		if t := strings.TrimSpace(in.Text); t != "" {
			return llm.TextMessage(llm.RoleUser, t), true
		}
	case InputDTMF:
		if in.Digits != "" {
			keys := strings.Join(strings.Split(in.Digits, ""), " ")
			return llm.TextMessage(llm.RoleUser, "[keys pressed: "+keys+"]"), true
		}
	}
	return llm.Message{}, false
}

// trimHistory drops the oldest messages beyond limit, so that what remains starts with
// the caller's words (never with a tool result cut from its call).
func trimHistory(h []llm.Message, limit int) []llm.Message {
	if len(h) <= limit {
		return h
	}
	cut := len(h) - limit
	for cut < len(h) && (h[cut].Role != llm.RoleUser) {
		cut++
	}
	return slices.Clone(h[cut:])
}

// modelMessages are the history as sent to a model: starting with the user.
func modelMessages(h []llm.Message) []llm.Message {
	if len(h) > 0 && h[0].Role != llm.RoleUser {
		return append([]llm.Message{llm.TextMessage(llm.RoleUser, conversationStart)}, h...)
	}
	return h
}

// turnFailure is a turn the model could not answer: the caller gets an apology.
type turnFailure struct{ err error }

func (f *turnFailure) Error() string { return "model turn failed: " + f.err.Error() }
func (f *turnFailure) Unwrap() error { return f.err }

// turn answers the caller's last input: it streams the model's answer into Speak, runs the
// tools it calls and asks again, until the model answers without calling tools. query is
// the caller's words, which knowledge in auto mode is searched with ("" searches nothing).
func (b *LLMBrain) turn(ctx context.Context, c Conversation, history []llm.Message, query string) ([]llm.Message, error) {
	system, err := b.system(ctx, c, b.cfg.Agent.Instructions, query)
	if err != nil {
		return history, err
	}
	for round := 0; ; round++ {
		req := &llm.Request{Model: b.cfg.Model, System: system, Messages: modelMessages(history),
			Tools: b.tools, MaxTokens: b.cfg.MaxTokens}
		temp := b.cfg.Agent.Temperature
		req.Temperature = &temp
		if round >= MaxToolRounds && len(b.tools) > 0 {
			req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceNone}
		}
		ans, err := b.speakAnswer(ctx, c, req)
		if ans.spoken != "" || (len(ans.calls) > 0 && err == nil && !ans.interrupted) {
			msg := llm.Message{Role: llm.RoleAssistant}
			if ans.spoken != "" {
				msg.Content = []llm.Part{llm.TextPart(ans.spoken)}
			}
			if err == nil && !ans.interrupted {
				msg.ToolCalls = ans.calls
			}
			history = append(history, msg)
		}
		if err != nil || ans.interrupted {
			return history, err
		}
		if len(ans.calls) == 0 {
			if ans.spoken == "" && round == 0 {
				// The caller hears nothing: say so where it can be seen.
				c.Event("agent.error", map[string]any{"error": "the model answered with nothing to say"})
			}
			return history, nil
		}
		if round > MaxToolRounds {
			// Calls left without results would make every later request invalid.
			last := &history[len(history)-1]
			last.ToolCalls = nil
			if len(last.Content) == 0 {
				history = history[:len(history)-1]
			}
			return history, &turnFailure{err: fmt.Errorf("the model kept calling tools after %d rounds", round)}
		}
		results, err := b.runTools(ctx, c, ans.calls)
		history = append(history, results...)
		if err != nil {
			return history, err
		}
	}
}

// system is the system prompt of a turn: the instructions and, in knowledge mode auto, the
// chunks that match the caller's words. It is in the system prompt, not the history, so that
// it lives for the one turn it was found for. A failed search costs the turn its documents,
// not its answer; only the conversation ending (ctx, hang-up) is an error.
func (b *LLMBrain) system(ctx context.Context, c Conversation, instructions, query string) (string, error) {
	query = strings.TrimSpace(query)
	if b.kn == nil || b.kn.settings.Mode != store.KnowledgeAuto || query == "" {
		return instructions, nil
	}
	hits, err := b.kn.search(ctx, c, RetrievalAuto, "", query, nil)
	if err != nil {
		if ctx.Err() != nil {
			return instructions, ctx.Err()
		}
		b.log.Warn("knowledge search failed; answering without it", "error", err)
		c.Event("agent.error", map[string]any{"error": "knowledge search failed: " + err.Error(), "stage": "knowledge"})
		return instructions, nil
	}
	block := contextPrompt(hits, b.kn.settings.MaxChars)
	if block == "" {
		return instructions, nil
	}
	if strings.TrimSpace(instructions) == "" {
		return block, nil
	}
	return instructions + "\n\n" + block, nil
}

// answer is what came of one completion.
type answer struct {
	spoken      string
	interrupted bool
	calls       []llm.ToolCall
}

// streamed is what the producer of an answer reports once it stops.
type streamed struct {
	calls []llm.ToolCall
	usage llm.Usage
	stop  llm.StopReason
	err   error
}

// speakAnswer streams one completion, its text spoken as it arrives. A failure before any
// text was spoken is retried; a failure that remains is a *turnFailure.
func (b *LLMBrain) speakAnswer(ctx context.Context, c Conversation, req *llm.Request) (answer, error) {
	text := make(chan string)
	stop := make(chan struct{})
	done := make(chan streamed, 1)
	// Cancelling the stream's context releases an upstream that is slow to send its next
	// delta once the caller interrupted or left.
	streamCtx, span := telemetry.Start(ctx, "model")
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("gen_ai.request.model", req.Model), attribute.Int("gen_ai.request.messages", len(req.Messages)))
	}
	streamCtx, cancelStream := context.WithCancel(streamCtx)
	defer cancelStream()
	obs, _ := c.(TurnObserver)
	if obs != nil {
		obs.StepStart()
	}
	go func() {
		defer close(text)
		done <- b.produce(streamCtx, req, text, stop, obs)
	}()
	sp, speakErr := c.Speak(ctx, text)
	close(stop)
	cancelStream()
	res := <-done
	if res.usage != (llm.Usage{}) {
		c.Usage(res.usage)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("gen_ai.usage.input_tokens", res.usage.InputTokens), attribute.Int("gen_ai.usage.output_tokens", res.usage.OutputTokens),
			attribute.String("gen_ai.response.finish_reason", string(res.stop)), attribute.Int("gen_ai.tool_calls", len(res.calls)),
			attribute.Bool("interrupted", sp.Interrupted))
		telemetry.Fail(span, res.err)
	}
	if obs != nil {
		err := res.err
		if err == nil {
			err = speakErr
		}
		obs.StepFinish(res.stop, err)
	}
	ans := answer{spoken: sp.Text, interrupted: sp.Interrupted, calls: res.calls}
	switch {
	case speakErr != nil:
		return ans, speakErr
	case sp.Interrupted:
		return ans, nil
	case res.err != nil:
		if ctx.Err() != nil {
			return ans, ctx.Err()
		}
		return ans, &turnFailure{err: res.err}
	}
	return ans, nil
}

// produce asks for the completion and sends its text deltas to text until it ends or stop
// is closed, asking again while nothing was sent and the failure may pass.
func (b *LLMBrain) produce(ctx context.Context, req *llm.Request, text chan<- string, stop <-chan struct{}, obs TurnObserver) streamed {
	delay := b.cfg.RetryDelay
	for attempt := 0; ; attempt++ {
		res, sent := b.produceOnce(ctx, req, text, stop, obs)
		if res.err == nil || sent || attempt >= b.cfg.Retries || !retryable(res.err) {
			return res
		}
		b.log.Info("model request failed; asking again", "error", res.err, "attempt", attempt+1)
		select {
		case <-time.After(delay):
		case <-stop:
			return res
		case <-ctx.Done():
			return res
		}
		delay *= 2
	}
}

func (b *LLMBrain) produceOnce(ctx context.Context, req *llm.Request, text chan<- string, stop <-chan struct{}, obs TurnObserver) (res streamed, sent bool) {
	st, err := b.cfg.Provider.Stream(ctx, req)
	if err != nil {
		return streamed{err: err}, false
	}
	defer st.Close()
	var args []strings.Builder
	for {
		d, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.err = err
			return res, sent
		}
		switch d.Kind {
		case llm.DeltaStart:
			res.usage = d.Usage
		case llm.DeltaText:
			if d.Text == "" {
				continue
			}
			if !sent {
				trace.SpanFromContext(ctx).AddEvent("first_token")
			}
			if obs != nil {
				obs.TextDelta(d.Text)
			}
			select {
			case text <- d.Text:
				sent = true
			case <-stop:
				return res, sent
			case <-ctx.Done():
				res.err = ctx.Err()
				return res, sent
			}
		case llm.DeltaToolCall:
			for len(res.calls) <= d.Index {
				res.calls = append(res.calls, llm.ToolCall{})
				args = append(args, strings.Builder{})
			}
			res.calls[d.Index].ID, res.calls[d.Index].Name = d.ToolCall.ID, d.ToolCall.Name
			if obs != nil {
				obs.ToolInputStart(d.ToolCall.ID, d.ToolCall.Name)
			}
		case llm.DeltaToolArgs:
			if d.Index < len(args) {
				args[d.Index].WriteString(d.Text)
				if obs != nil && d.Text != "" {
					obs.ToolInputDelta(res.calls[d.Index].ID, d.Text)
				}
			}
		case llm.DeltaDone:
			res.usage = d.Usage
			res.stop = d.StopReason
		}
	}
	for i := range res.calls {
		res.calls[i].Arguments = args[i].String()
	}
	return res, sent
}

// retryable reports a failure that asking again may cure: no connection, a stalled or
// broken stream, a rate limit, an upstream's own failure.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ue *llm.UpstreamError
	if errors.As(err, &ue) {
		return ue.Status == 0 || ue.Status == http.StatusTooManyRequests || ue.Status == http.StatusRequestTimeout ||
			ue.Status == http.StatusConflict || ue.Status >= 500
	}
	return !errors.Is(err, llm.ErrInvalidRequest) && !errors.Is(err, llm.ErrConfig)
}

// runTools runs a round's tool calls in order and returns their results for the model.
// A built-in that ends the call returns errCallEnded.
func (b *LLMBrain) runTools(ctx context.Context, c Conversation, calls []llm.ToolCall) ([]llm.Message, error) {
	out := make([]llm.Message, 0, len(calls))
	filler := &fillerState{}
	obs, _ := c.(TurnObserver)
	for _, call := range calls {
		if obs != nil {
			obs.ToolInputAvailable(call)
		}
		start := time.Now()
		rec := ToolRecord{ID: call.ID, Name: call.Name, Arguments: call.Arguments}
		tctx, span := telemetry.Start(ctx, "tool")
		if span.IsRecording() {
			span.SetAttributes(attribute.String("gen_ai.tool.name", call.Name), attribute.String("gen_ai.tool.call.id", call.ID))
		}
		result, err := b.runTool(tctx, c, call, filler)
		if !errors.Is(err, errCallEnded) {
			telemetry.Fail(span, err)
		}
		span.End()
		rec.Duration = time.Since(start)
		msg := llm.Message{Role: llm.RoleTool, ToolCallID: call.ID}
		switch {
		case errors.Is(err, errCallEnded) || errors.Is(err, ErrHangup) || ctx.Err() != nil:
			rec.Result = result
			if ctx.Err() != nil {
				rec.Error = ctx.Err().Error()
			}
			c.ToolCall(rec)
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			return out, err
		case err != nil:
			rec.Error = err.Error()
			msg.Content, msg.IsError = []llm.Part{llm.TextPart("Error: " + err.Error())}, true
		default:
			rec.Result = result
			if result == "" {
				result = "ok"
			}
			msg.Content = []llm.Part{llm.TextPart(result)}
		}
		c.ToolCall(rec)
		out = append(out, msg)
	}
	return out, nil
}

// fillerState says whether this round's filler phrase was said: once is enough.
type fillerState struct{ said bool }

func (b *LLMBrain) runTool(ctx context.Context, c Conversation, call llm.ToolCall, filler *fillerState) (string, error) {
	args := map[string]any{}
	if strings.TrimSpace(call.Arguments) != "" {
		if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil {
			return "", fmt.Errorf("the arguments are not a JSON object: %w", err)
		}
	}
	str := func(k string) string { s, _ := args[k].(string); return strings.TrimSpace(s) }
	if b.builtins[call.Name] {
		switch call.Name {
		case ToolEndCall:
			if bye := str("goodbye"); bye != "" {
				if _, err := c.Say(ctx, bye); err != nil {
					return "", err
				}
			}
			c.Hangup(string(callpkg.ReasonAgentHangup))
			return "the call was ended", errCallEnded
		case ToolTransferCall:
			to := str("to")
			if err := checkTransferTarget(to, b.cfg.Agent.TransferTargets); err != nil {
				return "", err
			}
			if err := c.Transfer(ctx, to); err != nil {
				if errors.Is(err, ErrHangup) || ctx.Err() != nil {
					return "", err
				}
				return "", fmt.Errorf("the transfer failed: %w", err)
			}
			return "transferred to " + to, errCallEnded
		case ToolKnowledgeSearch:
			query := str("query")
			if query == "" {
				return "", errors.New("query is required: what to look for")
			}
			hits, err := b.kn.search(ctx, c, RetrievalTool, "", query, nil)
			if err != nil {
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
				return "", fmt.Errorf("the knowledge search failed: %w", err)
			}
			return toolResult(hits, b.kn.settings.MaxChars), nil
		case ToolSendDTMF:
			digits := str("digits")
			if digits == "" || strings.Trim(digits, "0123456789*#ABCD") != "" {
				return "", errors.New("digits must be keys from 0-9, *, #, A-D")
			}
			if err := c.SendDTMF(digits); err != nil {
				return "", err
			}
			return "pressed " + digits, nil
		}
	}
	t, ok := b.webhooks[call.Name]
	if !ok {
		return "", fmt.Errorf("there is no tool named %q", call.Name)
	}
	return runWithFiller(ctx, c, b.cfg.FillerPhrase, b.cfg.FillerDelay, filler, func(ctx context.Context) (string, error) {
		if b.cfg.ToolTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, b.cfg.ToolTimeout)
			defer cancel()
		}
		return b.cfg.Webhooks.Run(ctx, t, call.Arguments)
	})
}

// checkTransferTarget refuses a destination that is not one of the agent's.
func checkTransferTarget(to string, allowed []string) error {
	if !slices.Contains(allowed, to) {
		return fmt.Errorf("%q is not a destination this agent may transfer to (allowed: %s)", to, strings.Join(allowed, ", "))
	}
	return nil
}

// runWithFiller runs f, saying phrase once if it is still running after delay (and not
// yet said in this round); f keeps running while the phrase is said.
func runWithFiller(ctx context.Context, c Conversation, phrase string, delay time.Duration, filler *fillerState,
	f func(context.Context) (string, error)) (string, error) {
	type result struct {
		out string
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		out, err := f(ctx)
		done <- result{out, err}
	}()
	if delay < 0 || filler.said {
		r := <-done
		return r.out, r.err
	}
	tm := time.NewTimer(delay)
	defer tm.Stop()
	select {
	case r := <-done:
		return r.out, r.err
	case <-tm.C:
	}
	filler.said = true
	if _, err := c.Say(ctx, phrase); err != nil {
		// The caller left: the tool's answer no longer matters, but wait for it to stop so
		// that nothing outlives the call.
		cancel()
		<-done
		return "", err
	}
	r := <-done
	return r.out, r.err
}
