package store

import (
	"sync"
	"time"
)

// InboundTrunksTTL is how long FindInboundTrunks answers from its cache: a trunk written
// through the same Store (this node) is seen at once, one written by another node sharing
// the database within this time.
const InboundTrunksTTL = time.Second

// inboundTrunks is FindInboundTrunks' cache of the node's inbound trunks.
type inboundTrunks struct {
	mu      sync.Mutex
	version uint64 // Store.trunkWrites when trunks were read
	read    time.Time
	trunks  []Trunk
}
