package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// A call lives on the node that carries its media; a request to hang it up or transfer it
// may reach any node of a cluster (an HTTP load balancer in front, a browser's DELETE on
// another node than its call). The node that gets such a request for a call another node
// carries sends the command through the hub's PostgreSQL channel, which every node already
// listens to, as a call.control event on the call's topic; the carrying node acts on it
// and answers with call.controlled, which the asking node waits for. The hub was chosen
// over node-to-node HTTP because it needs no address book of the nodes, no second secret
// and no port open between them, and it costs one NOTIFY each way (a millisecond or two).
const (
	typeCallControl    = "call.control"
	typeCallControlled = "call.controlled"
	// remoteWait bounds the wait for the carrying node's answer: one that does not answer
	// is down, and its heartbeat's lapse will fail its calls (node-lost).
	remoteWait = 5 * time.Second
)

// callCommand is the data of a call.control event.
type callCommand struct {
	Request string `json:"request"`
	Node    string `json:"node"` // the node that carries the call
	CallID  string `json:"call_id"`
	Action  string `json:"action"` // "hangup" or "transfer"
	Reason  string `json:"reason,omitempty"`
	To      string `json:"to,omitempty"`
}

// callControlled is the data of a call.controlled event: the outcome, as the API would
// have answered on the carrying node.
type callControlled struct {
	Request string             `json:"request"`
	Status  int                `json:"status,omitempty"` // 0: done
	Code    string             `json:"code,omitempty"`
	Message string             `json:"message,omitempty"`
	Details []store.FieldError `json:"details,omitempty"`
}

// cluster steers calls that other nodes carry; nil on a node alone.
type cluster struct {
	hub   *realtime.Hub
	node  string
	local *nodeCalls
	log   *slog.Logger

	mu      sync.Mutex
	waiting map[string]chan callControlled
}

func newCluster(hub *realtime.Hub, node string, local *nodeCalls, log *slog.Logger) *cluster {
	if !hub.Clustered() || node == "" {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &cluster{hub: hub, node: node, local: local, log: log, waiting: map[string]chan callControlled{}}
	hub.Observe(typeCallControl, c.command)
	hub.Observe(typeCallControlled, c.answer)
	return c
}

// send has node, which carries the call, act on it, and returns what it answered.
func (c *cluster) send(ctx context.Context, tenantID string, cmd callCommand) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	cmd.Request = hex.EncodeToString(b[:])
	ch := make(chan callControlled, 1)
	c.mu.Lock()
	c.waiting[cmd.Request] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, cmd.Request)
		c.mu.Unlock()
	}()
	if err := c.hub.Publish(tenantID, "call:"+cmd.CallID, typeCallControl, cmd); err != nil {
		return err
	}
	t := time.NewTimer(remoteWait)
	defer t.Stop()
	select {
	case res := <-ch:
		if res.Status == 0 {
			return nil
		}
		return &Error{Status: res.Status, Code: res.Code, Message: res.Message, Details: res.Details}
	case <-t.C:
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: 5,
			Message: "Node " + cmd.Node + ", which carries the call, did not answer: it may be down, and its calls are ended once its heartbeat lapses"}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// command acts on a call.control for a call this node carries.
func (c *cluster) command(ev *realtime.Event) {
	var cmd callCommand
	if json.Unmarshal(ev.Data, &cmd) != nil || cmd.Node != c.node || cmd.Request == "" {
		return
	}
	// Only the node that carries the call answers: one that shares this one's name by
	// mistake, or a call that ended meanwhile, leaves the asking node to its own wait.
	if c.local.live.Get(ev.TenantID, cmd.CallID) == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteWait)
	defer cancel()
	var err error
	switch cmd.Action {
	case "hangup":
		reason := callpkg.Reason(cmd.Reason)
		if !isReason(reason) {
			reason = callpkg.ReasonAPIHangup
		}
		err = c.local.hangup(ctx, ev.TenantID, cmd.CallID, reason)
	case "transfer":
		err = c.local.transfer(ctx, ev.TenantID, cmd.CallID, cmd.To)
	default:
		return
	}
	res := callControlled{Request: cmd.Request}
	if err != nil {
		e := asError(callError(err))
		res.Status, res.Code, res.Message, res.Details = e.Status, e.Code, e.Message, e.Details
	}
	if err := c.hub.Publish(ev.TenantID, ev.Topic, typeCallControlled, res); err != nil {
		c.log.Warn("call control answer not sent", "call_id", cmd.CallID, "error", err)
	}
}

// answer hands a call.controlled to the request waiting for it, if it is this node's.
func (c *cluster) answer(ev *realtime.Event) {
	var res callControlled
	if json.Unmarshal(ev.Data, &res) != nil {
		return
	}
	c.mu.Lock()
	ch := c.waiting[res.Request]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- res:
		default:
		}
	}
}

// isReason says whether r is one of Switchboard's end reasons.
func isReason(r callpkg.Reason) bool {
	for _, k := range callpkg.Reasons {
		if k == r {
			return true
		}
	}
	return false
}

// elsewhere is the node that carries the call when err says another node does, else "".
func elsewhere(err error) string {
	var ce *sip.CallError
	if errors.As(err, &ce) && errors.Is(err, sip.ErrCallElsewhere) {
		return ce.Node
	}
	return ""
}
