package store

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Buckets of the call analytics.
const (
	BucketHour = "hour"
	BucketDay  = "day"
)

// CallAnalyticsQuery is what the call analytics sum: the tenant's calls created in
// [From, To), by Bucket, of one agent when AgentID is set.
type CallAnalyticsQuery struct {
	From, To time.Time
	Bucket   string
	AgentID  string
}

// CallFigures are the figures of a set of calls.
type CallFigures struct {
	Calls    int `json:"calls"`
	Answered int `json:"answered"`
	// AnswerRate is Answered / Calls (0 without calls).
	AnswerRate float64 `json:"answer_rate"`
	// The durations are of the answered calls, from answer to end; the percentiles are
	// nearest-rank. Null without an answered call.
	AvgDurationSeconds *float64 `json:"avg_duration_seconds"`
	DurationP50Seconds *float64 `json:"duration_p50_seconds"`
	DurationP90Seconds *float64 `json:"duration_p90_seconds"`
	DurationP99Seconds *float64 `json:"duration_p99_seconds"`
	// The turn latencies are percentiles of the voice-to-voice latency (the caller's last
	// word to the agent's first audio) of the calls' answered spoken turns; null without
	// one. Percentiles are within their histogram bin (±4.5%, see README.md).
	TurnLatencyP50MS *float64 `json:"turn_latency_p50_ms"`
	TurnLatencyP90MS *float64 `json:"turn_latency_p90_ms"`
	TurnLatencyP99MS *float64 `json:"turn_latency_p99_ms"`
	Turns            int64    `json:"turns"`
	Interruptions    int64    `json:"interruptions"`
	ToolCalls        int64    `json:"tool_calls"`
	ToolFailures     int64    `json:"tool_failures"`
	InputTokens      int64    `json:"input_tokens"`
	OutputTokens     int64    `json:"output_tokens"`
	CostUSD          float64  `json:"cost_usd"`
	// EndReasons counts the ended calls by why they ended.
	EndReasons map[string]int `json:"end_reasons"`
}

// CallBucket is the figures of the calls created in one hour or day (UTC).
type CallBucket struct {
	Start time.Time `json:"start"`
	CallFigures
}

// AgentCallFigures is the figures of one agent's calls; AgentID is null for calls no agent
// talked on (built-in destinations, or an agent deleted since).
type AgentCallFigures struct {
	AgentID *string `json:"agent_id"`
	CallFigures
}

// CallAnalytics is the figures of a tenant's calls over a time range: by bucket, by agent
// and in all.
type CallAnalytics struct {
	From    time.Time          `json:"from"`
	To      time.Time          `json:"to"`
	Bucket  string             `json:"bucket"`
	AgentID *string            `json:"agent_id"`
	Buckets []CallBucket       `json:"buckets"`
	Agents  []AgentCallFigures `json:"agents"`
	Total   CallFigures        `json:"total"`
}

// AnalyzeCalls computes the call analytics of the tenant from the database: the hourly
// rollups of the whole hours of the range (call_rollups, rollup.go: at most 24 rows a day
// for each agent, whatever the number of calls), and the calls' own rows for the part
// hours at its edges, summed alike. Counts, sums, averages and costs are exact; the
// percentiles are within their histogram bin (see rollup.go). Buckets without calls are
// not listed.
func AnalyzeCalls(ctx context.Context, s *Store, tenantID string, q CallAnalyticsQuery) (*CallAnalytics, error) {
	if q.Bucket != BucketHour && q.Bucket != BucketDay {
		return nil, &ValidationError{Fields: []FieldError{{Field: "bucket", Message: "must be hour or day"}}}
	}
	from, to := q.From.UTC(), q.To.UTC()
	out := &CallAnalytics{From: from, To: to, Bucket: q.Bucket, Buckets: []CallBucket{}, Agents: []AgentCallFigures{}}
	if q.AgentID != "" {
		id := q.AgentID
		out.AgentID = &id
	}
	shares, err := callShares(ctx, s, tenantID, q.AgentID, from, to)
	if err != nil {
		return nil, err
	}
	buckets := map[time.Time]*callRollup{}
	agents := map[string]*callRollup{}
	total := &callRollup{}
	for _, sh := range shares {
		k := sh.Hour
		if q.Bucket == BucketDay {
			k = time.Date(k.Year(), k.Month(), k.Day(), 0, 0, 0, 0, time.UTC)
		}
		if buckets[k] == nil {
			buckets[k] = &callRollup{}
		}
		if agents[sh.AgentID] == nil {
			agents[sh.AgentID] = &callRollup{}
		}
		for _, r := range []*callRollup{buckets[k], agents[sh.AgentID], total} {
			r.merge(sh, 1)
		}
	}
	out.Total = total.figures()
	for k, r := range buckets {
		if r.Calls > 0 {
			out.Buckets = append(out.Buckets, CallBucket{Start: k, CallFigures: r.figures()})
		}
	}
	sortBuckets(out.Buckets)
	for k, r := range agents {
		if r.Calls == 0 {
			continue
		}
		a := AgentCallFigures{CallFigures: r.figures()}
		if k != "" {
			id := k
			a.AgentID = &id
		}
		out.Agents = append(out.Agents, a)
	}
	sortAgents(out.Agents)
	return out, nil
}

