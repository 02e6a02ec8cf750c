package voice

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/store"
)

// ReasonProviderNotConfigured ends a call whose agent's model cannot be reached.
const ReasonProviderNotConfigured = "provider-not-configured"

// Call is the call an agent answers, whatever carries it: its stream and signalling (Line),
// and what the runtime keeps with it. A SIP call and a web call are both one.
type Call interface {
	Line
	ID() string
	TenantID() string
	// Log is the call's logger (call_id, tenant_id).
	Log() *slog.Logger
	// SetReport keeps the conversation's report; the call writes it with its own ended
	// reason and duration when it ends.
	SetReport(report map[string]any)
	// SetUsage keeps what the conversation used and what its model and speech cost; the
	// call adds its telephony and writes it all when it ends.
	SetUsage(u store.CallUsage)
	SetMetadata(key string, value any)
}

// RuntimeConfig is what the agents' runtime is built from.
type RuntimeConfig struct {
	// Store holds the agents, their workflows and tools, and the calls' transcripts.
	Store *store.Store
	// Providers resolves each tenant's models and speech; nil: the node has none but the
	// built-in voice.
	Providers *provider.Registry
	// Knowledge searches the agents' knowledge bases; nil: agents have none.
	Knowledge agent.KnowledgeSearcher
	// Webhooks run the agents' tools; nil refuses private addresses.
	Webhooks *agent.Webhooks
	// VoicemailDir keeps voicemails ("<call id>.wav"); "": voicemail is not kept.
	VoicemailDir string
	// Turns counts the latency of the agents' answers for /metrics; nil: not counted.
	Turns *metrics.Turns
	Log   *slog.Logger
}

// Runtime answers the calls routed to agents: it chooses the agent's brain (its workflow,
// or its model with its tools) and its voice and ears, runs the conversation over the call,
// and keeps the transcript, the report and any voicemail with the call.
type Runtime struct {
	cfg RuntimeConfig
}

// NewRuntime is the agents' runtime of cfg.
func NewRuntime(cfg RuntimeConfig) *Runtime {
	if cfg.Providers == nil {
		cfg.Providers = provider.New(provider.Config{Store: cfg.Store})
	}
	if cfg.Webhooks == nil {
		cfg.Webhooks = agent.NewWebhooks(false)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cfg: cfg}
}

// Answer runs agent ag's conversation over call c until it ends. The agent's voice falls
// back to espeak-ng when its own is not available; without its transcriber it hears keys
// only; without its model it apologises and hangs up (provider-not-configured).
func (r *Runtime) Answer(ctx context.Context, c Call, ag *store.Agent) {
	log := c.Log().With("agent", ag.ID)
	tenantID := c.TenantID()
	sp, err := r.cfg.Providers.Speech(ctx, tenantID)
	if err != nil {
		log.Error("tenant providers not readable", "error", err)
		sp = r.cfg.Providers.NodeSpeech()
	}
	vcfg := Config{Language: ag.Transcriber.Language, Voice: ag.Voice.Voice, Speed: ag.Voice.Speed,
		Turn: ag.Turn, Limits: ag.Limits, BargeInDuringFirstMessage: ag.Turn.FirstMessageInterruptible, Turns: r.cfg.Turns, Log: log}
	if vcfg.Language == "" {
		vcfg.Language = ag.Language
	}
	if vcfg.TTS, err = sp.TTS(ag.Voice.Provider); err != nil {
		log.Warn("the agent's voice is not available; speaking with espeak-ng", "provider", ag.Voice.Provider, "error", err)
		vcfg.Voice = ""
	}
	if fallback, err := sp.TTS(speech.EspeakProvider); err == nil {
		vcfg.FallbackTTS = fallback
		if vcfg.TTS == nil {
			vcfg.TTS = fallback
		}
	}
	if vcfg.STT, vcfg.StreamingSTT, err = sp.Transcriber(ag.Transcriber.Provider, ag.Transcriber.Model); err != nil {
		log.Info("the agent's transcriber is not available: keys only", "provider", ag.Transcriber.Provider, "error", err)
	}

	res := Run(ctx, c, r.brain(ctx, c, ag, log), vcfg)
	if err := store.SaveTranscript(context.WithoutCancel(ctx), r.cfg.Store, tenantID, c.ID(), res.Transcript); err != nil {
		log.Warn("transcript not stored", "error", err)
	}
	r.account(context.WithoutCancel(ctx), c, ag, sp, &res.Report, log)
	// The call writes the report with its own ended reason and duration when it ends.
	report, err := jsonMap(res.Report)
	if err != nil {
		log.Warn("report not kept", "error", err)
		return
	}
	c.SetReport(report)
}

