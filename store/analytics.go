package store

import (
	"context"
	"database/sql"
	"fmt"
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
	// The turn latencies are percentiles of the calls' median voice-to-voice latency
	// (the caller's last word to the agent's first audio), over the calls that had an
	// answered spoken turn; null without one.
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

// AnalyzeCalls computes the call analytics of the tenant in the database: one grouped
// scan of the range for the counts and sums, and one statement for the percentiles by
// bucket, agent and in all (callPercentiles). The range is read through the calls'
// (tenant_id, created_at) index, or (tenant_id, agent_id, created_at) for one agent.
// Buckets without calls are not listed.
func AnalyzeCalls(ctx context.Context, s *Store, tenantID string, q CallAnalyticsQuery) (*CallAnalytics, error) {
	bucket, err := s.bucketExpr(q.Bucket)
	if err != nil {
		return nil, err
	}
	out := &CallAnalytics{From: q.From.UTC(), To: q.To.UTC(), Bucket: q.Bucket, Buckets: []CallBucket{}, Agents: []AgentCallFigures{}}
	if q.AgentID != "" {
		id := q.AgentID
		out.AgentID = &id
	}
	filter := func(sq *bun.SelectQuery) *bun.SelectQuery {
		sq = sq.Where("tenant_id = ?", tenantID).Where("created_at >= ?", q.From.UTC()).Where("created_at < ?", q.To.UTC())
		if q.AgentID != "" {
			sq = sq.Where("agent_id = ?", q.AgentID)
		}
		return sq
	}

	// Counts and sums by bucket, agent and end reason: few groups, merged here into the
	// three groupings.
	var groups []struct {
		K             string         `bun:"k"`
		AgentID       sql.NullString `bun:"agent_id"`
		EndedReason   string         `bun:"ended_reason"`
		Calls         int            `bun:"calls"`
		Answered      int            `bun:"answered"`
		Duration      float64        `bun:"duration"`
		Turns         int64          `bun:"turns"`
		Interruptions int64          `bun:"interruptions"`
		ToolCalls     int64          `bun:"tool_calls"`
		ToolFailures  int64          `bun:"tool_failures"`
		InputTokens   int64          `bun:"input_tokens"`
		OutputTokens  int64          `bun:"output_tokens"`
		CostUSD       float64        `bun:"cost_usd"`
	}
	err = filter(s.db.NewSelect().Table("calls").
		ColumnExpr(bucket+" AS k, agent_id, ended_reason, COUNT(*) AS calls").
		ColumnExpr("SUM(CASE WHEN answered_at IS NULL THEN 0 ELSE 1 END) AS answered").
		ColumnExpr("SUM(CASE WHEN answered_at IS NULL THEN 0.0 ELSE duration_seconds END) AS duration").
		ColumnExpr("SUM(turns) AS turns, SUM(interruptions) AS interruptions, SUM(tool_calls) AS tool_calls").
		ColumnExpr("SUM(tool_failures) AS tool_failures, SUM(input_tokens) AS input_tokens").
		ColumnExpr("SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd")).
		GroupExpr("k, agent_id, ended_reason").Scan(ctx, &groups)
	if err != nil {
		return nil, classify(err)
	}
	buckets := map[string]*CallFigures{}
	agents := map[string]*CallFigures{}
	var bucketKeys, agentKeys []string
	durations := map[*CallFigures]float64{}
	for _, g := range groups {
		agent := "\x00" // the calls no agent talked on
		if g.AgentID.Valid {
			agent = g.AgentID.String
		}
		if buckets[g.K] == nil {
			buckets[g.K] = &CallFigures{EndReasons: map[string]int{}}
			bucketKeys = append(bucketKeys, g.K)
		}
		if agents[agent] == nil {
			agents[agent] = &CallFigures{EndReasons: map[string]int{}}
			agentKeys = append(agentKeys, agent)
		}
		if out.Total.EndReasons == nil {
			out.Total.EndReasons = map[string]int{}
		}
		for _, f := range []*CallFigures{buckets[g.K], agents[agent], &out.Total} {
			f.Calls += g.Calls
			f.Answered += g.Answered
			durations[f] += g.Duration
			f.Turns += g.Turns
			f.Interruptions += g.Interruptions
			f.ToolCalls += g.ToolCalls
			f.ToolFailures += g.ToolFailures
			f.InputTokens += g.InputTokens
			f.OutputTokens += g.OutputTokens
			f.CostUSD += g.CostUSD
			if g.EndedReason != "" {
				f.EndReasons[g.EndedReason] += g.Calls
			}
		}
	}
	if out.Total.EndReasons == nil {
		out.Total.EndReasons = map[string]int{}
	}
	finish := func(f *CallFigures) {
		if f.Calls > 0 {
			f.AnswerRate = float64(f.Answered) / float64(f.Calls)
		}
		if f.Answered > 0 {
			avg := durations[f] / float64(f.Answered)
			f.AvgDurationSeconds = &avg
		}
		f.CostUSD = RoundUSD(f.CostUSD)
	}
	finish(&out.Total)
	if out.Total.Calls == 0 {
		return out, nil
	}

	// Percentiles, by bucket, by agent and in all.
	rows, err := s.callPercentiles(ctx, filter, bucket)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		var f *CallFigures
		switch r.G {
		case groupBucket:
			f = buckets[r.K.String]
		case groupAgent:
			f = agents["\x00"]
			if r.AgentID.Valid {
				f = agents[r.AgentID.String]
			}
		default:
			f = &out.Total
		}
		if f == nil {
			continue // a call made between the two reads
		}
		if r.M != "l" {
			f.DurationP50Seconds, f.DurationP90Seconds, f.DurationP99Seconds = r.D50, r.D90, r.D99
		}
		if r.M != "d" {
			f.TurnLatencyP50MS, f.TurnLatencyP90MS, f.TurnLatencyP99MS = r.L50, r.L90, r.L99
		}
	}

	for _, k := range bucketKeys {
		start, err := parseBucket(k)
		if err != nil {
			return nil, err
		}
		f := buckets[k]
		finish(f)
		out.Buckets = append(out.Buckets, CallBucket{Start: start, CallFigures: *f})
	}
	sortBuckets(out.Buckets)
	for _, k := range agentKeys {
		f := agents[k]
		finish(f)
		a := AgentCallFigures{CallFigures: *f}
		if k != "\x00" {
			id := k
			a.AgentID = &id
		}
		out.Agents = append(out.Agents, a)
	}
	sortAgents(out.Agents)
	return out, nil
}

