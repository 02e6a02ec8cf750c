package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresRelay joins the hubs of nodes that share one PostgreSQL. A node's events are
// written to realtime_events under a cluster-wide advisory lock, which makes the order of
// their sequence numbers the order of their commits, and announced with NOTIFY in the same
// transaction; every node (the publisher too) dispatches what it hears, in that order, so
// all nodes see the same events with the same IDs, each exactly once. A batch whose events
// do not fit in a NOTIFY payload is announced by reference and read back from the table; a
// node whose listening connection dropped reads back what it missed.
type PostgresRelay struct {
	url   string
	hub   *Hub
	log   *slog.Logger
	queue chan *Event

	dropped   atomic.Uint64
	lastDrops atomic.Int64

	ready     chan struct{}
	readyOnce sync.Once
}

const (
	relayChannel = "switchboard_events"
	// relayLock is the advisory lock that orders publishing across nodes.
	relayLock = 0x5357424452454c59 // "SWBDRELY"
	// maxNotifyPayload stays under PostgreSQL's 8000-byte NOTIFY limit.
	maxNotifyPayload = 7900
	// relayRetention is how long relayed events stay readable for catching up.
	relayRetention = 10 * time.Minute
)

// NewPostgresRelay returns a relay for hub over the database at url (the realtime_events
// table comes from the store's migrations). Run starts it.
func NewPostgresRelay(url string, hub *Hub, log *slog.Logger) *PostgresRelay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &PostgresRelay{url: url, hub: hub, log: log, queue: make(chan *Event, 16384), ready: make(chan struct{})}
	hub.SetRelay(r)
	return r
}

// Publish queues an event for the cluster. It never blocks: when the queue is full (the
// database is away for long), the event is dropped and counted.
func (r *PostgresRelay) Publish(ev *Event) {
	select {
	case r.queue <- ev:
	default:
		r.dropped.Add(1)
		r.hub.dropped.Add(1)
		if ev.committed != nil {
			close(ev.committed) // nobody should wait for an event that will not come
		}
		if now := time.Now().Unix(); r.lastDrops.Swap(now) != now {
			r.log.Warn("realtime relay queue full: events dropped", "dropped_total", r.dropped.Load())
		}
	}
}

// Ready is closed once the relay listens, so that a node starts serving streams only when
// it will hear the other nodes' events.
func (r *PostgresRelay) Ready() <-chan struct{} { return r.ready }

// WaitListening returns once the relay listens, or after wait, when it logs that the node
// serves without hearing the other nodes yet (the relay goes on trying); it returns
// ctx.Err() when ctx ends first.
func (r *PostgresRelay) WaitListening(ctx context.Context, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.ready:
	case <-t.C:
		r.log.Warn("the event relay is not listening yet; serving anyway")
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Run writes and listens until ctx ends, reconnecting after failures.
func (r *PostgresRelay) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { r.runWriter(ctx); close(done) }()
	r.runListener(ctx)
	<-done
}

// relayed is the wire form of a NOTIFY payload: the events, or the range to read.
type relayed struct {
	Events []*Event  `json:"e,omitempty"`
	Ref    [2]uint64 `json:"r,omitempty"`
}

func (r *PostgresRelay) runWriter(ctx context.Context) {
	r.reconnecting(ctx, "writer", r.write)
}