// brain chooses what the agent thinks with. An agent whose model cannot be reached gets a
// brain that says so and ends the call with reason provider-not-configured.
func (r *Runtime) brain(ctx context.Context, c Call, ag *store.Agent, log *slog.Logger) agent.Brain {
	tenantID := c.TenantID()
	reg, err := r.cfg.Providers.Models(ctx, tenantID)
	var prov llm.Provider
	var model string
	if err == nil {
		prov, model, err = reg.Resolve(ag.Model)
	}
	tools := r.tools(ctx, tenantID, ag.ToolIDs, log)
	if ag.WorkflowID != nil {
		wf, werr := store.Get[store.Workflow](ctx, r.cfg.Store, tenantID, *ag.WorkflowID)
		if werr != nil {
			log.Error("the agent's workflow is not readable", "error", werr)
			return unavailable{reason: store.EndedError, err: "the agent's workflow is not readable: " + werr.Error()}
		}
		if err != nil { // llm steps say they cannot think
			prov, model = nil, ""
		}
		return agent.NewWorkflowBrain(agent.WorkflowBrainConfig{
			Workflow: wf, Agent: ag, Provider: prov, Model: model, Tools: tools, Webhooks: r.cfg.Webhooks, Knowledge: r.cfg.Knowledge,
			SaveVoicemail: func(ctx context.Context, rec agent.Recording) error { return r.saveVoicemail(c, rec) },
			Logger:        log,
		})
	}
	if err != nil {
		log.Warn("the agent's model cannot be reached", "model", ag.Model, "error", err)
		return unavailable{reason: ReasonProviderNotConfigured, err: err.Error()}
	}
	if session, ok, rerr := r.cfg.Providers.Realtime(ctx, tenantID, ag.Model); rerr == nil && ok {
		return r.realtimeBrain(ag, session, tools, log)
	}
	return agent.NewLLMBrain(agent.LLMBrainConfig{Agent: ag, Provider: prov, Model: model,
		Tools: tools, Webhooks: r.cfg.Webhooks, Knowledge: r.cfg.Knowledge, Logger: log})
}

// unavailableApology is said when an agent cannot take the call at all.
const unavailableApology = "Sorry, this line cannot take calls right now. Please try again later. Goodbye."

// unavailable is a brain that apologises and hangs up with its reason; err, when set, is
// why: an agent.error event, kept in the call's report and error log.
type unavailable struct{ reason, err string }

func (u unavailable) Run(ctx context.Context, c agent.Conversation) error {
	if u.err != "" {
		c.Event(EventError, ErrorEvent{Stage: "brain", Error: u.err})
	}
	_, _ = c.Say(ctx, unavailableApology)
	c.Hangup(u.reason)
	return nil
}

// tools loads the agent's tools; one that went missing is logged and left out.
func (r *Runtime) tools(ctx context.Context, tenantID string, ids []string, log *slog.Logger) []*store.Tool {
	var tools []*store.Tool
	for _, id := range ids {
		t, err := store.Get[store.Tool](ctx, r.cfg.Store, tenantID, id)
		if err != nil {
			log.Warn("the agent's tool is not readable", "tool", id, "error", err)
			continue
		}
		tools = append(tools, t)
	}
	return tools
}

// saveVoicemail keeps a voicemail with the call: a WAV served at
// /api/v1/calls/{id}/voicemail.
func (r *Runtime) saveVoicemail(c Call, rec agent.Recording) error {
	if r.cfg.VoicemailDir == "" {
		return errors.New("voicemail is not kept on this node")
	}
	if err := os.MkdirAll(r.cfg.VoicemailDir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(r.cfg.VoicemailDir, c.ID()+".wav")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, rec.WAV, 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	c.SetMetadata("voicemail_seconds", rec.Duration.Seconds())
	return nil
}

// jsonMap turns a value into the JSON object it marshals to.
func jsonMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(raw, &m)
}
