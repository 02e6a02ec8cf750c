package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
)

// BuiltinDestinations are the call targets Switchboard provides itself; a phone number may
// route to one of them instead of an agent.
var BuiltinDestinations = []string{"echo", "tone"}

// PhoneNumber routes a dialled number (E.164) or SIP user to an agent or a built-in
// destination. Numbers are unique across tenants as they are dialled (see NumberKey): an
// inbound call finds its tenant by the number alone.
type PhoneNumber struct {
	bun.BaseModel `bun:"table:phone_numbers"`
	Row

	Number string `bun:"number,notnull" json:"number"`
	// NumberKey is NumberKey(Number), set by Validate; the node's unique index on it is what
	// keeps one number from routing to two tenants. It is empty (NULL) for a number that
	// collided with an older one when numbers became unique (migration
	// 20261207000010_phone_number_keys): calls reach the older one, and this one routes
	// nowhere until its number is changed to a free one.
	NumberKey   string         `bun:"number_key,nullzero" json:"-"`
	Name        string         `bun:"name,notnull" json:"name"`
	AgentID     *string        `bun:"agent_id" json:"agent_id"`
	Destination string         `bun:"destination,notnull" json:"destination"`
	TrunkID     *string        `bun:"trunk_id" json:"trunk_id"`
	Metadata    map[string]any `bun:"metadata,type:json" json:"metadata"`
	// Server is where the events of calls to (or from) the number are posted when its
	// agent names no server of its own (call webhooks); nil: nowhere.
	Server *CallServer `bun:"server,type:json" json:"server"`
	// Routable says whether calls dialled to the number reach it, and NotRoutable why not;
	// both are read-only, and filled from NumberKey whenever the number is written as JSON.
	Routable    bool   `bun:"-" json:"routable"`
	NotRoutable string `bun:"-" json:"not_routable,omitempty"`
}

// notRoutable is why a number without a key routes nowhere, as its tenant is told.
const notRoutable = "when numbers became unique on this node, an older phone number had this " +
	"number as it is dialled, and calls reach that one; change this number to a free one to " +
	"route it (or save it unchanged once the older one is gone)"

// MarshalJSON writes the number with whether it routes: what it says cannot go stale, as
// the key is the one thing that decides it.
func (p PhoneNumber) MarshalJSON() ([]byte, error) {
	type plain PhoneNumber // without this method
	p.Routable, p.NotRoutable = p.NumberKey != "", ""
	if !p.Routable {
		p.NotRoutable = notRoutable
	}
	return json.Marshal(plain(p))
}

// NewPhoneNumber returns a phone number with the defaults a created one starts from.
func NewPhoneNumber() *PhoneNumber { return &PhoneNumber{Metadata: map[string]any{}} }

func (*PhoneNumber) idPrefix() string { return prefixPhoneNumber }

// Validate checks the number's form and that it routes to at most one place.
func (p *PhoneNumber) Validate() error {
	var fe fieldErrors
	p.Number = strings.TrimSpace(p.Number)
	switch {
	case p.Number == "":
		fe.add("number", "is required: an E.164 number such as +14155550100, or a SIP user")
	case strings.HasPrefix(p.Number, "+"):
		if !reE164.MatchString(p.Number) {
			fe.add("number", "is not an E.164 number (a + and 2 to 15 digits)")
		}
	case !reSIPUser.MatchString(p.Number):
		fe.add("number", "must be an E.164 number or a SIP user of letters, digits and . _ ~ + -")
	}
	p.NumberKey = NumberKey(p.Number)
	if len(p.Name) > maxNameLen {
		fe.add("name", "must be at most %d characters", maxNameLen)
	}
	if p.AgentID != nil && !validID(prefixAgent, *p.AgentID) {
		fe.add("agent_id", "is not an agent ID")
	}
	if p.Destination != "" {
		if !slices.Contains(BuiltinDestinations, p.Destination) {
			fe.add("destination", "unknown built-in destination %q (want %s)", p.Destination, strings.Join(BuiltinDestinations, ", "))
		}
		if p.AgentID != nil {
			fe.add("destination", "a number routes to an agent or to a built-in destination, not both")
		}
	}
	if p.TrunkID != nil && !validID(prefixTrunk, *p.TrunkID) {
		fe.add("trunk_id", "is not a trunk ID")
	}
	if p.Metadata == nil {
		p.Metadata = map[string]any{}
	}
	fe.metadata("metadata", p.Metadata)
	return fe.err()
}