// reconnecting runs one of the relay's connections (run returns when it is lost) until ctx
// ends, waiting longer after each failure in a row, from 100 ms up to 5 s; a connection that
// held for a while starts the wait afresh.
func (r *PostgresRelay) reconnecting(ctx context.Context, role string, run func(context.Context) error) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		r.log.Warn("realtime relay "+role+" lost its database; reconnecting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (r *PostgresRelay) write(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	batch := make([]*Event, 0, 256)
	for {
		batch = batch[:0]
		select {
		case ev := <-r.queue:
			batch = append(batch, ev)
		case <-prune.C:
			if _, err := conn.Exec(ctx, "DELETE FROM realtime_events WHERE time < $1", time.Now().Add(-relayRetention)); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
	gather:
		for len(batch) < cap(batch) {
			select {
			case ev := <-r.queue:
				batch = append(batch, ev)
			default:
				break gather
			}
		}
		if err := r.commit(ctx, conn, batch); err != nil {
			// The batch was not committed: it goes back to the head of the queue for the
			// next connection.
			return r.retryLater(batch, err)
		}
	}
}

// retryLater puts an uncommitted batch back at the head of the queue as far as room allows.
func (r *PostgresRelay) retryLater(batch []*Event, err error) error {
	rest := make([]*Event, 0, len(r.queue)+len(batch))
	rest = append(rest, batch...)
	for {
		select {
		case ev := <-r.queue:
			rest = append(rest, ev)
			continue
		default:
		}
		break
	}
	for _, ev := range rest {
		r.Publish(ev)
	}
	return err
}

// commit writes a batch and announces it, in one transaction under the ordering lock.
func (r *PostgresRelay) commit(ctx context.Context, conn *pgx.Conn, batch []*Event) error {
	tenants := make([]string, len(batch))
	topics := make([]string, len(batch))
	types := make([]string, len(batch))
	datas := make([]string, len(batch))
	times := make([]time.Time, len(batch))
	for i, ev := range batch {
		tenants[i], topics[i], types[i], datas[i], times[i] = ev.TenantID, ev.Topic, ev.Type, string(ev.Data), ev.Time
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(relayLock)); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `INSERT INTO realtime_events (tenant_id, topic, type, data, time)
		SELECT t, p, y, d, m FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS u(t, p, y, d, m, n)
		ORDER BY n RETURNING seq`, tenants, topics, types, datas, times)
	if err != nil {
		return err
	}
	i := 0
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return err
		}
		if i < len(batch) {
			batch[i].ID = uint64(seq)
		}
		i++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if i != len(batch) {
		return fmt.Errorf("realtime relay: %d sequence numbers for %d events", i, len(batch))
	}
	payload, _ := json.Marshal(relayed{Events: batch})
	if len(payload) > maxNotifyPayload {
		payload, _ = json.Marshal(relayed{Ref: [2]uint64{batch[0].ID, batch[len(batch)-1].ID}})
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", relayChannel, string(payload)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for _, ev := range batch {
		if ev.committed != nil {
			close(ev.committed)
		}
	}
	return nil
}

func (r *PostgresRelay) runListener(ctx context.Context) {
	first := true
	r.reconnecting(ctx, "listener", func(ctx context.Context) error {
		err := r.listen(ctx, first)
		first = false
		return err
	})
}

// listen holds one listening connection: it catches up on what was committed while it was
// away, then dispatches what it hears.
func (r *PostgresRelay) listen(ctx context.Context, first bool) error {
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+relayChannel); err != nil {
		return err
	}
	last := r.hub.LastID()
	if first && last == 0 {
		// A node that just started begins with what is published from now on.
		var max *int64
		if err := conn.QueryRow(ctx, "SELECT max(seq) FROM realtime_events").Scan(&max); err != nil {
			return err
		}
		if max != nil {
			r.hub.mu.Lock()
			if uint64(*max) > r.hub.lastID {
				r.hub.lastID = uint64(*max)
			}
			r.hub.mu.Unlock()
		}
	} else if err := r.catchUp(ctx, conn, last); err != nil {
		return err
	}
	r.readyOnce.Do(func() { close(r.ready) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var msg relayed
		if err := json.Unmarshal([]byte(n.Payload), &msg); err != nil {
			r.log.Warn("realtime relay: unreadable notification", "err", err)
			continue
		}
		if msg.Ref[1] != 0 {
			if err := r.fetch(ctx, conn, msg.Ref[0]-1, msg.Ref[1]); err != nil {
				return err
			}
			continue
		}
		for _, ev := range msg.Events {
			r.hub.Dispatch(ev)
		}
	}
}

// catchUp dispatches what was committed after last; if the table no longer holds all of it,
// subscribers are told that they may have missed events.
func (r *PostgresRelay) catchUp(ctx context.Context, conn *pgx.Conn, last uint64) error {
	// When the table is empty, the sequence still says whether events were numbered (and
	// pruned) after last.
	var oldest, issued *int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT min(seq) FROM realtime_events),
		pg_sequence_last_value(pg_get_serial_sequence('realtime_events', 'seq'))`).Scan(&oldest, &issued); err != nil {
		return err
	}
	pruned := oldest != nil && uint64(*oldest) > last+1 || oldest == nil && issued != nil && uint64(*issued) > last
	if pruned && last > 0 {
		r.hub.GapAll("relay_reconnected")
	}
	return r.fetch(ctx, conn, last, 0)
}

// fetch dispatches the stored events with after < seq <= upTo (no upper bound when upTo is 0).
func (r *PostgresRelay) fetch(ctx context.Context, conn *pgx.Conn, after, upTo uint64) error {
	q := "SELECT seq, tenant_id, topic, type, data, time FROM realtime_events WHERE seq > $1"
	args := []any{int64(after)}
	if upTo > 0 {
		q += " AND seq <= $2"
		args = append(args, int64(upTo))
	}
	rows, err := conn.Query(ctx, q+" ORDER BY seq", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq  int64
			data string
			ev   Event
		)
		if err := rows.Scan(&seq, &ev.TenantID, &ev.Topic, &ev.Type, &data, &ev.Time); err != nil {
			return err
		}
		ev.ID, ev.Data, ev.Time = uint64(seq), json.RawMessage(data), ev.Time.UTC()
		r.hub.Dispatch(&ev)
	}
	if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
