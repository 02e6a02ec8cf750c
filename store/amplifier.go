package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// ID prefixes of the Amplifier surface's own rows.
const (
	prefixAmplifierConfig = "cfg_"
	prefixAmplifierApp    = "apl_"
)

// AmplifierConfigMeta is the key of an agent's metadata that names the Amplifier config the
// agent was made from: the link back from the agent to its config.
const AmplifierConfigMeta = "amplifier_config_id"

// Bounds of an Amplifier config.
const (
	MaxAmplifierYAML = 256 << 10
	maxAmplifierTags = 64
	maxTagLen        = 200
)

// AmplifierConfig is an Amplifier bundle a tenant stored: its YAML exactly as written, and
// the agent it defines (AgentID), which the config's writes keep in step with it.
type AmplifierConfig struct {
	bun.BaseModel `bun:"table:amplifier_configs"`
	Row

	Name        string            `bun:"name,notnull" json:"name"`
	Description string            `bun:"description,notnull" json:"description"`
	YAML        string            `bun:"yaml_content,notnull" json:"yaml_content"`
	Tags        map[string]string `bun:"tags,type:json,notnull" json:"tags"`
	// AgentID is the agent the config defines; nil once that agent was deleted on its own.
	AgentID *string `bun:"agent_id" json:"agent_id"`
}

func (*AmplifierConfig) idPrefix() string { return prefixAmplifierConfig }

// Validate checks the config's own fields; the YAML's meaning is the API's to check.
func (c *AmplifierConfig) Validate() error {
	var fe fieldErrors
	fe.requireName("name", c.Name)
	fe.maxText("description", c.Description)
	if len(c.YAML) > MaxAmplifierYAML {
		fe.add("yaml_content", "must be at most %d bytes", MaxAmplifierYAML)
	}
	if c.Tags == nil {
		c.Tags = map[string]string{}
	}
	if len(c.Tags) > maxAmplifierTags {
		fe.add("tags", "must hold at most %d tags", maxAmplifierTags)
	}
	for k, v := range c.Tags {
		if k == "" || utf8.RuneCountInString(k) > maxTagLen || utf8.RuneCountInString(v) > maxTagLen {
			fe.add("tags."+k, "tag names must be 1 to %d characters and values at most %d", maxTagLen, maxTagLen)
		}
	}
	return fe.err()
}

// insertIn validates m and inserts it with a new ID under tenantID, in tx.
func insertIn[T any, P Model[T]](ctx context.Context, s *Store, tx bun.IDB, tenantID string, m P) error {
	r := m.Base()
	now := s.now()
	r.ID, r.TenantID, r.CreatedAt, r.UpdatedAt = newID(m.idPrefix()), tenantID, now, now
	if err := prepare(s, m); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkReferences(ctx, tx, tenantID, m); err != nil {
		return err
	}
	_, err := tx.NewInsert().Model(m).Exec(ctx)
	return err
}

