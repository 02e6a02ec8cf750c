package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
// it ended, and whether it was the one to declare the node lost. Removing the node's row is
// the claim: when several nodes notice at once, one fails the calls and the others find
// nothing to do; a node that beat again in the meantime is left alone. On PostgreSQL a row
// another watcher is claiming is skipped, not waited for. The calls are then failed in
// short transactions (failBatch calls each); should the claimer stop before the last, the
// calls left live have no heartbeat and FailOrphanedCalls ends them.
func FailLostNode(ctx context.Context, s *Store, name string, beats int64) ([]Call, bool, error) {
	q := s.db.NewDelete().Model((*NodeHeartbeat)(nil))
	if s.dialect == Postgres {
		q = q.Where("name IN (?)", s.db.NewSelect().Model((*NodeHeartbeat)(nil)).Column("name").
			Where("name = ?", name).Where("beats = ?", beats).For("UPDATE SKIP LOCKED"))
	} else {
		q = q.Where("name = ?", name).Where("beats = ?", beats)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return nil, false, classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, false, nil
	}
	ended, err := failCalls(ctx, s, EndedNodeLost, where{"node = ?", []any{name}})
	if serr := FreeNodeCallSlots(ctx, s, name); err == nil {
		err = serr
	}
	return ended, true, err
}

// LeaveNode is a node's last word as it stops gracefully: the calls still live under its
// name (none, unless their final state could not be written) end as failed with the reason
// shutdown, and its heartbeat is removed, at once rather than after the timeout. It
// returns how many calls it ended.
func LeaveNode(ctx context.Context, s *Store, name string) (int, error) {
	ended, err := failCalls(ctx, s, EndedShutdown, where{"node = ?", []any{name}})
	if err != nil {
		return len(ended), err
	}
	if err := FreeNodeCallSlots(ctx, s, name); err != nil {
		return len(ended), err
	}
	if _, err := s.db.NewDelete().Model((*NodeHeartbeat)(nil)).Where("name = ?", name).Exec(ctx); err != nil {
		return len(ended), classify(err)
	}
	return len(ended), nil
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
	// mu guards failing and beaten: Beat may be called beside Run.
	mu sync.Mutex
	// failing: the last beat failed (logged once until one succeeds); beaten: one did.
	failing, beaten bool
	// seen is, for every other node, its beat count and when (on this node's monotonic
	// clock) it last moved; swept is when watch last looked for orphaned calls. Only the
	// watching goroutine uses them.
	seen  map[string]seenNode
	swept time.Time
	// stop and done are those of the goroutine Start started.
	stop context.CancelFunc
	done chan struct{}
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

// Beat beats once.
func (h *Heartbeat) Beat(ctx context.Context) error {
	// A beat slower than half the timeout is as good as none.
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout/2)
	defer cancel()
	existed, err := Beat(ctx, h.s, h.opts.Node, h.opts.Version, h.started)
	h.mu.Lock()
	defer h.mu.Unlock()
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
		h.log.Warn("another node found this node lost and failed its live calls (node-lost); their records keep that end, "+
			"and the calls go on here until they end on their own", "node", h.opts.Node)
	}
	h.beaten = true
	return nil
}

