package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
)

// NodeHeartbeat is the heartbeat of a Switchboard node sharing the database. A node that stops
// beating (killed, cut off, or restarted under another name, as a container is) is lost,
// and the node that notices first fails the calls it was carrying (EndedNodeLost).
type NodeHeartbeat struct {
	bun.BaseModel `bun:"table:nodes"`

	Name        string    `bun:"name,pk" json:"name"`
	Version     string    `bun:"version,notnull" json:"version"`
	StartedAt   time.Time `bun:"started_at,notnull" json:"started_at"`
	HeartbeatAt time.Time `bun:"heartbeat_at,notnull" json:"heartbeat_at"`
	// Beats counts the node's heartbeats. Other nodes judge silence by whether it moves, on
	// their own clocks, so that nodes whose clocks disagree never fail each other's calls.
	Beats int64 `bun:"beats,notnull" json:"beats"`
}

// Beat records that the node is alive. It reports whether the node's row was already
// there: false at the first beat of a node, and when another node found it lost and
// removed it (then its live calls were failed meanwhile).
func Beat(ctx context.Context, s *Store, name, version string, startedAt time.Time) (bool, error) {
	now := s.now()
	res, err := s.db.NewUpdate().Model((*NodeHeartbeat)(nil)).
		Set("heartbeat_at = ?", now).Set("beats = beats + 1").Set("version = ?", version).Set("started_at = ?", startedAt.UTC()).
		Where("name = ?", name).Exec(ctx)
	if err != nil {
		return false, classify(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	n := &NodeHeartbeat{Name: name, Version: version, StartedAt: startedAt.UTC(), HeartbeatAt: now, Beats: 1}
	if _, err := s.db.NewInsert().Model(n).On("CONFLICT (name) DO UPDATE").
		Set("heartbeat_at = EXCLUDED.heartbeat_at").Set("beats = ?TableAlias.beats + 1").Exec(ctx); err != nil {
		return false, classify(err)
	}
	return false, nil
}

// ListNodes reads the heartbeats of every node, by name.
func ListNodes(ctx context.Context, s *Store) ([]NodeHeartbeat, error) {
	out := []NodeHeartbeat{}
	if err := s.db.NewSelect().Model(&out).Order("name").Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// FailLostNode declares the node lost, if it has not beaten since beats (what the caller
// last saw of it), and fails its live calls with the reason node-lost; it returns the calls
// it ended, and whether it was the one to declare the node lost. Removing the node's row and failing its calls are one transaction, and the
// removal is the claim: when several nodes notice at once, one fails the calls and the
// others find nothing to do; a node that beat again in the meantime is left alone.
func FailLostNode(ctx context.Context, s *Store, name string, beats int64) ([]Call, bool, error) {
	var ended []Call
	claimed := false
	err := s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*NodeHeartbeat)(nil)).Where("name = ?", name).Where("beats = ?", beats).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		claimed = true
		ended, err = failLiveCalls(ctx, tx, s.now(), name, EndedNodeLost)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return ended, claimed, nil
}

// LeaveNode is a node's last word as it stops gracefully: the calls still live under its
// name (none, unless their final state could not be written) end as failed with the reason
// shutdown, and its heartbeat is removed, at once rather than after the timeout. It
// returns how many calls it ended.
func LeaveNode(ctx context.Context, s *Store, name string) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx bun.Tx) error {
		ended, err := failLiveCalls(ctx, tx, s.now(), name, EndedShutdown)
		if err != nil {
			return err
		}
		n = len(ended)
		_, err = tx.NewDelete().Model((*NodeHeartbeat)(nil)).Where("name = ?", name).Exec(ctx)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Defaults of a node's heartbeat.
const (
	DefaultHeartbeatEvery   = 5 * time.Second
	DefaultHeartbeatTimeout = 30 * time.Second
)

// HeartbeatOptions configure a node's Heartbeat.
type HeartbeatOptions struct {
	// Node is this node's name (SWITCHBOARD_NODE) and Version what it runs.
	Node, Version string
	// Every is how often the node beats and looks at the others (0: DefaultHeartbeatEvery);
	// Timeout, how long another node's beats may stop before it is lost (0:
	// DefaultHeartbeatTimeout). Timeout must be at least twice Every.
	Every, Timeout time.Duration
	Log            *slog.Logger
	// OnLost, when set, receives each call a lost node was carrying, as ended (to publish
	// its call.ended).
	OnLost func(Call)
}

// Heartbeat keeps this node's heartbeat in the database and watches the other nodes'.
type Heartbeat struct {
	s       *Store
	opts    HeartbeatOptions
	log     *slog.Logger
	started time.Time
	// seen is, for every other node, its beat count and when (on this node's monotonic
	// clock) it last moved.
	seen map[string]seenNode
	// failing: the last beat failed (logged once until one succeeds); beaten: one did.
	failing, beaten bool
}

type seenNode struct {
	beats int64
	at    time.Time
}

// NewHeartbeat checks the options and returns the node's heartbeat, not yet beating.
func NewHeartbeat(s *Store, opts HeartbeatOptions) (*Heartbeat, error) {
	if opts.Every == 0 {
		opts.Every = DefaultHeartbeatEvery
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultHeartbeatTimeout
	}
	switch {
	case opts.Node == "":
		return nil, errors.New("store: a heartbeat needs the node's name")
	case opts.Every < 0 || opts.Timeout < 0:
		return nil, errors.New("store: heartbeat interval and timeout must be positive")
	case opts.Timeout < 2*opts.Every:
		return nil, fmt.Errorf("store: heartbeat timeout %v must be at least twice the interval %v", opts.Timeout, opts.Every)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Heartbeat{s: s, opts: opts, log: log, started: time.Now(), seen: map[string]seenNode{}}, nil
}

// Beat beats once. A node beats before it takes calls, so that its calls are never
// without a heartbeat to watch.
func (h *Heartbeat) Beat(ctx context.Context) error {
	// A beat slower than half the timeout is as good as none.
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout/2)
	defer cancel()
	existed, err := Beat(ctx, h.s, h.opts.Node, h.opts.Version, h.started)
	if err != nil {
		if !h.failing {
			h.failing = true
			h.log.Warn("node heartbeat not written; other nodes will fail this node's calls if it stays silent",
				"node", h.opts.Node, "timeout", h.opts.Timeout, "error", err)
		}
		return err
	}
	if h.failing {
		h.failing = false
		h.log.Info("node heartbeat written again", "node", h.opts.Node)
	}
	if !existed && h.beaten {
		h.log.Warn("another node found this node lost and failed its live calls (node-lost); their records are rewritten as they change",
			"node", h.opts.Node)
	}
	h.beaten = true
	return nil
}

// Run beats every Every until ctx ends, and after each beat fails the calls of any other
// node whose beats have not moved for Timeout. It does not leave: a node stopping
// gracefully calls Leave once its calls have ended.
func (h *Heartbeat) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Every)
	defer t.Stop()
	for {
		_ = h.Beat(ctx)
		h.watch(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// watch looks at the other nodes' beats and fails the calls of those silent too long.
func (h *Heartbeat) watch(ctx context.Context) {
	// Failing the calls of a node that carried thousands takes a while.
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	nodes, err := ListNodes(ctx, h.s)
	if err != nil {
		return // the database is away: nobody's silence can be judged from here
	}
	now := time.Now()
	present := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if n.Name == h.opts.Node {
			continue
		}
		present[n.Name] = true
		seen, ok := h.seen[n.Name]
		if !ok || seen.beats != n.Beats {
			h.seen[n.Name] = seenNode{beats: n.Beats, at: now}
			continue
		}
		if now.Sub(seen.at) < h.opts.Timeout {
			continue
		}
		calls, claimed, err := FailLostNode(ctx, h.s, n.Name, n.Beats)
		if err != nil {
			h.log.Warn("lost node's calls not failed yet", "lost_node", n.Name, "error", err)
			continue
		}
		delete(h.seen, n.Name)
		if !claimed {
			continue // it beat again, or another node got there first
		}
		h.log.Warn("node lost: its heartbeat stopped; its live calls are failed (node-lost)",
			"lost_node", n.Name, "silent_for", now.Sub(seen.at).Round(time.Second), "calls", len(calls))
		if h.opts.OnLost != nil {
			for _, c := range calls {
				h.opts.OnLost(c)
			}
		}
	}
	for name := range h.seen {
		if !present[name] {
			delete(h.seen, name)
		}
	}
}

// Leave removes the node's heartbeat and fails any call still live under its name
// (LeaveNode).
func (h *Heartbeat) Leave(ctx context.Context) error {
	n, err := LeaveNode(ctx, h.s, h.opts.Node)
	if err != nil {
		return err
	}
	if n > 0 {
		h.log.Warn("calls still live at shutdown marked failed", "calls", n, "node", h.opts.Node)
	}
	return nil
}