// updateIn validates m and writes it over its row, in tx.
func updateIn[T any, P Model[T]](ctx context.Context, s *Store, tx bun.IDB, m P) error {
	r := m.Base()
	r.UpdatedAt = s.now()
	if err := prepare(s, m); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkReferences(ctx, tx, r.TenantID, m); err != nil {
		return err
	}
	res, err := tx.NewUpdate().Model(m).ExcludeColumn("id", "tenant_id", "created_at").
		Where("id = ?", r.ID).Where("tenant_id = ?", r.TenantID).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// getIn reads one row of the tenant in tx.
func getIn[T any, P Model[T]](ctx context.Context, tx bun.IDB, tenantID, id string) (P, error) {
	m := P(new(T))
	if !validID(m.idPrefix(), id) {
		return nil, ErrNotFound
	}
	if err := tx.NewSelect().Model(m).Where("tenant_id = ?", tenantID).Where("id = ?", id).Limit(1).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return m, nil
}

// AgentShaper sets on an agent what an Amplifier config says of it (name, instructions,
// model, tools), over what the agent already holds.
type AgentShaper func(ag *Agent)

// CreateAmplifierConfig stores a config and the agent it defines, in one transaction: both
// are written or neither.
func CreateAmplifierConfig(ctx context.Context, s *Store, tenantID string, c *AmplifierConfig, shape AgentShaper) error {
	return s.inTx(ctx, func(tx bun.Tx) error {
		ag := NewAgent()
		shape(ag)
		if err := insertIn(ctx, s, tx, tenantID, ag); err != nil {
			return err
		}
		c.AgentID = &ag.ID
		if err := insertIn(ctx, s, tx, tenantID, c); err != nil {
			return err
		}
		ag.Metadata[AmplifierConfigMeta] = c.ID
		return updateIn(ctx, s, tx, ag)
	})
}

// UpdateAmplifierConfig writes a config over its row and, when shape is not nil, its agent
// with it, in one transaction. The agent keeps what the config does not say (its voice, its
// limits); an agent deleted meanwhile is made again.
func UpdateAmplifierConfig(ctx context.Context, s *Store, c *AmplifierConfig, shape AgentShaper) error {
	return s.inTx(ctx, func(tx bun.Tx) error {
		if shape != nil {
			var ag *Agent
			if c.AgentID != nil {
				got, err := getIn[Agent](ctx, tx, c.TenantID, *c.AgentID)
				switch {
				case err == nil:
					ag = got
				case !errors.Is(err, ErrNotFound):
					return err
				}
			}
			if ag == nil {
				ag = NewAgent()
				shape(ag)
				ag.Metadata[AmplifierConfigMeta] = c.ID
				if err := insertIn(ctx, s, tx, c.TenantID, ag); err != nil {
					return err
				}
				c.AgentID = &ag.ID
			} else {
				shape(ag)
				if ag.Metadata == nil {
					ag.Metadata = map[string]any{}
				}
				ag.Metadata[AmplifierConfigMeta] = c.ID
				if err := updateIn(ctx, s, tx, ag); err != nil {
					return err
				}
			}
		}
		return updateIn(ctx, s, tx, c)
	})
}

// DeleteAmplifierConfig removes a config and the agent it defines, in one transaction. The
// agent's sessions stay, with their history, as they do when any agent is deleted. An agent
// that still answers phone numbers is a *ConflictError and nothing is deleted.
func DeleteAmplifierConfig(ctx context.Context, s *Store, tenantID, id string) error {
	return s.inTx(ctx, func(tx bun.Tx) error {
		c, err := getIn[AmplifierConfig](ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model(c).Where("id = ?", c.ID).Where("tenant_id = ?", tenantID).Exec(ctx); err != nil {
			return err
		}
		if c.AgentID == nil {
			return nil
		}
		ag := &Agent{Row: Row{ID: *c.AgentID, TenantID: tenantID}}
		if err := ag.checkDelete(ctx, tx); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model(ag).Where("id = ?", ag.ID).Where("tenant_id = ?", tenantID).Exec(ctx)
		return err
	})
}

// AmplifierApp is an Amplifier application: a name its client chose (AppID) for one of the
// tenant's app_ keys, which regenerating replaces.
type AmplifierApp struct {
	bun.BaseModel `bun:"table:amplifier_applications"`
	Row

	AppID   string  `bun:"app_id,notnull" json:"app_id"`
	AppName string  `bun:"app_name,notnull" json:"app_name"`
	KeyID   *string `bun:"key_id" json:"key_id"`
}

func (*AmplifierApp) idPrefix() string { return prefixAmplifierApp }

var reAppID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the application's names.
func (a *AmplifierApp) Validate() error {
	var fe fieldErrors
	if !reAppID.MatchString(a.AppID) {
		fe.add("app_id", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	fe.requireName("app_name", a.AppName)
	return fe.err()
}

// AppKeyName is the name an application's key has in the tenant's key list.
func AppKeyName(appID string) string { return "Amplifier application " + appID }

// newAppKey inserts a new app_ key for an application in tx and returns its secret. The key
// takes its scopes, limits, expiry and maker from bounds (nil: read and write, without limits
// or maker), which the caller has bounded by the credential making it.
func newAppKey(ctx context.Context, s *Store, tx bun.IDB, tenantID, appID string, bounds *APIKey) (*APIKey, string, error) {
	k := &APIKey{Name: AppKeyName(appID), Kind: "app_", Scopes: []string{ScopeRead, ScopeWrite}}
	if bounds != nil {
		k.Scopes = append([]string(nil), bounds.Scopes...)
		k.RateLimit, k.TokenLimit, k.BudgetUSD, k.ParentID = bounds.RateLimit, bounds.TokenLimit, bounds.BudgetUSD, bounds.ParentID
		if bounds.ExpiresAt != nil {
			at := bounds.ExpiresAt.UTC()
			k.ExpiresAt = &at
		}
	}
	secret := newKeySecret(k.Kind)
	k.Hash = HashKey(secret)
	k.Display = secret[:len(k.Kind)+4] + "…" + secret[len(secret)-4:]
	if err := insertIn(ctx, s, tx, tenantID, k); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// CreateAmplifierApp stores an application and its new key in one transaction, and returns
// the key's secret, which is not stored. An app_id the tenant already has is a
// *ConflictError naming app_id. The key is made within bounds (see newAppKey).
func CreateAmplifierApp(ctx context.Context, s *Store, tenantID string, a *AmplifierApp, bounds *APIKey) (string, error) {
	if err := a.Validate(); err != nil {
		return "", err
	}
	var secret string
	err := s.inTx(ctx, func(tx bun.Tx) error {
		n, err := tx.NewSelect().Model((*AmplifierApp)(nil)).Where("tenant_id = ?", tenantID).Where("app_id = ?", a.AppID).Count(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return &ConflictError{Field: "app_id", Message: fmt.Sprintf("an application %q already exists", a.AppID)}
		}
		k, sec, err := newAppKey(ctx, s, tx, tenantID, a.AppID, bounds)
		if err != nil {
			return err
		}
		a.KeyID, secret = &k.ID, sec
		return insertIn(ctx, s, tx, tenantID, a)
	})
	if ce := (*ConflictError)(nil); errors.As(err, &ce) && ce.Field != "app_id" {
		// Two creations of one app_id at once: the unique index refused the second.
		return "", &ConflictError{Field: "app_id", Message: fmt.Sprintf("an application %q already exists", a.AppID)}
	}
	return secret, err
}

// AmplifierAppByAppID reads the tenant's application of that app_id.
func AmplifierAppByAppID(ctx context.Context, s *Store, tenantID, appID string) (*AmplifierApp, error) {
	return appByAppID(ctx, s.db, tenantID, appID)
}

func appByAppID(ctx context.Context, db bun.IDB, tenantID, appID string) (*AmplifierApp, error) {
	a := new(AmplifierApp)
	if err := db.NewSelect().Model(a).Where("tenant_id = ?", tenantID).Where("app_id = ?", appID).Limit(1).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return a, nil
}

// ListAmplifierApps reads a page of the tenant's applications, oldest first (the order they
// were registered in), and how many there are.
func ListAmplifierApps(ctx context.Context, s *Store, tenantID string, page Page) ([]AmplifierApp, int, error) {
	items := make([]AmplifierApp, 0, min(page.Limit, 100))
	total, err := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID).
		Order("created_at ASC", "id ASC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// APIKeysByID reads the tenant's keys of those IDs, by ID.
func APIKeysByID(ctx context.Context, s *Store, tenantID string, ids []string) (map[string]*APIKey, error) {
	out := map[string]*APIKey{}
	if len(ids) == 0 {
		return out, nil
	}
	var keys []APIKey
	if err := s.db.NewSelect().Model(&keys).Where("tenant_id = ?", tenantID).Where("id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	for i := range keys {
		out[keys[i].ID] = &keys[i]
	}
	return out, nil
}

// revokeIn revokes the key of id in tx (already revoked or gone: nothing to do) and returns
// it, or nil when there is none.
func revokeIn(ctx context.Context, s *Store, tx bun.IDB, tenantID string, id *string) (*APIKey, error) {
	if id == nil {
		return nil, nil
	}
	k, err := getIn[APIKey](ctx, tx, tenantID, *id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if k.RevokedAt == nil {
		now := s.now()
		k.RevokedAt = &now
		if err := updateIn(ctx, s, tx, k); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// RegenerateAmplifierAppKey revokes an application's key and gives it a new one, in one
// transaction. It returns the application, its new key's secret and the revoked key (nil
// when it had none), whose revocation the caller makes known.
func RegenerateAmplifierAppKey(ctx context.Context, s *Store, tenantID, appID string, bounds *APIKey) (*AmplifierApp, string, *APIKey, error) {
	var (
		app    *AmplifierApp
		secret string
		old    *APIKey
	)
	err := s.inTx(ctx, func(tx bun.Tx) error {
		var err error
		if app, err = appByAppID(ctx, tx, tenantID, appID); err != nil {
			return err
		}
		if old, err = revokeIn(ctx, s, tx, tenantID, app.KeyID); err != nil {
			return err
		}
		k, sec, err := newAppKey(ctx, s, tx, tenantID, app.AppID, bounds)
		if err != nil {
			return err
		}
		app.KeyID, secret = &k.ID, sec
		return updateIn(ctx, s, tx, app)
	})
	if err != nil {
		return nil, "", nil, err
	}
	return app, secret, old, nil
}

// DeleteAmplifierApp removes an application and revokes its key, in one transaction; the
// key stays in the tenant's list, revoked. It returns the revoked key (nil when none).
func DeleteAmplifierApp(ctx context.Context, s *Store, tenantID, appID string) (*APIKey, error) {
	var old *APIKey
	err := s.inTx(ctx, func(tx bun.Tx) error {
		app, err := appByAppID(ctx, tx, tenantID, appID)
		if err != nil {
			return err
		}
		if old, err = revokeIn(ctx, s, tx, tenantID, app.KeyID); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model(app).Where("id = ?", app.ID).Where("tenant_id = ?", tenantID).Exec(ctx)
		return err
	})
	return old, err
}

// PurgeAPIKey removes a key row for good: only for throwaway keys of the node's own smoke
// tests, which leave nothing behind. A key of a user's is revoked, never purged.
func PurgeAPIKey(ctx context.Context, s *Store, tenantID, id string) error {
	if !strings.HasPrefix(id, prefixKey) {
		return ErrNotFound
	}
	_, err := s.db.NewDelete().Model((*APIKey)(nil)).Where("tenant_id = ?", tenantID).Where("id = ?", id).Exec(ctx)
	return classify(err)
}
