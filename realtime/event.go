// Package realtime carries what happens on calls and sessions to whoever watches: a hub of
// tenant-scoped topics with bounded per-subscriber queues and short replay buffers, its two
// ways out (Server-Sent Events and a JSON WebSocket), and, when nodes share PostgreSQL, a
// relay through LISTEN/NOTIFY so that a subscriber on one node sees what another published.
package realtime

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Event types the hub carries; later capabilities add their own. A call's life cycle
// (call.created … call.ended) is package call's.
const (
	TypeCallTranscript  = "call.transcript"
	TypeCallAgentSpeech = "call.agent_speech"
	TypeCallToolCall    = "call.tool_call"
	TypeSessionMessage  = "session.message"
	TypeAgentUpdated    = "agent.updated"
	// A knowledge document became searchable, or failed (on knowledge:{base_id}).
	TypeKnowledgeDocumentReady  = "knowledge.document.ready"
	TypeKnowledgeDocumentFailed = "knowledge.document.failed"
	// TypeStreamGap tells a subscriber that events were not delivered to it.
	TypeStreamGap = "stream.gap"
)

// Event is one thing that happened, on one topic of one tenant. IDs increase along every
// topic (they are drawn from one clock or sequence for the whole hub, or the whole cluster),
// so one ID is a resume point for any set of topics.
type Event struct {
	ID       uint64          `json:"id"`
	Type     string          `json:"type"`
	TenantID string          `json:"tenant_id"`
	Topic    string          `json:"topic"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`

	// committed, when set, is closed once a relay has committed the event.
	committed chan struct{}
}

// Gap is the data of a stream.gap event.
type Gap struct {
	// Missed counts events dropped because the subscriber fell behind; 0 when unknown.
	Missed uint64 `json:"missed"`
	// Reason: "slow_consumer" (the queue overflowed), "replay_expired" (a resume point
	// older than the replay buffer), or "relay_reconnected" (the cross-node relay lost its
	// connection and may have missed events).
	Reason string `json:"reason"`
	// Since is the resume point that could not be honoured in full, when there was one.
	Since uint64 `json:"since,omitempty"`
}

// TenantTopic is the topic that carries every event of a tenant.
const TenantTopic = "tenant"

// Topic kinds that name one thing: call:{id}, session:{id}, agent:{id}, knowledge:{base id}.
var topicKinds = []string{"call", "session", "agent", "knowledge"}

// ErrBadTopic is a topic name that is not tenant or kind:id of a known kind.
var ErrBadTopic = errors.New("realtime: unknown topic")

// ParseTopic splits a topic into its kind and ID ("tenant" has neither).
func ParseTopic(topic string) (kind, id string, err error) {
	if topic == TenantTopic {
		return TenantTopic, "", nil
	}
	kind, id, ok := strings.Cut(topic, ":")
	if !ok || id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\r\n:,") {
		return "", "", ErrBadTopic
	}
	for _, k := range topicKinds {
		if k == kind {
			return kind, id, nil
		}
	}
	return "", "", ErrBadTopic
}
