package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
)

const prefixCall = "call_"

// Directions of a call.
const (
	CallInbound  = "inbound"
	CallOutbound = "outbound"
	CallWeb      = "web"
)

// Statuses of a call. A call is live while it is queued, ringing or in progress; every other
// status is final.
const (
	CallQueued     = "queued"
	CallRinging    = "ringing"
	CallInProgress = "in-progress"
	CallCompleted  = "completed"
	CallBusy       = "busy"
	CallNoAnswer   = "no-answer"
	CallFailed     = "failed"
	CallCanceled   = "canceled"
)

// CallStatuses are every status a call may have, live ones first.
var CallStatuses = []string{CallQueued, CallRinging, CallInProgress, CallCompleted, CallBusy, CallNoAnswer, CallFailed, CallCanceled}

// Reasons a call ended with (Call.EndedReason), the strings the column holds. The field is
// free text so that a carrier's cause can be kept, but Switchboard itself writes one of
// these; package call gives them their type (call.Reason) and every other package uses it.
const (
	EndedCallerHangup = "caller-hangup" // the far end sent BYE
	EndedCalleeHangup = "callee-hangup" // the party Switchboard called hung up
	EndedAgentHangup  = "agent-hangup"  // the agent or workflow ended the call
	EndedAPIHangup    = "api-hangup"    // POST /api/v1/calls/{id}/hangup
	EndedTransferred  = "transferred"   // the call was handed to another party
	EndedMediaTimeout = "media-timeout" // no RTP for too long
	EndedRejected     = "rejected"      // refused before answer (no route, not allowed)
	EndedBusy         = "busy"          // the callee was busy
	EndedNoAnswer     = "no-answer"     // the callee did not answer in time
	EndedCanceled     = "canceled"      // the caller gave up before answer
	EndedError        = "error"         // Switchboard failed
	EndedShutdown     = "shutdown"      // the node was stopped while carrying the call
	EndedRestart      = "restart"       // the node died while carrying the call (FailInterruptedCalls)
	EndedNodeLost     = "node-lost"     // the node carrying the call stopped beating; another node failed it (FailLostNode)
	// EndedCredentialRevoked: the key that started a web call was revoked, or its user or
	// tenant deleted, while the call lasted.
	EndedCredentialRevoked = "credential-revoked"
	EndedSessionExpired    = "session-expired"   // a SIP session timer ran out (RFC 4028)
	EndedNoAck             = "no-ack"            // the caller never acknowledged the answer
	EndedIdleTimeout       = "idle-timeout"      // the caller said nothing for too long
	EndedMaxDuration       = "max-duration"      // the call reached its agent's longest duration
	EndedAgentError        = "agent-error"       // the agent's brain or speech failed
	EndedICEFailed         = "ice-failed"        // a browser's ICE did not connect in time, or failed
	EndedPeerDisconnected  = "peer-disconnected" // a browser closed its connection or went silent
	EndedVoicemail         = "voicemail"         // an answering machine answered and the call's message was left on it
)

// liveStatuses are the statuses of a call not yet ended.
var liveStatuses = []string{CallQueued, CallRinging, CallInProgress}

// Bounds of an outbound call's ringing time.
const (
	DefaultCallTimeout = 30
	MaxCallTimeout     = 120
)

const maxURILen = 512

