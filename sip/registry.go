package sip

import (
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
)

// registry finds live calls by dialog (for in-dialog requests) and by ID; the API finds
// them in the node's registry (call.Registry), which it adds them to and takes them out of.
type registry struct {
	node *call.Registry

	mu       sync.Mutex
	byDialog map[string]*Call
	byID     map[string]*Call
	// bySource counts the inbound calls of each source ("ip:port"): a TCP or TLS
	// connection that carries one is not closed for being idle.
	bySource map[string]int
}

func newRegistry(node *call.Registry) *registry {
	if node == nil {
		node = call.NewRegistry(nil)
	}
	return &registry{node: node, byDialog: map[string]*Call{}, byID: map[string]*Call{}, bySource: map[string]int{}}
}

func (r *registry) add(c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.dialogID != "" {
		r.byDialog[c.dialogKey()] = c
	}
	r.byID[c.id] = c
	if src := c.source(); src != "" {
		r.bySource[src]++
	}
	r.node.Add(c)
}

// source is where an inbound call's INVITE came from.
func (c *Call) source() string {
	if c.uas == nil {
		return ""
	}
	return c.uas.InviteRequest.Source()
}

// carries says whether a live inbound call came from src.
func (r *registry) carries(src string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bySource[src] > 0
}

func (r *registry) setDialog(c *Call, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.dialogID = id
	r.byDialog[c.dialogKey()] = c
}

func (r *registry) remove(c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byDialog[c.dialogKey()] == c {
		delete(r.byDialog, c.dialogKey())
	}
}

func (r *registry) forget(c *Call) {
	r.node.Remove(c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[c.id] == c {
		delete(r.byID, c.id)
		if src := c.source(); src != "" {
			if r.bySource[src]--; r.bySource[src] <= 0 {
				delete(r.bySource, src)
			}
		}
	}
}

func (r *registry) get(id string) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// dialogKey is the call's key among dialogs: its role and its dialog ID.
func (c *Call) dialogKey() string {
	if c.inbound {
		return "uas " + c.dialogID
	}
	return "uac " + c.dialogID
}

// match finds the call an in-dialog request belongs to, whichever side we are on.
func (r *registry) match(req *sip.Request) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Both sides of a call this server places to itself have the same dialog ID: the role
	// tells them apart.
	if id, err := sip.DialogIDFromRequestUAS(req); err == nil {
		if c := r.byDialog["uas "+id]; c != nil {
			return c
		}
	}
	if id, err := sip.DialogIDFromRequestUAC(req); err == nil {
		return r.byDialog["uac "+id]
	}
	return nil
}
