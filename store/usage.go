package store

import (
	"context"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// UsageRecord is what one request through the model gateway used.
type UsageRecord struct {
	bun.BaseModel `bun:"table:usage_records"`
	Row

	KeyID         string  `bun:"key_id,notnull" json:"key_id"`
	UserID        string  `bun:"user_id,notnull" json:"user_id"`
	Surface       string  `bun:"surface,notnull" json:"surface"`
	Provider      string  `bun:"provider,notnull" json:"provider"`
	Model         string  `bun:"model,notnull" json:"model"`
	UpstreamModel string  `bun:"upstream_model,notnull" json:"upstream_model"`
	InputTokens   int     `bun:"input_tokens,notnull" json:"input_tokens"`
	OutputTokens  int     `bun:"output_tokens,notnull" json:"output_tokens"`
	CostUSD       float64 `bun:"cost_usd,notnull" json:"cost_usd"`
	LatencyMS     int     `bun:"latency_ms,notnull" json:"latency_ms"`
	TTFTMS        int     `bun:"ttft_ms,notnull" json:"ttft_ms"`
	Status        int     `bun:"status,notnull" json:"status"`
	Stream        bool    `bun:"stream,notnull" json:"stream"`
	// Source is where the use came from (UsageGateway, UsageCall, UsageSession) and
	// SourceID the call or session it was for ("" for a gateway request).
	Source   string `bun:"source,notnull" json:"source"`
	SourceID string `bun:"source_id,notnull" json:"source_id"`
}

// Sources of model use.
const (
	UsageGateway = "gateway" // a request through the model gateway
	UsageCall    = "call"    // an agent's model on a call
	UsageSession = "session" // a session's answer
)

func (*UsageRecord) idPrefix() string { return "use_" }

// Validate checks the counts are not negative.
func (u *UsageRecord) Validate() error {
	var fe fieldErrors
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.CostUSD < 0 {
		fe.add("usage", "counts must not be negative")
	}
	return fe.err()
}

// CreateUsage inserts usage records (each with its TenantID set) in one statement.
func (s *Store) CreateUsage(ctx context.Context, records []*UsageRecord) error {
	now := s.now()
	for _, u := range records {
		u.ID, u.CreatedAt, u.UpdatedAt = newID(u.idPrefix()), now, now
		if u.Source == "" {
			u.Source = UsageGateway
		}
		if err := u.Validate(); err != nil {
			return err
		}
	}
	// What the records cost comes off their tenants' balances in the same transaction, so
	// that a balance and the usage that drew it down never disagree.
	spent := map[string]float64{}
	for _, u := range records {
		if u.CostUSD > 0 {
			spent[u.TenantID] += u.CostUSD
		}
	}
	if len(spent) == 0 {
		_, err := s.db.NewInsert().Model(&records).Exec(ctx)
		return classify(err)
	}
	return s.inTx(ctx, func(tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&records).Exec(ctx); err != nil {
			return err
		}
		for tenantID, usd := range spent {
			if _, err := drawBalance(ctx, tx, tenantID, usd); err != nil {
				return err
			}
		}
		return nil
	})
}

// SpentUSD is what a key of the tenant has spent through the gateway in all.
func (s *Store) SpentUSD(ctx context.Context, tenantID, keyID string) (float64, error) {
	var spent float64
	// 0.0, not 0: SQLite's COALESCE of no rows is then a REAL, which scans into a float64.
	err := s.db.NewSelect().Table("usage_records").ColumnExpr("COALESCE(SUM(cost_usd), 0.0)").
		Where("tenant_id = ?", tenantID).Where("key_id = ?", keyID).Scan(ctx, &spent)
	return spent, classify(err)
}

// UsageTotal is the usage of one source, key, model and day.
type UsageTotal struct {
	// Source is where the use came from: gateway, call or session.
	Source       string  `bun:"source" json:"source"`
	KeyID        string  `bun:"key_id" json:"key_id"`
	Model        string  `bun:"model" json:"model"`
	Day          string  `bun:"day" json:"day"`
	Requests     int     `bun:"requests" json:"requests"`
	InputTokens  int     `bun:"input_tokens" json:"input_tokens"`
	OutputTokens int     `bun:"output_tokens" json:"output_tokens"`
	CostUSD      float64 `bun:"cost_usd" json:"cost_usd"`
}

// UsageByKeyModelDay sums the tenant's usage (the gateway's requests, agents' calls and
// sessions' answers) between from and to (UTC days), newest day first.
func (s *Store) UsageByKeyModelDay(ctx context.Context, tenantID string, from, to time.Time) ([]UsageTotal, error) {
	day := "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	if s.dialect == SQLite {
		day = "substr(created_at, 1, 10)"
	}
	out := []UsageTotal{}
	err := s.db.NewSelect().Table("usage_records").
		ColumnExpr("source, key_id, model, "+day+" AS day, COUNT(*) AS requests").
		ColumnExpr("COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens").
		ColumnExpr("COALESCE(SUM(cost_usd), 0) AS cost_usd").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to).
		GroupExpr("source, key_id, model, "+day).OrderExpr("day DESC, source, key_id, model").Scan(ctx, &out)
	return out, classify(err)
}

// sessionUsage is the usage records of a session's messages that used a model, written in
// the transaction that stores them: a session's answers count in the tenant's usage as a
// gateway request does (their cost is drawn from the balance with the session's own).
func sessionUsage(now time.Time, msgs []*SessionMessage) []*UsageRecord {
	var out []*UsageRecord
	for _, m := range msgs {
		if m.InputTokens <= 0 && m.OutputTokens <= 0 && !(m.CostUSD > 0) {
			continue
		}
		provider, _, _ := strings.Cut(m.Model, "/")
		u := &UsageRecord{Surface: "session", Provider: provider, Model: m.Model, UpstreamModel: m.Model,
			InputTokens: max(m.InputTokens, 0), OutputTokens: max(m.OutputTokens, 0),
			Status: 200, Source: UsageSession, SourceID: m.SessionID}
		if m.CostUSD > 0 {
			u.CostUSD = m.CostUSD // as drawn from the balance with the session
		}
		u.ID, u.TenantID, u.CreatedAt, u.UpdatedAt = newID(u.idPrefix()), m.TenantID, now, now
		out = append(out, u)
	}
	return out
}