// Call is one conversation over SIP or a browser: where it came from and went, who answered
// it (an agent or a built-in destination), which node carried it, how it went and how it
// ended.
type Call struct {
	bun.BaseModel `bun:"table:calls"`
	Row

	// Direction is inbound (SIP, to Switchboard), outbound (SIP, placed by Switchboard) or
	// web (a browser over WebRTC).
	Direction string `bun:"direction,notnull" json:"direction"`
	// From and To are what the call was from and to: E.164 numbers, SIP users or SIP URIs.
	From string `bun:"from_uri,notnull" json:"from"`
	To   string `bun:"to_uri,notnull" json:"to"`
	// TrunkID is the trunk the call came or left over, if any.
	TrunkID *string `bun:"trunk_id" json:"trunk_id"`
	// AgentID or Destination is what talks on Switchboard's side of the call.
	AgentID     *string `bun:"agent_id" json:"agent_id"`
	Destination string  `bun:"destination,notnull" json:"destination"`
	SIPCallID   string  `bun:"sip_call_id,notnull" json:"sip_call_id"`
	Codec       string  `bun:"codec,notnull" json:"codec"`
	Status      string  `bun:"status,notnull" json:"status"`
	// EndedReason says why a call ended (see the Ended… constants); "" while it is live.
	EndedReason string `bun:"ended_reason,notnull" json:"ended_reason"`
	// Node is the Switchboard node that carries (or carried) the call.
	Node string `bun:"node,notnull" json:"node"`
	// TimeoutSeconds is how long an outbound call rings before it is no-answer.
	TimeoutSeconds int        `bun:"timeout_seconds,notnull" json:"timeout_seconds"`
	StartedAt      *time.Time `bun:"started_at" json:"started_at"`
	AnsweredAt     *time.Time `bun:"answered_at" json:"answered_at"`
	EndedAt        *time.Time `bun:"ended_at" json:"ended_at"`
	// DurationSeconds is the time from answer to end (0 for a call never answered).
	DurationSeconds float64        `bun:"duration_seconds,notnull" json:"duration_seconds"`
	Quality         CallQuality    `bun:"quality,type:json" json:"quality"`
	Metadata        map[string]any `bun:"metadata,type:json" json:"metadata"`
	// Report is the end-of-call report of a call an agent carried: ended reason, duration,
	// turns, latencies, usage (empty for other calls).
	Report map[string]any `bun:"report,type:json" json:"report"`
	// AMD is the answering-machine detection of an outbound call that asked for one: its
	// mode and, once decided, who answered (nil for other calls). It is replaced, never
	// changed in place: the copies of a record the call writer queues share it.
	AMD *CallAMD `bun:"amd,type:json" json:"amd,omitempty"`
	// RecordingURL is where the call's recording is served (GET /api/v1/calls/{id}/recording)
	// while it is kept; "" when the call was not recorded or its recording was deleted.
	RecordingURL string `bun:"recording_url,notnull" json:"recording_url"`
	// RecordingExpiresAt is when the recording is deleted (its retention); nil: kept.
	RecordingExpiresAt *time.Time `bun:"recording_expires_at" json:"recording_expires_at"`
	// MediaSecurity says how a SIP call's media was carried: "srtp" (encrypted, SDES),
	// "none" (plain RTP); "" before the call is answered and for other transports.
	MediaSecurity string `bun:"media_security,notnull" json:"media_security"`
	// CallUsage is what the call used and cost, written when it ends.
	CallUsage
}

// CallQuality is how the media of a call fared, from its RTP and RTCP.
type CallQuality struct {
	PacketsReceived int64 `json:"packets_received"`
	PacketsSent     int64 `json:"packets_sent"`
	PacketsLost     int64 `json:"packets_lost"`
	// PacketsLate came too late to be played (a sender that stalled, then burst): their
	// audio is missing, though RFC 3550 does not count them lost.
	PacketsLate int64 `json:"packets_late"`

	LossPercent float64 `json:"loss_percent"`
	JitterMS    float64 `json:"jitter_ms"`
	RTTMS       float64 `json:"rtt_ms"`
}

// NewOutboundCall returns an outbound call with the defaults a call placed through the API
// starts from: queued, ringing for DefaultCallTimeout seconds.
func NewOutboundCall() *Call {
	return &Call{Direction: CallOutbound, Status: CallQueued, TimeoutSeconds: DefaultCallTimeout, Metadata: map[string]any{}, Report: map[string]any{}}
}

func (*Call) idPrefix() string { return prefixCall }

// Live reports whether the call has not ended yet.
func (c *Call) Live() bool {
	return c.Status == CallQueued || c.Status == CallRinging || c.Status == CallInProgress
}