// callShares reads what the tenant's calls created in [from, to) add up to, an hour and an
// agent at a time: the rollups of the whole hours, and the calls' rows of the part hours at
// the edges. The rollups of an agent deleted since count as no agent's, as its calls' rows
// do (their agent_id is set to null).
func callShares(ctx context.Context, s *Store, tenantID, agentID string, from, to time.Time) ([]*callRollup, error) {
	if !from.Before(to) {
		return nil, nil
	}
	first := from.Truncate(time.Hour)
	if first.Before(from) {
		first = first.Add(time.Hour)
	}
	last := to.Truncate(time.Hour)
	var out []*callRollup
	raw := func(from, to time.Time) error {
		if !from.Before(to) {
			return nil
		}
		var facts []callFacts
		q := s.db.NewSelect().Model(&facts).Where("tenant_id = ?", tenantID).
			Where("created_at >= ?", from).Where("created_at < ?", to)
		if agentID != "" {
			q = q.Where("agent_id = ?", agentID)
		}
		if err := q.Scan(ctx); err != nil {
			return classify(err)
		}
		for i := range facts {
			out = append(out, facts[i].share())
		}
		return nil
	}
	if !first.Before(last) || s.rawCalls.Load() {
		return out, raw(from, to)
	}
	if err := raw(from, first); err != nil {
		return nil, err
	}
	if err := raw(last, to); err != nil {
		return nil, err
	}
	var rows []*callRollup
	q := s.db.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID).Where("hour >= ?", first).Where("hour < ?", last)
	if agentID != "" {
		q = q.Where("agent_id = ?", agentID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, classify(err)
	}
	var live []string
	if err := s.db.NewSelect().Table("agents").Column("id").Where("tenant_id = ?", tenantID).Scan(ctx, &live); err != nil {
		return nil, classify(err)
	}
	for _, r := range rows {
		if r.AgentID != "" && !slices.Contains(live, r.AgentID) {
			if agentID != "" {
				continue
			}
			r.AgentID = ""
		}
		r.Hour = r.Hour.UTC()
		out = append(out, r)
	}
	return out, nil
}

// figures are the analytics' figures of what r adds up to.
func (r *callRollup) figures() CallFigures {
	r.init()
	f := CallFigures{Calls: int(r.Calls), Answered: int(r.Answered), Turns: r.Turns, Interruptions: r.Interruptions,
		ToolCalls: r.ToolCalls, ToolFailures: r.ToolFailures, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
		CostUSD: float64(r.CostMicros) / 1e6, EndReasons: map[string]int{}}
	for k, v := range r.EndReasons {
		if v != 0 {
			f.EndReasons[k] = int(v)
		}
	}
	if r.Calls > 0 {
		f.AnswerRate = float64(r.Answered) / float64(r.Calls)
	}
	if r.Answered > 0 {
		avg := float64(r.DurationMS) / 1000 / float64(r.Answered)
		f.AvgDurationSeconds = &avg
	}
	d := []**float64{&f.DurationP50Seconds, &f.DurationP90Seconds, &f.DurationP99Seconds}
	l := []**float64{&f.TurnLatencyP50MS, &f.TurnLatencyP90MS, &f.TurnLatencyP99MS}
	for i, p := range percentiles {
		*d[i] = r.DurationBins.percentile(p, 1000)
		*l[i] = r.LatencyBins.percentile(p, 1000)
	}
	return f
}

// percentiles are the nearest-rank percentiles the analytics give, in hundredths.
var percentiles = []int{50, 90, 99}

func sortBuckets(b []CallBucket) {
	slices.SortFunc(b, func(x, y CallBucket) int { return x.Start.Compare(y.Start) })
}

// sortAgents puts the busiest agents first, then by ID; the calls of no agent last.
func sortAgents(a []AgentCallFigures) {
	slices.SortFunc(a, func(x, y AgentCallFigures) int {
		switch {
		case (x.AgentID == nil) != (y.AgentID == nil):
			if x.AgentID == nil {
				return 1
			}
			return -1
		case x.Calls != y.Calls:
			return y.Calls - x.Calls
		case x.AgentID == nil:
			return 0
		}
		return strings.Compare(*x.AgentID, *y.AgentID)
	})
}

// Kinds of the error log's entries.
const (
	ErrorCallFailed    = "call_failed"    // a call that ended in a failure
	ErrorProvider      = "provider_error" // a model or speech provider failed on a call or in a session
	ErrorTool          = "tool_failure"   // a tool's webhook failed on a call or in a session
	ErrorGatewayFailed = "gateway_error"  // a model gateway request its provider failed
)

