package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// The analytics read a tenant's calls through hourly rollups: what the calls created in one
// hour (UTC) add up to, by agent (call_rollups). Every write of a call's row in this package
// goes through rollCalls, which reads the calls' figures before and after the write, in the
// same transaction, and applies the difference to their rollups: a rollup can never count a
// call its row does not, nor miss one, whatever wrote it (the call writer, a node failing a
// lost node's calls, the generic Create and Update).
//
// Percentiles come from histograms with log-spaced bins, eight to a doubling: a value lies
// within 9% of its bin's bounds. Each bin keeps its count and the sum of its values, and a
// percentile is the mean of the values in the bin where its rank falls: exact when they are
// all equal, within the bin (±4.5% of the true value, or below the bin unit) otherwise.

// Units of the histograms' bins: a duration below 10 ms and a latency below 1 ms are in bin
// 0, then every doubling is binsPerDoubling bins.
const (
	binsPerDoubling = 8
	maxBin          = 400
	durationUnitMS  = 10
	latencyUnitUS   = 1000
)

// binOf is the bin of v, counted in units of unit: 0 below one unit.
func binOf(v, unit int64) int {
	if v < unit {
		return 0
	}
	return min(maxBin, 1+int(math.Floor(math.Log2(float64(v)/float64(unit))*binsPerDoubling)))
}

// histogram is a rollup's histogram: bin -> [count, sum of the values].
type histogram map[int][2]int64

// Value writes the histogram as JSON, {"bin": [count, sum], …}.
func (h histogram) Value() (driver.Value, error) {
	if h == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[int][2]int64(h))
	return string(b), err
}

// Scan reads what Value wrote.
func (h *histogram) Scan(src any) error {
	out := histogram{}
	err := eachBin(src, func(bin int, e [2]int64) { out[bin] = e })
	*h = out
	return err
}

// eachBin calls fn with each bin of a histogram as Value writes it, read without reflection:
// a month of rollups is thousands of histograms read at each look.
func eachBin(src any, fn func(bin int, e [2]int64)) error {
	b, err := srcBytes(src)
	if err != nil {
		return err
	}
	var nums [3]int64
	k, neg, in := 0, false, false
	var v int64
	for i := 0; i <= len(b); i++ {
		c := byte(' ')
		if i < len(b) {
			c = b[i]
		}
		switch {
		case c >= '0' && c <= '9':
			v, in = v*10+int64(c-'0'), true
			continue
		case c == '-':
			neg = true
			continue
		case c == '.', c == 'e', c == 'E':
			return fmt.Errorf("store: histogram %q: counts and sums are integers", b)
		}
		if !in {
			continue
		}
		if neg {
			v = -v
		}
		nums[k] = v
		k, v, neg, in = k+1, 0, false, false
		if k == 3 {
			if nums[0] < 0 || nums[0] > maxBin {
				return fmt.Errorf("store: histogram %q: no bin %d", b, nums[0])
			}
			fn(int(nums[0]), [2]int64{nums[1], nums[2]})
			k = 0
		}
	}
	if k != 0 {
		return fmt.Errorf("store: histogram %q: a bin without its count and sum", b)
	}
	return nil
}

func (h histogram) add(v int64, unit int64, sign int64) {
	b := binOf(v, unit)
	e := h[b]
	e[0] += sign
	e[1] += sign * v
	if e == [2]int64{} {
		delete(h, b)
		return
	}
	h[b] = e
}

func (h histogram) merge(o histogram, sign int64) {
	for b, e := range o {
		x := h[b]
		x[0] += sign * e[0]
		x[1] += sign * e[1]
		if x == [2]int64{} {
			delete(h, b)
			continue
		}
		h[b] = x
	}
}

// reasonCounts counts calls by end reason, kept as JSON ({"reason": count, …}).
type reasonCounts map[string]int64

// Value writes the counts as JSON.
func (r reasonCounts) Value() (driver.Value, error) {
	if r == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[string]int64(r))
	return string(b), err
}