// beforeUpdate keeps a number that routes nowhere (see NumberKey) so while an update leaves
// its number, as dialled, the same and the older number still has it: its tenant can still
// change its name, agent or anything else. An update that changes its number, or one made
// after the older number went, gives it its key like any other write (409 when the number
// is taken).
func (p *PhoneNumber) beforeUpdate(ctx context.Context, tx bun.IDB) error {
	var number string
	var key *string
	err := tx.NewSelect().Table("phone_numbers").Column("number", "number_key").
		Where("id = ?", p.ID).Where("tenant_id = ?", p.TenantID).Scan(ctx, &number, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // Update answers ErrNotFound
	}
	if err != nil || key != nil || NumberKey(number) != p.NumberKey {
		return err
	}
	taken, err := tx.NewSelect().Table("phone_numbers").Where("number_key = ?", p.NumberKey).Exists(ctx)
	if err != nil {
		return err
	}
	if taken {
		p.NumberKey = ""
	}
	return nil
}

// UnroutablePhoneNumbers returns the numbers of every tenant that route nowhere because an
// older number has them (see PhoneNumber.NumberKey), oldest first, for the node to name when
// it starts.
func UnroutablePhoneNumbers(ctx context.Context, s *Store) ([]PhoneNumber, error) {
	out := []PhoneNumber{}
	if err := s.db.NewSelect().Model(&out).Where("number_key IS NULL").Order("created_at", "id").Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// LogUnroutablePhoneNumbers names, once at each start of a node, every phone number that
// routes nowhere because an older number had it when numbers became unique: until its tenant
// changes it, calls to it reach the older number, and only this line and the API's routable
// field say so.
func LogUnroutablePhoneNumbers(ctx context.Context, s *Store, log *slog.Logger) {
	numbers, err := UnroutablePhoneNumbers(ctx, s)
	if err != nil {
		log.Warn("phone numbers that route nowhere not readable", "error", err)
		return
	}
	for _, pn := range numbers {
		log.Warn("phone number routes nowhere", "tenant_id", pn.TenantID, "phone_number_id", pn.ID, "number", pn.Number,
			"why", "an older number had it when numbers became unique; its tenant must change it to a free one")
	}
}

func (p *PhoneNumber) references() []reference {
	var refs []reference
	if p.AgentID != nil {
		refs = append(refs, reference{field: "agent_id", table: "agents", id: *p.AgentID})
	}
	if p.TrunkID != nil {
		refs = append(refs, reference{field: "trunk_id", table: "trunks", id: *p.TrunkID})
	}
	return refs
}

// NumberKey is a number as it is matched when dialled: the digits of a telephone number,
// without its "+" and visual separators ("+1 (415) 555-0100" and "14155550100" are
// "14155550100"), or else the number in lower case (a SIP user matches regardless of case).
// Two numbers with the same key are the same number, on the whole node.
func NumberKey(number string) string {
	number = strings.TrimSpace(number)
	if digits, ok := dialledDigits(number); ok {
		return digits
	}
	return strings.ToLower(number)
}

// PhoneNumberByNumber finds the number a call was dialled to, in whichever tenant has it: it
// is how an inbound call finds its tenant. One lookup of the unique index on the number's
// key.
func (s *Store) PhoneNumberByNumber(ctx context.Context, dialled string) (*PhoneNumber, error) {
	key := NumberKey(dialled)
	if key == "" {
		return nil, ErrNotFound
	}
	p := new(PhoneNumber)
	if err := s.db.NewSelect().Model(p).Where("number_key = ?", key).Limit(1).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return p, nil
}

// Trunk is a SIP connection to a carrier or PBX. Inbound, calls are accepted from its allowed
// CIDRs or after digest authentication with its credentials; outbound, calls go to its
// proxy with its credentials and caller ID.
type Trunk struct {
	bun.BaseModel `bun:"table:trunks"`
	Row

	Name      string        `bun:"name,notnull" json:"name"`
	Direction string        `bun:"direction,notnull" json:"direction"`
	Inbound   TrunkInbound  `bun:"inbound,type:json" json:"inbound"`
	Outbound  TrunkOutbound `bun:"outbound,type:json" json:"outbound"`
	// SRTP says whether the trunk's media is encrypted (SDES-SRTP, RFC 4568): "off" offers
	// plain RTP, "offer" offers SRTP and falls back to RTP when the far end refuses it,
	// "required" refuses calls without it. Keys travel only over SIP TLS.
	SRTP string `bun:"srtp,notnull" json:"srtp"`
	// The passwords, sealed with the server secret (see Sealer); never sent to clients.
	InboundPasswordEnc  string `bun:"inbound_password_enc,notnull" json:"-"`
	OutboundPasswordEnc string `bun:"outbound_password_enc,notnull" json:"-"`
	// Registration is the state of the trunk's outbound registration, read-only: filled
	// (ShowRegistration) when a trunk that registers is shown, never stored with the trunk.
	Registration *TrunkRegistration `bun:"-" json:"registration,omitempty"`
	// PricePerMinuteUSD is what a minute of a call over the trunk costs (the carrier's
	// rate, set by the operator): the telephony part of the calls' cost, to the second.
	PricePerMinuteUSD float64 `bun:"price_per_minute_usd,notnull" json:"price_per_minute_usd"`
}

// TrunkInbound says who may send calls over the trunk.
type TrunkInbound struct {
	AllowedCIDRs []string `json:"allowed_cidrs"`
	Username     string   `json:"username"`
	// Password is write-only: it is sealed into InboundPasswordEnc before the trunk is
	// written, and never stored or shown as it is. An empty one keeps the sealed password.
	Password string `json:"password,omitempty"`
	// HasPassword tells a client whether a password is set.
	HasPassword bool `json:"has_password"`
}

// TrunkOutbound says where and as whom calls leave over the trunk.
type TrunkOutbound struct {
	Address   string `json:"address"`
	Transport string `json:"transport"`
	Username  string `json:"username"`
	CallerID  string `json:"caller_id"`
	Register  bool   `json:"register"`
	// Registrar is where the trunk registers (host or host:port), when it is not Address.
	Registrar string `json:"registrar,omitempty"`
	// RegisterExpires is the registration's lifetime asked of the registrar, in seconds
	// (zero: DefaultRegisterExpires); the registrar's grant is what counts.
	RegisterExpires int `json:"register_expires,omitempty"`
	// Password is write-only, as TrunkInbound.Password.
	Password    string `json:"password,omitempty"`
	HasPassword bool   `json:"has_password"`
}

// The lifetime a registering trunk asks of its registrar (outbound.register_expires), in
// seconds.
const (
	DefaultRegisterExpires = 3600
	MinRegisterExpires     = 60
	MaxRegisterExpires     = 86400
)

// A trunk's SRTP modes (Trunk.SRTP).
const (
	TrunkSRTPOff      = "off"
	TrunkSRTPOffer    = "offer"
	TrunkSRTPRequired = "required"
)

// NewTrunk returns a trunk with the defaults a created one starts from.
func NewTrunk() *Trunk {
	return &Trunk{
		Direction: "inbound",
		Inbound:   TrunkInbound{AllowedCIDRs: []string{}},
		Outbound:  TrunkOutbound{Transport: "udp"},
		SRTP:      TrunkSRTPOff,
	}
}

func (*Trunk) idPrefix() string { return prefixTrunk }

// ErrNoSecret: a credential must be sealed but the store has no server secret.
var ErrNoSecret = errors.New("store: no server secret to seal credentials with")

// prepare seals new passwords and clears them from the JSON columns.
func (t *Trunk) prepare(s *Store) error {
	for _, side := range []struct {
		pw  *string
		enc *string
	}{{&t.Inbound.Password, &t.InboundPasswordEnc}, {&t.Outbound.Password, &t.OutboundPasswordEnc}} {
		if *side.pw == "" {
			continue
		}
		if s.sealer == nil {
			return ErrNoSecret
		}
		*side.enc = s.sealer.Seal(*side.pw)
		*side.pw = ""
	}
	t.Inbound.HasPassword = t.InboundPasswordEnc != ""
	t.Outbound.HasPassword = t.OutboundPasswordEnc != ""
	return nil
}

// Passwords opens the trunk's sealed passwords (for digest authentication and outbound
// registration).
func (t *Trunk) Passwords(s *Store) (inbound, outbound string, err error) {
	if s.sealer == nil {
		return "", "", ErrNoSecret
	}
	if inbound, err = s.sealer.Open(t.InboundPasswordEnc); err != nil {
		return "", "", err
	}
	outbound, err = s.sealer.Open(t.OutboundPasswordEnc)
	return inbound, outbound, err
}

// Validate checks the trunk: a direction, parseable CIDRs, an inbound side that admits
// someone, an outbound side with somewhere to send calls.
func (t *Trunk) Validate() error {
	var fe fieldErrors
	fe.requireName("name", t.Name)
	fe.oneOf("direction", t.Direction, "inbound", "outbound", "both")
	if !(t.PricePerMinuteUSD >= 0) || math.IsInf(t.PricePerMinuteUSD, 0) {
		fe.add("price_per_minute_usd", "must be a dollar amount, not negative")
	}
	if t.Inbound.AllowedCIDRs == nil {
		t.Inbound.AllowedCIDRs = []string{}
	}
	for i, c := range t.Inbound.AllowedCIDRs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			if net.ParseIP(c) == nil {
				fe.add("inbound.allowed_cidrs["+strconv.Itoa(i)+"]", "is not a CIDR or IP address: %q", c)
				continue
			}
		}
	}
	if (t.Inbound.Username == "") != (t.InboundPasswordEnc == "") {
		fe.add("inbound.password", "digest authentication needs both inbound.username and inbound.password")
	}
	// A trunk that registers takes calls from its registrar without either.
	if t.Direction != "outbound" && !t.Outbound.Register && len(t.Inbound.AllowedCIDRs) == 0 && t.Inbound.Username == "" {
		fe.add("inbound", "an inbound trunk needs allowed_cidrs, or a username and password for digest authentication, or outbound.register")
	}
	if t.Outbound.Transport == "" {
		t.Outbound.Transport = "udp"
	}
	fe.oneOf("outbound.transport", t.Outbound.Transport, "udp", "tcp", "tls")
	if t.Direction != "inbound" {
		if t.Outbound.Address == "" {
			fe.add("outbound.address", "is required for an outbound trunk: host or host:port of the carrier's proxy")
		} else if strings.ContainsAny(t.Outbound.Address, " /@") {
			fe.add("outbound.address", "must be host or host:port")
		}
	}
	if t.Outbound.CallerID != "" && !reE164.MatchString(t.Outbound.CallerID) && !reSIPUser.MatchString(t.Outbound.CallerID) {
		fe.add("outbound.caller_id", "must be an E.164 number or a SIP user")
	}
	if t.SRTP == "" {
		t.SRTP = TrunkSRTPOff
	}
	fe.oneOf("srtp", t.SRTP, TrunkSRTPOff, TrunkSRTPOffer, TrunkSRTPRequired)
	if t.SRTP != TrunkSRTPOff && t.Direction != "inbound" && t.Outbound.Transport != "tls" {
		fe.add("srtp", "SRTP keys travel only over SIP TLS: set outbound.transport to tls, or srtp to off")
	}
	if t.Outbound.Register && (t.Outbound.Username == "" || t.OutboundPasswordEnc == "") {
		fe.add("outbound.register", "registration needs outbound.username and outbound.password")
	}
	if t.Outbound.Register && t.Outbound.Address == "" && t.Outbound.Registrar == "" {
		fe.add("outbound.registrar", "registration needs outbound.registrar or outbound.address: host or host:port of the registrar")
	}
	if t.Outbound.Registrar != "" && (strings.ContainsAny(t.Outbound.Registrar, " /@") || !validHostPort(t.Outbound.Registrar)) {
		fe.add("outbound.registrar", "must be host or host:port")
	}
	if e := t.Outbound.RegisterExpires; e != 0 && (e < MinRegisterExpires || e > MaxRegisterExpires) {
		fe.add("outbound.register_expires", "must be %d to %d seconds (or 0: %d)", MinRegisterExpires, MaxRegisterExpires, DefaultRegisterExpires)
	}
	return fe.err()
}

func (t *Trunk) checkDelete(ctx context.Context, tx bun.IDB) error {
	n, err := tx.NewSelect().Table("phone_numbers").Where("trunk_id = ?", t.ID).Where("tenant_id = ?", t.TenantID).Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return &ConflictError{Field: "id", Message: "the trunk carries " + strconv.FormatInt(n, 10) + " phone number(s); move them first"}
	}
	return nil
}
