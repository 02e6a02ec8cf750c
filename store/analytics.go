package store

import (
	"context"
	"fmt"
	"math"
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
	buckets := map[time.Time]*tally{}
	agents := map[string]*tally{}
	total := &tally{}
	groups := func(hour time.Time, agentID string) [3]*tally {
		k := hour
		if q.Bucket == BucketDay {
			k = time.Date(k.Year(), k.Month(), k.Day(), 0, 0, 0, 0, time.UTC)
		}
		if buckets[k] == nil {
			buckets[k] = &tally{}
		}
		if agents[agentID] == nil {
			agents[agentID] = &tally{}
		}
		return [3]*tally{buckets[k], agents[agentID], total}
	}
	if err := callShares(ctx, s, tenantID, q.AgentID, from, to, groups); err != nil {
		return nil, err
	}
	out.Total = total.figures()
	for k, r := range buckets {
		if r.calls > 0 {
			out.Buckets = append(out.Buckets, CallBucket{Start: k, CallFigures: r.figures()})
		}
	}
	sortBuckets(out.Buckets)
	for k, r := range agents {
		if r.calls == 0 {
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

// callShares adds what the tenant's calls created in [from, to) add up to, an hour and an
// agent at a time, into the tallies groups gives for that hour and agent: the rollups of
// the whole hours, and the calls' rows of the part hours at the edges. The rollups of an
// agent deleted since count as no agent's, as its calls' rows do (their agent_id is set to
// null).
func callShares(ctx context.Context, s *Store, tenantID, agentID string, from, to time.Time, groups func(hour time.Time, agentID string) [3]*tally) error {
	if !from.Before(to) {
		return nil
	}
	first := from.Truncate(time.Hour)
	if first.Before(from) {
		first = first.Add(time.Hour)
	}
	last := to.Truncate(time.Hour)
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
			sh := facts[i].share()
			for _, t := range groups(sh.Hour, sh.AgentID) {
				t.addShare(sh)
			}
		}
		return nil
	}
	if !first.Before(last) || s.rawCalls.Load() {
		return raw(from, to)
	}
	if err := raw(from, first); err != nil {
		return err
	}
	if err := raw(last, to); err != nil {
		return err
	}
	var live []string
	if err := s.db.NewSelect().Table("agents").Column("id").Where("tenant_id = ?", tenantID).Scan(ctx, &live); err != nil {
		return classify(err)
	}
	if agentID != "" && !slices.Contains(live, agentID) {
		return nil // its calls are no agent's now
	}
	var rows []rollupRead
	q := s.db.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID).Where("hour >= ?", first).Where("hour < ?", last)
	if agentID != "" {
		q = q.Where("agent_id = ?", agentID)
	}
	if err := q.Scan(ctx); err != nil {
		return classify(err)
	}
	var dur, lat []binCount
	var reasons []reasonCount
	for i := range rows {
		r := &rows[i]
		if r.AgentID != "" && !slices.Contains(live, r.AgentID) {
			r.AgentID = ""
		}
		reasons = reasons[:0]
		err := eachReason(r.EndReasons, func(k []byte, n int64) { reasons = append(reasons, reasonCount{string(k), n}) })
		if err != nil {
			return err
		}
		if dur, err = r.DurationBins.bins(dur[:0]); err != nil {
			return err
		}
		if lat, err = r.LatencyBins.bins(lat[:0]); err != nil {
			return err
		}
		for _, t := range groups(r.Hour.UTC(), r.AgentID) {
			t.addRead(r, reasons, dur, lat)
		}
	}
	return nil
}

// rollupRead is a rollup as the analytics read it: its histograms as read, added into the
// groups' tallies without a map each.
type rollupRead struct {
	bun.BaseModel `bun:"table:call_rollups"`

	Hour          time.Time `bun:"hour"`
	AgentID       string    `bun:"agent_id"`
	Calls         int64     `bun:"calls"`
	Answered      int64     `bun:"answered"`
	DurationMS    int64     `bun:"duration_ms"`
	Turns         int64     `bun:"turns"`
	Interruptions int64     `bun:"interruptions"`
	ToolCalls     int64     `bun:"tool_calls"`
	ToolFailures  int64     `bun:"tool_failures"`
	InputTokens   int64     `bun:"input_tokens"`
	OutputTokens  int64     `bun:"output_tokens"`
	CostMicros    int64     `bun:"cost_micros"`
	EndReasons    rawBins   `bun:"end_reasons"`
	DurationBins  rawBins   `bun:"duration_bins"`
	LatencyBins   rawBins   `bun:"latency_bins"`
}

// rawBins is a histogram's (or the end reasons') text as read.
type rawBins []byte

func (r *rawBins) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		*r = append((*r)[:0], v...)
	case string:
		*r = append((*r)[:0], v...)
	case nil:
		*r = nil
	default:
		return fmt.Errorf("store: histogram from %T", src)
	}
	return nil
}

type reasonCount struct {
	reason string
	n      int64
}

type binCount struct {
	bin int
	e   [2]int64
}

// bins appends the histogram's bins to out.
func (r rawBins) bins(out []binCount) ([]binCount, error) {
	err := eachBin([]byte(r), func(bin int, e [2]int64) { out = append(out, binCount{bin, e}) })
	return out, err
}

// tally sums the calls of one group of the analytics (a bucket, an agent, or all).
type tally struct {
	calls, answered, durationMS, turns, interruptions, toolCalls, toolFailures int64
	inputTokens, outputTokens, costMicros                                      int64
	endReasons                                                                 map[string]int64
	dur, lat                                                                   [maxBin + 1][2]int64
}