// Validate checks the call. Every call has a known direction and status, and talks to at most
// one of an agent and a built-in destination. An outbound call, which a client places
// through the API, must also say where it goes and how: a To that is an E.164 number, a SIP
// URI or a SIP user; exactly one of agent_id and destination; and a trunk unless To is a SIP
// URI, which names its host itself.
func (c *Call) Validate() error {
	var fe fieldErrors
	fe.oneOf("direction", c.Direction, CallInbound, CallOutbound, CallWeb)
	fe.oneOf("status", c.Status, CallStatuses...)
	c.To, c.From = strings.TrimSpace(c.To), strings.TrimSpace(c.From)
	if len(c.To) > maxURILen {
		fe.add("to", "must be at most %d bytes", maxURILen)
	}
	if len(c.From) > maxURILen {
		fe.add("from", "must be at most %d bytes", maxURILen)
	}
	if c.AgentID != nil && !validID(prefixAgent, *c.AgentID) {
		fe.add("agent_id", "is not an agent ID")
	}
	if c.TrunkID != nil && !validID(prefixTrunk, *c.TrunkID) {
		fe.add("trunk_id", "is not a trunk ID")
	}
	if c.Destination != "" {
		if !slices.Contains(BuiltinDestinations, c.Destination) {
			fe.add("destination", "unknown built-in destination %q (want %s)", c.Destination, strings.Join(BuiltinDestinations, ", "))
		} else if c.AgentID != nil {
			fe.add("destination", "a call goes to an agent or to a built-in destination, not both")
		}
	}
	for _, f := range []struct{ name, v string }{{"sip_call_id", c.SIPCallID}, {"codec", c.Codec}, {"ended_reason", c.EndedReason}, {"node", c.Node}} {
		if len(f.v) > maxNameLen {
			fe.add(f.name, "must be at most %d characters", maxNameLen)
		}
	}
	if c.DurationSeconds < 0 {
		fe.add("duration_seconds", "must not be negative")
	}
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	if c.Report == nil {
		c.Report = map[string]any{}
	}
	fe.metadata("metadata", c.Metadata)
	if c.Direction == CallOutbound {
		c.validateOutbound(&fe)
	}
	if c.AMD != nil {
		if c.Direction != CallOutbound {
			fe.add("amd", "answering-machine detection is for outbound calls only")
		}
		c.AMD.validate(&fe, c.AgentID != nil)
	}
	return fe.err()
}

func (c *Call) validateOutbound(fe *fieldErrors) {
	if c.TimeoutSeconds == 0 {
		c.TimeoutSeconds = DefaultCallTimeout
	}
	fe.rangeInt("timeout_seconds", c.TimeoutSeconds, 1, MaxCallTimeout)
	uri := false
	switch {
	case c.To == "":
		fe.add("to", "is required: an E.164 number such as +14155550100, a SIP URI such as sip:alice@pbx.example.com, or a SIP user")
	case strings.HasPrefix(c.To, "+"):
		if !reE164.MatchString(c.To) {
			fe.add("to", "is not an E.164 number (a + and 2 to 15 digits)")
		}
	case hasSIPScheme(c.To):
		uri = true
		if !validSIPURI(c.To) {
			fe.add("to", "is not a SIP URI: want sip:user@host[:port] or sips:user@host[:port]")
		}
	case !reSIPUser.MatchString(c.To):
		fe.add("to", "must be an E.164 number, a sip: or sips: URI, or a SIP user of letters, digits and . _ ~ + -")
	}
	switch {
	case c.From == "", reE164.MatchString(c.From), reSIPUser.MatchString(c.From):
	case hasSIPScheme(c.From) && validSIPURI(c.From):
	default:
		fe.add("from", "must be an E.164 number, a SIP URI or a SIP user")
	}
	if c.AgentID == nil && c.Destination == "" {
		fe.add("agent_id", "an outbound call needs agent_id or destination (one of %s): what talks to the callee", strings.Join(BuiltinDestinations, ", "))
	}
	if c.TrunkID == nil && c.To != "" && !uri {
		fe.add("trunk_id", "is required to call a number or SIP user: the trunk to place the call over (or call a sip: URI)")
	}
}

func (c *Call) references() []reference {
	var refs []reference
	if c.AgentID != nil {
		refs = append(refs, reference{field: "agent_id", table: "agents", id: *c.AgentID})
	}
	if c.TrunkID != nil {
		refs = append(refs, reference{field: "trunk_id", table: "trunks", id: *c.TrunkID})
	}
	return refs
}

// hasSIPScheme reports whether s starts with sip: or sips:, in any case.
func hasSIPScheme(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:")
}

// ValidDestination says whether s is somewhere a call can be transferred: an E.164 number
// or a sip: or sips: URI (ValidateTransferTarget says what is wrong with one that is not).
func ValidDestination(s string) bool { return ValidateTransferTarget(s) == nil }