// failureReasons are the end reasons of answered calls that ended in a failure (an
// unanswered call that failed has the status failed).
var failureReasons = []string{EndedError, EndedAgentError, EndedMediaTimeout, EndedRestart, EndedNodeLost,
	EndedICEFailed, EndedNoAck, "provider-not-configured"}

// ErrorLogEntry is one entry of the error log.
type ErrorLogEntry struct {
	ID   string    `bun:"id" json:"id"`
	Kind string    `bun:"kind" json:"kind"`
	At   time.Time `bun:"at" json:"at"`
	// CallID or SessionID is the call or session (text conversation) the error was on,
	// and AgentID its agent; all null for a gateway request.
	CallID    *string `bun:"call_id" json:"call_id"`
	SessionID *string `bun:"session_id" json:"session_id"`
	AgentID   *string `bun:"agent_id" json:"agent_id"`
	// Stage is where it failed: the call's end reason, stt, tts, brain, tool, or the
	// gateway's provider.
	Stage   string `bun:"stage" json:"stage"`
	Message string `bun:"message" json:"message"`
}

// ErrorLogQuery narrows the error log: entries in [From, To), of one agent when AgentID is
// set (then without the gateway's, which have none).
type ErrorLogQuery struct {
	From, To time.Time
	AgentID  string
}

// ErrorLog reads a page of the tenant's errors, newest first, and how many there are in
// all: the calls that failed, the provider and tool failures of calls (CallError) and of
// sessions (SessionError), and the gateway's requests that their provider failed (a usage
// record of status 500 or more).
// Each part is read through an index of the tenant's rows by time.
func ErrorLog(ctx context.Context, s *Store, tenantID string, q ErrorLogQuery, page Page) ([]ErrorLogEntry, int, error) {
	from, to := q.From.UTC(), q.To.UTC()
	calls := s.db.NewSelect().Table("calls").
		ColumnExpr("id, ? AS kind, COALESCE(ended_at, created_at) AS at, id AS call_id, NULL AS session_id, agent_id", ErrorCallFailed).
		ColumnExpr("ended_reason AS stage, status AS message").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to).
		WhereGroup(" AND ", func(sq *bun.SelectQuery) *bun.SelectQuery {
			return sq.Where("status = ?", CallFailed).WhereOr("ended_reason IN (?)", bun.List(failureReasons))
		})
	errs := s.db.NewSelect().Table("call_errors").
		ColumnExpr("id, CASE WHEN stage = ? THEN ? ELSE ? END AS kind, created_at AS at, call_id, NULL AS session_id, agent_id", ErrorStageTool, ErrorTool, ErrorProvider).
		ColumnExpr("stage, message").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to)
	sessions := s.db.NewSelect().Table("session_errors").
		ColumnExpr("id, CASE WHEN stage = ? THEN ? ELSE ? END AS kind, created_at AS at, NULL AS call_id, session_id, agent_id", ErrorStageTool, ErrorTool, ErrorProvider).
		ColumnExpr("stage, message").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to)
	parts := []*bun.SelectQuery{calls, errs, sessions}
	if q.AgentID != "" {
		calls.Where("agent_id = ?", q.AgentID)
		errs.Where("agent_id = ?", q.AgentID)
		sessions.Where("agent_id = ?", q.AgentID)
	} else {
		parts = append(parts, s.db.NewSelect().Table("usage_records").
			ColumnExpr("id, ? AS kind, created_at AS at, NULL AS call_id, NULL AS session_id, NULL AS agent_id", ErrorGatewayFailed).
			ColumnExpr("provider AS stage, model || ': status ' || CAST(status AS TEXT) AS message").
			Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to).
			Where("status >= 500"))
	}
	union := parts[0]
	for _, p := range parts[1:] {
		union = union.UnionAll(p)
	}
	var total int
	if err := s.db.NewSelect().TableExpr("(?) AS e", union).ColumnExpr("COUNT(*)").Scan(ctx, &total); err != nil {
		return nil, 0, classify(err)
	}
	items := []ErrorLogEntry{}
	if total > page.Offset {
		err := s.db.NewSelect().TableExpr("(?) AS e", union).ColumnExpr("*").
			OrderExpr("at DESC, id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).Scan(ctx, &items)
		if err != nil {
			return nil, 0, classify(err)
		}
	}
	for i := range items {
		e := &items[i]
		e.At = e.At.UTC()
		switch e.Kind {
		case ErrorCallFailed:
			e.Message = "the call ended " + e.Message + ": " + e.Stage
		case ErrorGatewayFailed:
			e.Message = "the provider " + e.Stage + " failed a request for " + e.Message
		}
	}
	return items, total, nil
}