func (t *tally) addCounts(calls, answered, durationMS, turns, interruptions, toolCalls, toolFailures, in, out, cost int64, reasons reasonCounts) {
	t.calls += calls
	t.answered += answered
	t.durationMS += durationMS
	t.turns += turns
	t.interruptions += interruptions
	t.toolCalls += toolCalls
	t.toolFailures += toolFailures
	t.inputTokens += in
	t.outputTokens += out
	t.costMicros += cost
	if t.endReasons == nil {
		t.endReasons = map[string]int64{}
	}
	for k, v := range reasons {
		t.endReasons[k] += v
	}
}

// addShare adds one call's share (from its row).
func (t *tally) addShare(r *callRollup) {
	t.addCounts(r.Calls, r.Answered, r.DurationMS, r.Turns, r.Interruptions, r.ToolCalls, r.ToolFailures,
		r.InputTokens, r.OutputTokens, r.CostMicros, r.EndReasons)
	for b, e := range r.DurationBins {
		t.dur[b][0] += e[0]
		t.dur[b][1] += e[1]
	}
	for b, e := range r.LatencyBins {
		t.lat[b][0] += e[0]
		t.lat[b][1] += e[1]
	}
}

// addRead adds a rollup, its end reasons and histograms' bins given.
func (t *tally) addRead(r *rollupRead, reasons []reasonCount, dur, lat []binCount) {
	t.addCounts(r.Calls, r.Answered, r.DurationMS, r.Turns, r.Interruptions, r.ToolCalls, r.ToolFailures,
		r.InputTokens, r.OutputTokens, r.CostMicros, nil)
	for _, c := range reasons {
		t.endReasons[c.reason] += c.n
	}
	for _, c := range dur {
		t.dur[c.bin][0] += c.e[0]
		t.dur[c.bin][1] += c.e[1]
	}
	for _, c := range lat {
		t.lat[c.bin][0] += c.e[0]
		t.lat[c.bin][1] += c.e[1]
	}
}

// figures are the analytics' figures of the tally.
func (t *tally) figures() CallFigures {
	f := CallFigures{Calls: int(t.calls), Answered: int(t.answered), Turns: t.turns, Interruptions: t.interruptions,
		ToolCalls: t.toolCalls, ToolFailures: t.toolFailures, InputTokens: t.inputTokens, OutputTokens: t.outputTokens,
		CostUSD: float64(t.costMicros) / 1e6, EndReasons: map[string]int{}}
	for k, v := range t.endReasons {
		if v != 0 {
			f.EndReasons[k] = int(v)
		}
	}
	if t.calls > 0 {
		f.AnswerRate = float64(t.answered) / float64(t.calls)
	}
	if t.answered > 0 {
		avg := float64(t.durationMS) / 1000 / float64(t.answered)
		f.AvgDurationSeconds = &avg
	}
	d := []**float64{&f.DurationP50Seconds, &f.DurationP90Seconds, &f.DurationP99Seconds}
	l := []**float64{&f.TurnLatencyP50MS, &f.TurnLatencyP90MS, &f.TurnLatencyP99MS}
	for i, p := range percentiles {
		*d[i] = binPercentile(&t.dur, p, 1000)
		*l[i] = binPercentile(&t.lat, p, 1000)
	}
	return f
}

// binPercentile is the nearest-rank percentile p (in hundredths) of the values binned in
// h: the mean of the values in the bin that holds that rank, divided by scale. Nil when
// there are none.
func binPercentile(h *[maxBin + 1][2]int64, p int, scale float64) *float64 {
	var n int64
	for _, e := range h {
		n += e[0]
	}
	if n <= 0 {
		return nil
	}
	rank := (int64(p)*n + 99) / 100
	var seen int64
	for _, e := range h {
		if e[0] <= 0 {
			continue
		}
		if seen += e[0]; seen >= rank {
			v := math.Round(float64(e[1])/float64(e[0])) / scale
			return &v
		}
	}
	return nil
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
// unanswered call that failed has the status failed). The partial index
// calls_tenant_failed_idx holds the calls of these reasons, in this order: a reason added
// here goes into a migration that makes the index again (TestErrorLogUsesFailedIndex).
var failureReasons = []string{EndedError, EndedAgentError, EndedMediaTimeout, EndedRestart, EndedNodeLost,
	EndedICEFailed, EndedNoAck, "provider-not-configured"}

// failedCalls is the condition of a failed call, as calls_tenant_failed_idx has it.
func failedCalls() string {
	quoted := make([]string, len(failureReasons))
	for i, r := range failureReasons {
		quoted[i] = "'" + r + "'"
	}
	return "status = '" + CallFailed + "' OR ended_reason IN (" + strings.Join(quoted, ", ") + ")"
}

// failedCallsQuery is the error log's part of the tenant's failed calls created in
// [from, to), read through calls_tenant_failed_idx.
func (s *Store) failedCallsQuery(tenantID string, from, to time.Time) *bun.SelectQuery {
	return s.db.NewSelect().Table("calls").
		ColumnExpr("id, ? AS kind, COALESCE(ended_at, created_at) AS at, id AS call_id, NULL AS session_id, agent_id", ErrorCallFailed).
		ColumnExpr("ended_reason AS stage, status AS message").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to).
		Where(failedCalls())
}

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
	calls := s.failedCallsQuery(tenantID, from, to)
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