// Scan reads what Value wrote.
func (r *reasonCounts) Scan(src any) error {
	out := reasonCounts{}
	b, err := srcBytes(src)
	if err == nil {
		err = eachReason(b, func(k []byte, n int64) { out[string(k)] += n })
	}
	*r = out
	return err
}

// eachReason calls fn with each end reason and count of reasonCounts' JSON, read without
// reflection (end reasons are plain words: one with an escape is read by encoding/json).
func eachReason(b []byte, fn func(k []byte, n int64)) error {
	if bytes.IndexByte(b, '\\') >= 0 {
		var m map[string]int64
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		for k, n := range m {
			fn([]byte(k), n)
		}
		return nil
	}
	for i := 0; i < len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return nil
		}
		start := i + q + 1
		end := bytes.IndexByte(b[start:], '"')
		if end < 0 {
			return fmt.Errorf("store: end reasons %q: a key without its end", b)
		}
		key := b[start : start+end]
		j := start + end + 1
		for j < len(b) && (b[j] == ':' || b[j] == ' ') {
			j++
		}
		neg := j < len(b) && b[j] == '-'
		if neg {
			j++
		}
		var n int64
		digits := 0
		for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
			n, digits = n*10+int64(b[j]-'0'), digits+1
		}
		if digits == 0 {
			return fmt.Errorf("store: end reasons %q: %q without a count", b, key)
		}
		if neg {
			n = -n
		}
		fn(key, n)
		i = j
	}
	return nil
}

// srcBytes is a text column's value as bytes.
func srcBytes(src any) ([]byte, error) {
	switch v := src.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("store: text from %T", src)
}

// callRollup is one row of call_rollups, or the change to apply to one.
type callRollup struct {
	bun.BaseModel `bun:"table:call_rollups"`

	TenantID      string       `bun:"tenant_id,pk"`
	Hour          time.Time    `bun:"hour,pk"`
	AgentID       string       `bun:"agent_id,pk"`
	Calls         int64        `bun:"calls,notnull"`
	Answered      int64        `bun:"answered,notnull"`
	DurationMS    int64        `bun:"duration_ms,notnull"`
	Turns         int64        `bun:"turns,notnull"`
	Interruptions int64        `bun:"interruptions,notnull"`
	ToolCalls     int64        `bun:"tool_calls,notnull"`
	ToolFailures  int64        `bun:"tool_failures,notnull"`
	InputTokens   int64        `bun:"input_tokens,notnull"`
	OutputTokens  int64        `bun:"output_tokens,notnull"`
	CostMicros    int64        `bun:"cost_micros,notnull"`
	EndReasons    reasonCounts `bun:"end_reasons,notnull"`
	DurationBins  histogram    `bun:"duration_bins,notnull"`
	LatencyBins   histogram    `bun:"latency_bins,notnull"`
}

type rollupKey struct {
	tenantID, agentID string
	hour              int64 // Unix seconds
}

func (r *callRollup) key() rollupKey {
	return rollupKey{tenantID: r.TenantID, agentID: r.AgentID, hour: r.Hour.Unix()}
}

func (r *callRollup) init() {
	if r.EndReasons == nil {
		r.EndReasons = reasonCounts{}
	}
	if r.DurationBins == nil {
		r.DurationBins = histogram{}
	}
	if r.LatencyBins == nil {
		r.LatencyBins = histogram{}
	}
}

// merge adds o (sign 1) or takes it away (sign -1).
func (r *callRollup) merge(o *callRollup, sign int64) {
	r.init()
	r.Calls += sign * o.Calls
	r.Answered += sign * o.Answered
	r.DurationMS += sign * o.DurationMS
	r.Turns += sign * o.Turns
	r.Interruptions += sign * o.Interruptions
	r.ToolCalls += sign * o.ToolCalls
	r.ToolFailures += sign * o.ToolFailures
	r.InputTokens += sign * o.InputTokens
	r.OutputTokens += sign * o.OutputTokens
	r.CostMicros += sign * o.CostMicros
	for k, v := range o.EndReasons {
		if r.EndReasons[k] += sign * v; r.EndReasons[k] == 0 {
			delete(r.EndReasons, k)
		}
	}
	r.DurationBins.merge(o.DurationBins, sign)
	r.LatencyBins.merge(o.LatencyBins, sign)
}

