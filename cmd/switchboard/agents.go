package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/voice"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// ReasonProviderNotConfigured ends a call whose agent's model cannot be reached.
const ReasonProviderNotConfigured = "provider-not-configured"

// agentCalls answers the calls routed to agents: it loads the agent, chooses its brain (its
// workflow, or its model with its tools) and its voice and ears, runs the conversation over
// the call, and keeps the transcript, the report and any voicemail with the call.
type agentCalls struct {
	st *store.Store
	// providers resolves the tenants' models and speech.
	providers *provider.Registry
	webhooks  *agent.Webhooks
	// knowledge searches the agents' knowledge bases (the node's knowledge service).
	knowledge    agent.KnowledgeSearcher
	voicemailDir string
	log          *slog.Logger
}

// AgentHandler implements sip.Agents.
func (a *agentCalls) AgentHandler(ctx context.Context, tenantID, agentID string) (sip.Handler, error) {
	ag, err := store.Get[store.Agent](ctx, a.st, tenantID, agentID)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	return sip.HandlerFunc(func(ctx context.Context, c *sip.Call) { a.serve(ctx, c, ag) }), nil
}

// agentLine is the call an agent talks on: a SIP call (*sip.Call) or a web call (*webCall).
type agentLine interface {
	voice.Line
	ID() string
	TenantID() string
	Log() *slog.Logger
	SetReport(report map[string]any)
	SetMetadata(key string, value any)
}

func (a *agentCalls) serve(ctx context.Context, c agentLine, ag *store.Agent) {
	log := c.Log().With("agent", ag.ID)
	tenantID := c.TenantID()
	sp, err := a.providers.Speech(ctx, tenantID)
	if err != nil {
		log.Error("tenant providers not readable", "error", err)
		sp = a.providers.NodeSpeech()
	}
	vcfg := voice.Config{Language: ag.Transcriber.Language, Voice: ag.Voice.Voice, Speed: ag.Voice.Speed,
		Turn: ag.Turn, Limits: ag.Limits, BargeInDuringFirstMessage: ag.Turn.FirstMessageInterruptible, Log: log}
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
	if vcfg.STT, err = sp.STT(ag.Transcriber.Provider); err != nil {
		log.Info("the agent's transcriber is not available: keys only", "provider", ag.Transcriber.Provider, "error", err)
		vcfg.STT = nil
	}

	res := voice.Run(ctx, c, a.brain(ctx, c, ag, log), vcfg)
	if err := store.SaveTranscript(context.WithoutCancel(ctx), a.st, tenantID, c.ID(), res.Transcript); err != nil {
		log.Warn("transcript not stored", "error", err)
	}
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
func (a *agentCalls) brain(ctx context.Context, c agentLine, ag *store.Agent, log *slog.Logger) agent.Brain {
	tenantID := c.TenantID()
	reg, err := a.providers.Models(ctx, tenantID)
	var provider llm.Provider
	var model string
	if err == nil {
		provider, model, err = reg.Resolve(ag.Model)
	}
	tools := a.tools(ctx, tenantID, ag.ToolIDs, log)
	if ag.WorkflowID != nil {
		wf, werr := store.Get[store.Workflow](ctx, a.st, tenantID, *ag.WorkflowID)
		if werr != nil {
			log.Error("the agent's workflow is not readable", "error", werr)
			return unavailable(sip.ReasonError)
		}
		if err != nil { // llm steps say they cannot think
			provider, model = nil, ""
		}
		return agent.NewWorkflowBrain(agent.WorkflowBrainConfig{
			Workflow: wf, Agent: ag, Provider: provider, Model: model, Tools: tools, Webhooks: a.webhooks, Knowledge: a.knowledge,
			SaveVoicemail: func(ctx context.Context, rec agent.Recording) error { return a.saveVoicemail(c, rec) },
			Logger:        log,
		})
	}
	if err != nil {
		log.Warn("the agent's model cannot be reached", "model", ag.Model, "error", err)
		c.Publish(voice.EventError, voice.ErrorEvent{Stage: "brain", Error: err.Error()})
		return unavailable(ReasonProviderNotConfigured)
	}
	return agent.NewLLMBrain(agent.LLMBrainConfig{Agent: ag, Provider: provider, Model: model,
		Tools: tools, Webhooks: a.webhooks, Knowledge: a.knowledge, Logger: log})
}

// unavailableApology is said when an agent cannot take the call at all.
const unavailableApology = "Sorry, this line cannot take calls right now. Please try again later. Goodbye."

// unavailable is a brain that apologises and hangs up with reason.
func unavailable(reason string) agent.Brain {
	return brainFunc(func(ctx context.Context, c agent.Conversation) error {
		_, _ = c.Say(ctx, unavailableApology)
		c.Hangup(reason)
		return nil
	})
}

type brainFunc func(ctx context.Context, c agent.Conversation) error

func (f brainFunc) Run(ctx context.Context, c agent.Conversation) error { return f(ctx, c) }

// tools loads the agent's tools; one that went missing is logged and left out.
func (a *agentCalls) tools(ctx context.Context, tenantID string, ids []string, log *slog.Logger) []*store.Tool {
	var tools []*store.Tool
	for _, id := range ids {
		t, err := store.Get[store.Tool](ctx, a.st, tenantID, id)
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
func (a *agentCalls) saveVoicemail(c agentLine, rec agent.Recording) error {
	if a.voicemailDir == "" {
		return errors.New("voicemail is not kept on this node")
	}
	path := filepath.Join(a.voicemailDir, c.ID()+".wav")
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