// Join is the node's first beat, before it takes calls, so that its calls are never without
// a heartbeat to watch: a node serving without one would have its quiet calls taken for
// orphans. It tries again while the database refuses, backing off, for at most the
// heartbeat timeout, and then reports why.
func (h *Heartbeat) Join(ctx context.Context) error {
	deadline := time.Now().Add(h.opts.Timeout)
	backoff := joinBackoff
	for {
		err := h.Beat(ctx)
		if err == nil {
			return nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("store: node heartbeat not written for %v: %w", h.opts.Timeout, err)
		}
		h.log.Info("node heartbeat not written yet; trying again before taking calls", "node", h.opts.Node, "in", backoff, "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, h.opts.Every)
	}
}

// joinBackoff is Join's first wait between attempts.
const joinBackoff = 200 * time.Millisecond

// Run beats every Every until ctx ends, and beside that, every Every too, fails the calls of
// any other node whose beats have not moved for Timeout. The two run on their own
// goroutines: failing a lost node's calls, or waiting on a database lock to do it, never
// delays this node's own beats. It does not leave: a node stopping gracefully calls Leave
// once its calls have ended.
func (h *Heartbeat) Run(ctx context.Context) {
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		t := time.NewTicker(h.opts.Every)
		defer t.Stop()
		for {
			_ = h.Beat(ctx)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { <-beating }()
	t := time.NewTicker(h.opts.Every)
	defer t.Stop()
	for {
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
	lctx, cancel := context.WithTimeout(ctx, h.opts.Timeout/2)
	nodes, err := ListNodes(lctx, h.s)
	cancel()
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
		// Each lost node gets a timeout of its own: failing the calls of one that carried
		// thousands takes a while.
		fctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
		calls, claimed, err := FailLostNode(fctx, h.s, n.Name, n.Beats)
		cancel()
		if err != nil && !claimed {
			h.log.Warn("lost node's calls not failed yet", "lost_node", n.Name, "error", err)
			continue
		}
		delete(h.seen, n.Name)
		if !claimed {
			continue // it beat again, or another node is claiming it or got there first
		}
		if err != nil {
			// Its heartbeat is gone: the calls left live are orphans, ended by the
			// sweep below once their records have been quiet for the timeout.
			h.log.Warn("lost node's calls failed in part", "lost_node", n.Name, "calls", len(calls), "error", err)
		}
		h.log.Warn("node lost: its heartbeat stopped; its live calls are failed (node-lost)",
			"lost_node", n.Name, "silent_for", now.Sub(seen.at).Round(time.Second), "calls", len(calls))
		h.report(calls)
	}
	for name := range h.seen {
		if !present[name] {
			delete(h.seen, name)
		}
	}
	// Calls of nodes with no heartbeat at all, once a timeout.
	if h.swept.IsZero() || now.Sub(h.swept) >= h.opts.Timeout {
		h.swept = now
		octx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
		calls, err := FailOrphanedCalls(octx, h.s, h.opts.Node, h.opts.Timeout)
		cancel()
		if err != nil {
			h.log.Warn("calls of nodes without a heartbeat not failed yet", "error", err)
		}
		if len(calls) > 0 {
			h.log.Warn("calls of nodes without a heartbeat, quiet for the timeout, failed (node-lost)", "calls", len(calls))
			h.report(calls)
		}
	}
}

// report hands the calls this node failed to OnLost.
func (h *Heartbeat) report(calls []Call) {
	if h.opts.OnLost != nil {
		for _, c := range calls {
			h.opts.OnLost(c)
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

// Start runs the heartbeat (Run) on a goroutine of its own until ctx ends or Stop.
func (h *Heartbeat) Start(ctx context.Context) {
	ctx, h.stop = context.WithCancel(ctx)
	h.done = make(chan struct{})
	go func() { defer close(h.done); h.Run(ctx) }()
}

// Stop stops the heartbeat Start started and waits for it. It may be called again, and
// does nothing when the heartbeat was not started; it is called by whoever called Start.
func (h *Heartbeat) Stop() {
	if h.stop == nil {
		return
	}
	h.stop()
	<-h.done
}

// departWait bounds a node's last word (Depart).
const departWait = 15 * time.Second

// Depart is a node's last word once its calls have ended: their records still queued for
// the database are written, the heartbeat stops and is removed (Leave), so that no other
// node has to find this one lost. It takes at most 15 s, and logs what it could not do.
func (h *Heartbeat) Depart() {
	ctx, cancel := context.WithTimeout(context.Background(), departWait)
	defer cancel()
	if err := h.s.FlushCalls(ctx); err != nil {
		h.log.Error("call records not written at shutdown", "error", err)
	}
	h.Stop()
	if err := h.Leave(ctx); err != nil {
		h.log.Warn("node heartbeat not removed; other nodes will see it lost after the timeout", "error", err)
	}
}