// zero says the rollup counts nothing.
func (r *callRollup) zero() bool {
	return r.Calls == 0 && r.Answered == 0 && r.DurationMS == 0 && r.Turns == 0 && r.Interruptions == 0 &&
		r.ToolCalls == 0 && r.ToolFailures == 0 && r.InputTokens == 0 && r.OutputTokens == 0 && r.CostMicros == 0 &&
		len(r.EndReasons) == 0 && len(r.DurationBins) == 0 && len(r.LatencyBins) == 0
}

// callFacts are the columns of a call that its rollup counts.
type callFacts struct {
	bun.BaseModel `bun:"table:calls"`

	ID              string         `bun:"id"`
	TenantID        string         `bun:"tenant_id"`
	AgentID         sql.NullString `bun:"agent_id"`
	CreatedAt       time.Time      `bun:"created_at"`
	AnsweredAt      *time.Time     `bun:"answered_at"`
	EndedReason     string         `bun:"ended_reason"`
	DurationSeconds float64        `bun:"duration_seconds"`
	Turns           int64          `bun:"turns"`
	Interruptions   int64          `bun:"interruptions"`
	ToolCalls       int64          `bun:"tool_calls"`
	ToolFailures    int64          `bun:"tool_failures"`
	InputTokens     int64          `bun:"input_tokens"`
	OutputTokens    int64          `bun:"output_tokens"`
	CostUSD         float64        `bun:"cost_usd"`
	LatencyP50MS    *float64       `bun:"latency_p50_ms"`
	TurnLatenciesMS []float64      `bun:"turn_latencies_ms,type:json"`
}

// share is what one call adds to its hour's rollup.
func (f *callFacts) share() *callRollup {
	r := &callRollup{TenantID: f.TenantID, AgentID: f.AgentID.String, Hour: f.CreatedAt.UTC().Truncate(time.Hour), Calls: 1,
		Turns: f.Turns, Interruptions: f.Interruptions, ToolCalls: f.ToolCalls, ToolFailures: f.ToolFailures,
		InputTokens: f.InputTokens, OutputTokens: f.OutputTokens, CostMicros: int64(math.Round(finite(f.CostUSD) * 1e6))}
	r.init()
	if f.AnsweredAt != nil {
		ms := int64(math.Round(max(0, finite(f.DurationSeconds)) * 1000))
		r.Answered, r.DurationMS = 1, ms
		r.DurationBins.add(ms, durationUnitMS, 1)
	}
	if f.EndedReason != "" {
		r.EndReasons[f.EndedReason] = 1
	}
	latencies := f.TurnLatenciesMS
	if latencies == nil && f.LatencyP50MS != nil {
		// A call recorded before its turns' latencies were kept: its median stands for them.
		latencies = []float64{*f.LatencyP50MS}
	}
	for _, l := range latencies {
		if l = finite(l); l >= 0 {
			r.LatencyBins.add(int64(math.Round(l*1000)), latencyUnitUS, 1)
		}
	}
	return r
}

