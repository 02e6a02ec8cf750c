package realtime

import (
	"context"
	"log/slog"
	"time"
)

// Changes publishes the events of changes just committed, by a client through the API or by
// the knowledge ingestion after its commit. Each waits, for at most two seconds, for the
// event's place in the cluster's order (PublishCommitted), so that a client's next change, on
// whichever node, comes after it on every stream; a slow hub costs a change no more.
type Changes struct {
	// Hub is where the events go; nil: nowhere.
	Hub *Hub
	Log *slog.Logger
}

// changeOrderWait bounds how long a change waits for its event's place.
const changeOrderWait = 2 * time.Second

// Publish sends an event of type typ on a topic of a tenant, once its change is committed.
func (c Changes) Publish(ctx context.Context, tenantID, topic, typ string, data any) {
	if c.Hub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), changeOrderWait)
	defer cancel()
	if err := c.Hub.PublishCommitted(ctx, tenantID, topic, typ, data); err != nil && c.Log != nil {
		c.Log.Warn("event not published in order", "topic", topic, "type", typ, "err", err)
	}
}