// validSIPURI checks the form of a sip: or sips: URI enough to dial it: an optional user, and
// a host of letters, digits, dots, dashes (or an IPv6 literal) with an optional port.
func validSIPURI(s string) bool {
	_, rest, _ := strings.Cut(s, ":")
	rest, _, _ = strings.Cut(rest, ";") // URI parameters
	rest, _, _ = strings.Cut(rest, "?") // headers
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if i == 0 || strings.ContainsAny(rest[:i], " <>\"") {
			return false
		}
		rest = rest[i+1:]
	}
	return validHostPort(rest)
}

// FindInboundTrunks returns the trunks of every tenant that accept calls (direction inbound
// or both), oldest first: the SIP server weighs them all only for a call no tenant owns (a
// built-in destination dialled by name, or a number that does not exist), which strangers
// may send at will, so the list is kept for InboundTrunksTTL rather than read for each.
// The slice is shared: callers must not change it or its trunks.
func FindInboundTrunks(ctx context.Context, s *Store) ([]Trunk, error) {
	v := s.trunkWrites.Load()
	c := &s.inbound
	c.mu.Lock()
	if c.trunks != nil && c.version == v && time.Since(c.read) < InboundTrunksTTL {
		out := c.trunks
		c.mu.Unlock()
		return out, nil
	}
	c.mu.Unlock()
	read := time.Now()
	out := []Trunk{}
	err := s.db.NewSelect().Model(&out).Where("direction IN (?)", bun.List([]string{"inbound", "both"})).
		Order("created_at", "id").Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	c.mu.Lock()
	// A write committed while we read may be missing from out: then keep nothing.
	if s.trunkWrites.Load() == v && read.After(c.read) {
		c.version, c.read, c.trunks = v, read, out
	}
	c.mu.Unlock()
	return out, nil
}

// FindTenantInboundTrunks returns the tenant's trunks that accept calls, oldest first: a call
// to one of the tenant's numbers is checked against these and no others. It reads the
// tenant's rows of the trunks index only.
func FindTenantInboundTrunks(ctx context.Context, s *Store, tenantID string) ([]Trunk, error) {
	out := []Trunk{}
	err := s.db.NewSelect().Model(&out).Where("tenant_id = ?", tenantID).
		Where("direction IN (?)", bun.List([]string{"inbound", "both"})).
		Order("created_at", "id").Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// InboundPassword opens the password callers over the trunk authenticate with ("" when none
// is set).
func (t *Trunk) InboundPassword(s *Store) (string, error) { return openSealed(s, t.InboundPasswordEnc) }

// OutboundPassword opens the password Switchboard authenticates with at the trunk's proxy (""
// when none is set).
func (t *Trunk) OutboundPassword(s *Store) (string, error) {
	return openSealed(s, t.OutboundPasswordEnc)
}

func openSealed(s *Store, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if s.sealer == nil {
		return "", ErrNoSecret
	}
	return s.sealer.Open(sealed)
}

// FindPhoneNumber finds the tenant's phone number a call was dialled to, as
// PhoneNumberByNumber does: an E.164 number is found whether it was dialled with or without
// its "+" (and with spaces, dashes, dots or parentheses), and a SIP user regardless of case.
// Another tenant's number is ErrNotFound.
func FindPhoneNumber(ctx context.Context, s *Store, tenantID, number string) (*PhoneNumber, error) {
	p, err := s.PhoneNumberByNumber(ctx, number)
	if err != nil {
		return nil, err
	}
	if p.TenantID != tenantID {
		return nil, ErrNotFound
	}
	return p, nil
}

// dialledDigits returns the digits of a dialled telephone number without its "+" and visual
// separators, when it is one.
func dialledDigits(s string) (string, bool) {
	s = strings.TrimPrefix(s, "+")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", false
		}
	}
	d := b.String()
	return d, len(d) >= 2 && len(d) <= 15 && d[0] != '0'
}

// CallFilter narrows a list of calls; zero fields do not filter.
type CallFilter struct {
	Status    string
	AgentID   string
	Direction string
	// Since and Until bound the creation time: Since <= created_at < Until.
	Since, Until time.Time
	// Number finds calls whose from or to contains it, ignoring case (at most
	// MaxCallSearchLen characters).
	Number string
}

// MaxCallSearchLen bounds the text a call list is searched for.
const MaxCallSearchLen = 64

