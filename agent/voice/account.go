package voice

import (
	"context"
	"log/slog"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/store"
)

// account keeps what a call's conversation used and cost: on the call (its record's usage
// columns and the cost in its report, which the call completes with its telephony when it
// ends), as a usage record of the tenant's model use (GET /api/v1/usage; its cost comes off
// the tenant's balance as a gateway request's does), and its failures in the error log.
// Prices are the operator's and the tenant's: the model's of its provider, the speech's of
// the providers the agent listens and speaks through.
func (r *Runtime) account(ctx context.Context, c Call, ag *store.Agent, sp *speech.Registry, rep *Report, log *slog.Logger) {
	tenantID := c.TenantID()
	u := store.CallUsage{
		InputTokens: rep.Usage.InputTokens, OutputTokens: rep.Usage.OutputTokens,
		STTSeconds: rep.STTSeconds, TTSCharacters: rep.TTSCharacters,
		Turns: rep.Turns, Interruptions: rep.Interruptions, ToolCalls: rep.ToolCalls, ToolFailures: rep.ToolFailures,
		LatencyP50MS: rep.LatencyP50MS, TurnLatenciesMS: rep.TurnLatenciesMS,
	}
	rec := &store.UsageRecord{Surface: "call", Model: ag.Model, UpstreamModel: ag.Model, Status: 200,
		InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, Source: store.UsageCall, SourceID: c.ID()}
	rec.TenantID = tenantID
	if reg, err := r.cfg.Providers.Models(ctx, tenantID); err == nil {
		if rt, err := reg.Route(ag.Model); err == nil {
			rec.Provider, rec.UpstreamModel = rt.ProviderName, rt.Upstream
			if rt.Price != nil {
				u.Cost.Model = rt.Price.Cost(rep.Usage)
			}
		}
	}
	if sp != nil {
		u.Cost.STT = sp.Price(ag.Transcriber.Provider).STTCost(rep.STTSeconds)
		u.Cost.TTS = sp.Price(ag.Voice.Provider).TTSCost(rep.TTSCharacters)
	}
	u.Cost.Sum()
	u.CostUSD = u.Cost.Total
	c.SetUsage(u)

	if r.cfg.Store == nil {
		return
	}
	if rec.InputTokens > 0 || rec.OutputTokens > 0 {
		rec.CostUSD = u.Cost.Model
		if err := r.cfg.Store.CreateUsage(ctx, []*store.UsageRecord{rec}); err != nil {
			log.Warn("the call's model usage not recorded", "error", err)
		}
	}
	if len(rep.Errors) > 0 {
		errs := make([]store.CallError, len(rep.Errors))
		for i, e := range rep.Errors {
			errs[i] = store.CallError{Stage: e.Stage, Message: e.Message, CreatedAt: e.At}
		}
		agentID := ag.ID
		if err := store.CreateCallErrors(ctx, r.cfg.Store, tenantID, c.ID(), &agentID, errs); err != nil {
			log.Warn("the call's errors not kept", "error", err)
		}
	}
}
