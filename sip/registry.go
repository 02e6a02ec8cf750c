package sip

import (
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
)

// registry is what only SIP indexes of its live calls: their dialogs (an in-dialog request
// finds its call by dialog ID) and their sources (a TCP or TLS connection that carries an
// inbound call is not closed for being idle). The node's registry of live calls
// (call.Registry) is the one the API and the limits use: add puts a call in both, and the
// call's lifecycle takes it out of the node's when its record is final.
type registry struct {
	node *call.Registry

	mu       sync.Mutex
	byDialog map[string]*Call
	// bySource counts the inbound calls of each source ("ip:port").
	bySource map[string]int
}

func newRegistry(node *call.Registry) *registry {
	if node == nil {
		node = call.NewRegistry(nil)
	}
	return &registry{node: node, byDialog: map[string]*Call{}, bySource: map[string]int{}}
}

func (r *registry) add(c *Call) {
	r.mu.Lock()
	if c.dialogID != "" {
		r.byDialog[c.dialogKey()] = c
	}
	if src := c.source(); src != "" {
		r.bySource[src]++
	}
	c.listed = true
	r.mu.Unlock()
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

// remove takes an ending call out of the index; again, it does nothing.
func (r *registry) remove(c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byDialog[c.dialogKey()] == c {
		delete(r.byDialog, c.dialogKey())
	}
	if !c.listed {
		return
	}
	c.listed = false
	if src := c.source(); src != "" {
		if r.bySource[src]--; r.bySource[src] <= 0 {
			delete(r.bySource, src)
		}
	}
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
