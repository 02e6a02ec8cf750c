package store

import (
	"context"
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
}

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

// UsageTotal is the usage of one key, model and day.
type UsageTotal struct {
	KeyID        string  `bun:"key_id" json:"key_id"`
	Model        string  `bun:"model" json:"model"`
	Day          string  `bun:"day" json:"day"`
	Requests     int     `bun:"requests" json:"requests"`
	InputTokens  int     `bun:"input_tokens" json:"input_tokens"`
	OutputTokens int     `bun:"output_tokens" json:"output_tokens"`
	CostUSD      float64 `bun:"cost_usd" json:"cost_usd"`
}

// UsageByKeyModelDay sums the tenant's usage between from and to (UTC days), newest day
// first.
func (s *Store) UsageByKeyModelDay(ctx context.Context, tenantID string, from, to time.Time) ([]UsageTotal, error) {
	day := "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	if s.dialect == SQLite {
		day = "substr(created_at, 1, 10)"
	}
	out := []UsageTotal{}
	err := s.db.NewSelect().Table("usage_records").
		ColumnExpr("key_id, model, "+day+" AS day, COUNT(*) AS requests").
		ColumnExpr("COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens").
		ColumnExpr("COALESCE(SUM(cost_usd), 0) AS cost_usd").
		Where("tenant_id = ?", tenantID).Where("created_at >= ?", from).Where("created_at < ?", to).
		GroupExpr("key_id, model, "+day).OrderExpr("day DESC, key_id, model").Scan(ctx, &out)
	return out, classify(err)
}