// Groupings of the percentiles.
const (
	groupBucket = 0
	groupAgent  = 1
	groupTotal  = 2
)

// percentileRow is the percentiles of one group: a bucket (K), an agent (AgentID) or all.
type percentileRow struct {
	G int `bun:"g"`
	// M is the percentiles the row has: "d" the durations', "l" the latencies', "" both.
	M             string         `bun:"m"`
	K             sql.NullString `bun:"k"`
	AgentID       sql.NullString `bun:"agent_id"`
	D50, D90, D99 *float64
	L50, L90, L99 *float64
}

// percentiles are the nearest-rank percentiles the analytics give, in hundredths.
var percentiles = []int{50, 90, 99}

// callPercentiles computes the nearest-rank 50th, 90th and 99th percentiles of the answered
// calls' durations and of the calls' median turn latencies, by bucket, by agent and in all,
// in one statement. PostgreSQL has them as ordered-set aggregates (percentile_disc is the
// nearest rank) over grouping sets: one scan of the range. SQLite has neither: the range is
// read once into a materialized table, and for each grouping and each of the two values the
// rows that have one are ordered once (cume_dist), the percentile p being the smallest value
// whose cumulative share is at least p.
func (s *Store) callPercentiles(ctx context.Context, filter func(*bun.SelectQuery) *bun.SelectQuery, bucket string) ([]percentileRow, error) {
	inner := filter(s.db.NewSelect().Table("calls").
		ColumnExpr(bucket + " AS k, agent_id, duration_seconds AS d, latency_p50_ms AS l").
		ColumnExpr("CASE WHEN answered_at IS NULL THEN 0 ELSE 1 END AS a"))
	var rows []percentileRow
	if s.dialect == Postgres {
		cols := []string{fmt.Sprintf("CASE WHEN GROUPING(k) = 0 THEN %d WHEN GROUPING(agent_id) = 0 THEN %d ELSE %d END AS g, '' AS m, k, agent_id",
			groupBucket, groupAgent, groupTotal)}
		for _, p := range percentiles {
			cols = append(cols,
				fmt.Sprintf("percentile_disc(%d / 100.0) WITHIN GROUP (ORDER BY d) FILTER (WHERE a = 1) AS d%d", p, p),
				fmt.Sprintf("percentile_disc(%d / 100.0) WITHIN GROUP (ORDER BY l) FILTER (WHERE l IS NOT NULL) AS l%d", p, p))
		}
		err := s.db.NewSelect().TableExpr("(?) AS c", inner).ColumnExpr(strings.Join(cols, ", ")).
			GroupExpr("GROUPING SETS ((k), (agent_id), ())").Scan(ctx, &rows)
		return rows, classify(err)
	}
	// cume_dist is the share of the group's values up to this one, ties included: the
	// nearest-rank percentile p is the smallest value whose share is at least p.
	grouping := func(g int, metric string) string {
		over, key, agent, group := "", "NULL", "NULL", ""
		switch g {
		case groupBucket:
			over, key, group = "PARTITION BY k ", "k", " GROUP BY k"
		case groupAgent:
			over, agent, group = "PARTITION BY agent_id ", "agent_id", " GROUP BY agent_id"
		}
		cols := []string{fmt.Sprintf("%d AS g, '%s' AS m, %s AS k, %s AS agent_id", g, metric, key, agent)}
		for _, p := range percentiles {
			for _, m := range []string{"d", "l"} {
				v := "NULL"
				if m == metric {
					v = fmt.Sprintf("MIN(CASE WHEN cd >= %d / 100.0 THEN v END)", p)
				}
				cols = append(cols, fmt.Sprintf("%s AS %s%d", v, m, p))
			}
		}
		where := "a = 1"
		if metric == "l" {
			where = "l IS NOT NULL"
		}
		return "SELECT " + strings.Join(cols, ", ") + " FROM (SELECT k, agent_id, " + metric + " AS v, " +
			"CUME_DIST() OVER (" + over + "ORDER BY " + metric + ") AS cd FROM c WHERE " + where + ") AS w" + group
	}
	var parts []string
	for _, g := range []int{groupBucket, groupAgent, groupTotal} {
		parts = append(parts, grouping(g, "d"), grouping(g, "l"))
	}
	err := s.db.NewRaw("WITH c AS MATERIALIZED (?) "+strings.Join(parts, " UNION ALL "), inner).Scan(ctx, &rows)
	return rows, classify(err)
}