// readFacts reads the figures of the calls ids, locking their rows on PostgreSQL so that
// nothing changes them before the transaction that reads them ends.
func readFacts(ctx context.Context, db bun.IDB, d Dialect, ids []string, lock bool) ([]callFacts, error) {
	var out []callFacts
	q := db.NewSelect().Model(&out).Where("id IN (?)", bun.List(ids)).Order("id")
	if lock && d == Postgres {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// rollCalls runs write, which changes the rows of the calls ids inside db's transaction,
// and applies the change of their figures to their rollups in the same transaction. Every
// write of calls' rows goes through it. The rollups are written in the order of their keys,
// so that transactions touching the same ones take their locks in one order.
func rollCalls(ctx context.Context, db bun.IDB, d Dialect, ids []string, write func() error) error {
	if len(ids) == 0 {
		return write()
	}
	before, err := readFacts(ctx, db, d, ids, true)
	if err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	after, err := readFacts(ctx, db, d, ids, false)
	if err != nil {
		return err
	}
	changes := map[rollupKey]*callRollup{}
	for sign, facts := range map[int64][]callFacts{-1: before, 1: after} {
		for i := range facts {
			sh := facts[i].share()
			k := sh.key()
			if changes[k] == nil {
				changes[k] = &callRollup{TenantID: sh.TenantID, Hour: sh.Hour, AgentID: sh.AgentID}
			}
			changes[k].merge(sh, sign)
		}
	}
	return applyRollups(ctx, db, d, changes)
}

// applyRollups adds each change to its rollup row, in the order of the keys.
func applyRollups(ctx context.Context, db bun.IDB, d Dialect, changes map[rollupKey]*callRollup) error {
	keys := slices.SortedFunc(maps.Keys(changes), func(a, b rollupKey) int {
		return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), cmp.Compare(a.hour, b.hour), cmp.Compare(a.agentID, b.agentID))
	})
	for _, k := range keys {
		ch := changes[k]
		if ch.zero() {
			continue
		}
		if err := applyRollup(ctx, db, d, ch); err != nil {
			return fmt.Errorf("store: call rollup: %w", err)
		}
	}
	return nil
}

func applyRollup(ctx context.Context, db bun.IDB, d Dialect, ch *callRollup) error {
	cur := &callRollup{}
	sel := func() error {
		q := db.NewSelect().Model(cur).Where("tenant_id = ?", ch.TenantID).Where("hour = ?", ch.Hour).Where("agent_id = ?", ch.AgentID)
		if d == Postgres {
			q = q.For("UPDATE")
		}
		return q.Scan(ctx)
	}
	err := sel()
	if errors.Is(err, sql.ErrNoRows) {
		ch.init()
		res, ierr := db.NewInsert().Model(ch).On("CONFLICT DO NOTHING").Exec(ctx)
		if ierr != nil {
			return ierr
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		// Another node's transaction made the row meanwhile: add to it.
		err = sel()
	}
	if err != nil {
		return err
	}
	cur.merge(ch, 1)
	if cur.zero() {
		_, err = db.NewDelete().Model(cur).WherePK().Exec(ctx)
		return err
	}
	_, err = db.NewUpdate().Model(cur).WherePK().Exec(ctx)
	return err
}

// rollupBatch is how many calls the backfill reads at once.
const rollupBatch = 5000

// rebuildRollups replaces the rollups of the calls created in [from, to) (every call when
// both are zero) with the sums of their rows, in one transaction: the migration that made
// the rollups fills them so, and a benchmark that inserts calls with plain SQL does too.
func rebuildRollups(ctx context.Context, db *bun.DB, d Dialect, from, to time.Time) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		del := tx.NewDelete().Model((*callRollup)(nil))
		if from.IsZero() && to.IsZero() {
			del = del.Where("1 = 1")
		} else {
			del = del.Where("hour >= ?", from.UTC()).Where("hour < ?", to.UTC())
		}
		if _, err := del.Exec(ctx); err != nil {
			return err
		}
		sums := map[rollupKey]*callRollup{}
		after := ""
		for {
			var facts []callFacts
			q := tx.NewSelect().Model(&facts).Where("id > ?", after).Order("id").Limit(rollupBatch)
			if !from.IsZero() || !to.IsZero() {
				q = q.Where("created_at >= ?", from.UTC()).Where("created_at < ?", to.UTC())
			}
			if err := q.Scan(ctx); err != nil {
				return err
			}
			for i := range facts {
				sh := facts[i].share()
				k := sh.key()
				if sums[k] == nil {
					sums[k] = &callRollup{TenantID: sh.TenantID, Hour: sh.Hour, AgentID: sh.AgentID}
				}
				sums[k].merge(sh, 1)
			}
			if len(facts) < rollupBatch {
				break
			}
			after = facts[len(facts)-1].ID
		}
		rows := make([]*callRollup, 0, len(sums))
		for _, r := range sums {
			if !r.zero() {
				rows = append(rows, r)
			}
		}
		for len(rows) > 0 {
			chunk := rows[:min(len(rows), 500)]
			if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
				return err
			}
			rows = rows[len(chunk):]
		}
		return nil
	})
}