// likeEscaper makes text match itself in a LIKE pattern with ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ListCalls reads a page of the tenant's calls that pass the filter, newest first, and how
// many pass it in all.
func ListCalls(ctx context.Context, s *Store, tenantID string, f CallFilter, page Page) ([]Call, int, error) {
	items := make([]Call, 0, page.Limit)
	q := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.AgentID != "" {
		q = q.Where("agent_id = ?", f.AgentID)
	}
	if f.Direction != "" {
		q = q.Where("direction = ?", f.Direction)
	}
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("created_at < ?", f.Until.UTC())
	}
	if f.Number != "" {
		// SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE does that.
		// Neither lowers each row's columns first, which would cost the scan twice over.
		like, pat := "LIKE", "%"+likeEscaper.Replace(f.Number)+"%"
		if s.dialect == Postgres {
			like = "ILIKE"
		}
		q = q.Where(`(from_uri `+like+` ? ESCAPE '\' OR to_uri `+like+` ? ESCAPE '\')`, pat, pat)
	}
	total, err := q.Order("created_at DESC", "id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// FailInterruptedCalls ends, as failed with the reason "restart", every call the node was
// carrying when it stopped without ending them (queued, ringing or in progress), and returns
// how many there were. A node calls it as it starts, so that a killed process leaves no call
// live forever.
func FailInterruptedCalls(ctx context.Context, s *Store, node string) (int, error) {
	calls, err := failCalls(ctx, s, EndedRestart, where{"node = ?", []any{node}})
	if serr := FreeNodeCallSlots(ctx, s, node); err == nil {
		err = serr
	}
	return len(calls), err
}

// defaultFailBatch bounds how many calls one transaction of failCalls ends: a node that
// carried thousands is failed in short transactions, none holding its locks for long.
const defaultFailBatch = 500

// failBatch, when set, replaces defaultFailBatch (tests try small batches).
var failBatch atomic.Int64

// where is one condition of a query, with its arguments.
type where struct {
	query string
	args  []any
}

// failCalls ends, as failed with reason, the live calls that match every condition, in
// transactions of at most failBatch calls, and returns those it ended as they now are. Each
// update checks again that its call is live and matches, so that nodes failing the same
// calls at once (or the call's own end) never end one twice. On an error it returns what it
// ended before it.
func failCalls(ctx context.Context, s *Store, reason string, conds ...where) ([]Call, error) {
	var ended []Call
	for {
		var batch []Call
		n, limit := 0, int(failBatch.Load())
		if limit <= 0 {
			limit = defaultFailBatch
		}
		err := s.inTx(ctx, func(tx bun.Tx) error {
			var calls []Call
			q := tx.NewSelect().Model(&calls).Where("status IN (?)", bun.List(liveStatuses))
			for _, c := range conds {
				q = q.Where(c.query, c.args...)
			}
			if err := q.Order("created_at", "id").Limit(int64(limit)).Scan(ctx); err != nil {
				return err
			}
			n, batch = len(calls), nil
			ids := make([]string, len(calls))
			for i, c := range calls {
				ids[i] = c.ID
			}
			return rollCalls(ctx, tx, s.dialect, ids, func() error { return failEach(ctx, tx, s.now(), calls, reason, conds, &batch) })
		})
		if err != nil {
			return ended, err
		}
		ended = append(ended, batch...)
		// A short batch was the last; one that ended nothing found only calls that
		// stopped matching meanwhile, and would find them again.
		if n < limit || len(batch) == 0 {
			return ended, nil
		}
	}
}

// failEach ends each of the live calls (read in tx), adding those it ended to batch.
func failEach(ctx context.Context, tx bun.Tx, now time.Time, calls []Call, reason string, conds []where, batch *[]Call) error {
	for _, c := range calls {
		duration := 0.0
		if c.AnsweredAt != nil && now.After(*c.AnsweredAt) {
			duration = now.Sub(*c.AnsweredAt).Seconds()
		}
		u := tx.NewUpdate().Model((*Call)(nil)).
			Set("status = ?", CallFailed).Set("ended_reason = ?", reason).
			Set("ended_at = ?", now).Set("updated_at = ?", now).Set("duration_seconds = ?", duration).
			Where("id = ?", c.ID).Where("status IN (?)", bun.List(liveStatuses))
		for _, c := range conds {
			u = u.Where(c.query, c.args...)
		}
		res, err := u.Exec(ctx)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k > 0 {
			at := now
			c.Status, c.EndedReason, c.EndedAt, c.UpdatedAt, c.DurationSeconds = CallFailed, reason, &at, now, duration
			*batch = append(*batch, c)
		}
	}
	return nil
}

// FailOrphanedCalls ends, as failed with the reason node-lost, the live calls of nodes that
// have no heartbeat (a node of a version from before heartbeats, or one whose claim was
// taken by a watcher that stopped before failing all its calls) and whose records have not
// changed for silentFor. The calls of self, and of every node with a heartbeat, are never
// touched: a node with a heartbeat is judged by it.
func FailOrphanedCalls(ctx context.Context, s *Store, self string, silentFor time.Duration) ([]Call, error) {
	before := s.now().Add(-silentFor)
	return failCalls(ctx, s, EndedNodeLost,
		where{"node <> ''", nil}, where{"node <> ?", []any{self}},
		where{"node NOT IN (SELECT name FROM nodes)", nil}, where{"updated_at < ?", []any{before}})
}

// validHostPort checks host[:port], where host is a name, an IPv4 address or a bracketed
// IPv6 literal.
func validHostPort(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || net.ParseIP(s[1:end]) == nil {
			return false
		}
		host, port = "", strings.TrimPrefix(s[end+1:], ":")
		if s[end+1:] != "" && !strings.HasPrefix(s[end+1:], ":") {
			return false
		}
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, port = h, p
		if port == "" {
			return false
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	if host == "" {
		return strings.HasPrefix(s, "[")
	}
	if len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// ValidateTransferTarget checks where a live call may be transferred to: an E.164 number or
// a sip: or sips: URI. A *ValidationError names the field "to".
func ValidateTransferTarget(to string) error {
	var fe fieldErrors
	switch {
	case strings.TrimSpace(to) == "":
		fe.add("to", "is required: an E.164 number such as +14155550100 or a SIP URI such as sip:desk@pbx.example.com")
	case strings.HasPrefix(to, "+"):
		if !reE164.MatchString(to) {
			fe.add("to", "is not an E.164 number (a + and 2 to 15 digits)")
		}
	case hasSIPScheme(to):
		if !validSIPURI(to) || len(to) > maxURILen {
			fe.add("to", "is not a SIP URI: want sip:user@host[:port] or sips:user@host[:port]")
		}
	default:
		fe.add("to", "must be an E.164 number or a sip: or sips: URI")
	}
	return fe.err()
}

// CallTranscript is what was said on a call, turn by turn, as the voice loop wrote it.
type CallTranscript struct {
	bun.BaseModel `bun:"table:call_transcripts"`

	CallID    string          `bun:"call_id,pk" json:"call_id"`
	TenantID  string          `bun:"tenant_id,notnull" json:"-"`
	Turns     json.RawMessage `bun:"turns,type:json" json:"turns"`
	CreatedAt time.Time       `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt time.Time       `bun:"updated_at,notnull" json:"updated_at"`
}

// SaveTranscript writes (or replaces) the transcript of a call of the tenant: turns is
// marshalled to JSON as it is. A call that is not the tenant's is ErrNotFound.
func SaveTranscript(ctx context.Context, s *Store, tenantID, callID string, turns any) error {
	raw, err := json.Marshal(turns)
	if err != nil {
		return fmt.Errorf("store: transcript: %w", err)
	}
	if string(raw) == "null" {
		raw = []byte("[]")
	}
	now := s.now()
	return s.inTx(ctx, func(tx bun.Tx) error {
		n, err := tx.NewSelect().Model((*Call)(nil)).Where("id = ?", callID).Where("tenant_id = ?", tenantID).Count(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		t := &CallTranscript{CallID: callID, TenantID: tenantID, Turns: raw, CreatedAt: now, UpdatedAt: now}
		_, err = tx.NewInsert().Model(t).On("CONFLICT (call_id) DO UPDATE").
			Set("turns = EXCLUDED.turns").Set("updated_at = EXCLUDED.updated_at").Exec(ctx)
		return err
	})
}

// GetTranscript reads the transcript of a call of the tenant; a call without one (or not
// the tenant's) is ErrNotFound.
func GetTranscript(ctx context.Context, s *Store, tenantID, callID string) (*CallTranscript, error) {
	t := new(CallTranscript)
	err := s.db.NewSelect().Model(t).Where("call_id = ?", callID).Where("tenant_id = ?", tenantID).Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return t, nil
}