// bucketExpr is the SQL of a call's bucket: its creation time (UTC) cut to the hour
// ("2026-12-07 17") or the day ("2026-12-07").
func (s *Store) bucketExpr(bucket string) (string, error) {
	n := 0
	switch bucket {
	case BucketHour:
		n = 13
	case BucketDay:
		n = 10
	default:
		return "", &ValidationError{Fields: []FieldError{{Field: "bucket", Message: "must be hour or day"}}}
	}
	if s.dialect == SQLite {
		// SQLite keeps times as text, "2026-12-07 17:04:05.123456+00:00", in UTC.
		return fmt.Sprintf("substr(created_at, 1, %d)", n), nil
	}
	if bucket == BucketHour {
		return "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')", nil
	}
	return "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')", nil
}

// parseBucket reads a bucket's key back as the time it starts.
func parseBucket(k string) (time.Time, error) {
	k = strings.Replace(k, "T", " ", 1)
	layout := "2006-01-02"
	if len(k) == 13 {
		layout = "2006-01-02 15"
	}
	t, err := time.ParseInLocation(layout, k, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: bucket %q: %w", k, err)
	}
	return t, nil
}

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
	ErrorProvider      = "provider_error" // a model or speech provider failed on a call
	ErrorTool          = "tool_failure"   // a tool's webhook failed on a call
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
	// CallID and AgentID are the call and agent the error was on; null for a gateway
	// request.
	CallID  *string `bun:"call_id" json:"call_id"`
	AgentID *string `bun:"agent_id" json:"agent_id"`
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
// all: the calls that failed, the provider and tool failures of calls (CallError), and the
// gateway's requests that their provider failed (a usage record of status 500 or more).
// Each part is read through an index of the tenant's rows by time.
func ErrorLog(ctx context.Context, s *Store, tenantID string, q ErrorLogQuery, page Page) ([]ErrorLogEntry, int, error) {
	from, to := q.From.UTC(), q.To.UTC()
	calls := s.db.NewSelect().Table("calls").
		ColumnExpr("id, ? AS kind, COALESCE(ended_at, created_at) AS at, id AS call_id, agent_id", ErrorCallFailed).
		ColumnExpr("ended_reason AS stage, status AS message").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to).
		WhereGroup(" AND ", func(sq *bun.SelectQuery) *bun.SelectQuery {
			return sq.Where("status = ?", CallFailed).WhereOr("ended_reason IN (?)", bun.List(failureReasons))
		})
	errs := s.db.NewSelect().Table("call_errors").
		ColumnExpr("id, CASE WHEN stage = ? THEN ? ELSE ? END AS kind, created_at AS at, call_id, agent_id", ErrorStageTool, ErrorTool, ErrorProvider).
		ColumnExpr("stage, message").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to)
	parts := []*bun.SelectQuery{calls, errs}
	if q.AgentID != "" {
		calls.Where("agent_id = ?", q.AgentID)
		errs.Where("agent_id = ?", q.AgentID)
	} else {
		parts = append(parts, s.db.NewSelect().Table("usage_records").
			ColumnExpr("id, ? AS kind, created_at AS at, NULL AS call_id, NULL AS agent_id", ErrorGatewayFailed).
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
