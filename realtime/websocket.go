package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Close codes of the events socket beyond the standard ones.
const (
	// CloseSlowConsumer: the client did not read fast enough and fell too far behind.
	CloseSlowConsumer websocket.StatusCode = 4008
	// CloseTooManyConnections: the credential holds too many streams already.
	CloseTooManyConnections websocket.StatusCode = 4029
)

// (CloseRevoked, 4001, is in revoke.go.)

// clientMessage is a frame from the client; Type says which fields matter.
type clientMessage struct {
	Type string `json:"type"`
	// ID is echoed in the ack or error, so a client can match replies to requests.
	ID     string   `json:"id,omitempty"`
	Topics []string `json:"topics,omitempty"`
	Since  uint64   `json:"since,omitempty"`
}

// Frames the server sends.
type ackFrame struct {
	Type   string   `json:"type"`
	ID     string   `json:"id,omitempty"`
	Action string   `json:"action"`
	Topics []string `json:"topics"`
	Result any      `json:"result,omitempty"`
}

type errorFrame struct {
	Type  string    `json:"type"`
	ID    string    `json:"id,omitempty"`
	Error errorBody `json:"error"`
}

type pongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	Time int64  `json:"time"`
}

// ServeWS upgrades to a WebSocket that speaks JSON both ways. The client subscribes and
// unsubscribes ({"type":"subscribe","topics":[…],"since":N}), pings, and sends the commands
// capabilities registered; the server sends {"type":"event","event":{…}}, acks, errors in the
// canonical shape, and pongs. Oversized frames, too many topics and slow reading each end in
// a clear error frame or close code.
func (s *Server) ServeWS(w http.ResponseWriter, r *http.Request, v Viewer) {
	sub, e := s.open(v)
	if e != nil {
		s.refuseWS(w, r, e)
		return
	}
	// Browsers send their page's origin; the socket is authenticated by key or token, not
	// by cookies, so any origin may use it.
	bw := &batchingWriter{ResponseWriter: w}
	conn, err := websocket.Accept(bw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.close(v, sub)
		return
	}
	// The socket is served by goroutines of its own, so that the HTTP server frees the
	// request, its buffers and its stack while the socket idles.
	raw := bw.conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.close(v, sub)
		defer conn.CloseNow()
		s.streamWS(conn, raw, sub, v)
	}()
}

// streamWS runs a socket: a reader for the client's frames, and this goroutine as the only
// writer. raw is the connection under the library, through which the writer sends a backlog
// in one write (nil: a write per message).
//
//nolint:contextcheck // the socket outlives the upgrade request; closing the socket ends it
func (s *Server) streamWS(conn *websocket.Conn, raw *batchConn, sub *Subscriber, v Viewer) {
	conn.SetReadLimit(s.limits.MaxMessageBytes)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The reader handles the client's frames; every reply goes through the subscriber's
	// queue so that the writer below is the connection's only writer and replies keep
	// their order with the events.
	readErr := make(chan error, 1)
	go func() { readErr <- s.readLoop(ctx, conn, sub, v) }()

	// A write that the client does not take within WriteTimeout closes the socket. One
	// timer per connection, re-armed around each write, costs nothing per event (a
	// context with a deadline per write would).
	stalled := time.AfterFunc(time.Hour, func() { conn.CloseNow() })
	stalled.Stop()
	defer stalled.Stop()

	sub.SetHeartbeat(s.limits.Heartbeat)
	for {
		it, err := sub.Next(ctx)
		if err != nil {
			switch {
			case errors.Is(err, ErrSlowConsumer):
				conn.Close(CloseSlowConsumer, "too slow to keep up; reconnect with since")
				return
			case errors.Is(err, ErrShuttingDown):
				conn.Close(websocket.StatusGoingAway, "server shutting down; reconnect")
				return
			}
			var revoked *RevokedError
			if errors.As(err, &revoked) {
				closeRevoked(conn, revoked.Reason)
				return
			}
			select {
			case <-readErr:
				// Reading stopped: the client closed, or sent a frame over the limit, which
				// the library has already answered with 1009.
				conn.Close(websocket.StatusNormalClosure, "")
			case <-time.After(time.Second):
				conn.Close(websocket.StatusGoingAway, "server closing")
			}
			return
		}
		stalled.Reset(s.limits.WriteTimeout)
		if it.Heartbeat {
			err = conn.Ping(ctx)
		} else {
			err = writeBatch(conn, raw, sub, it)
		}
		stalled.Stop()
		if err != nil {
			return
		}
	}
}

// writeBatch writes it and whatever else the subscriber has ready, one message each. While
// there is more, the connection is held, so that the messages leave in one write (of at most
// maxBatchBytes) when the queue is empty: a subscriber that fell behind catches up in a
// write per batch, not per event.
func writeBatch(conn *websocket.Conn, raw *batchConn, sub *Subscriber, it Item) error {
	buf := frameBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 64<<10 {
			// Reset before Put: the pool is shared with SSE streams, which append.
			*buf = (*buf)[:0]
			frameBuffers.Put(buf)
		}
	}()
	batched := 0
	for {
		var (
			next Item
			more bool
		)
		if raw != nil {
			if batched < maxBatchBytes {
				next, more = sub.TryNext()
			}
			raw.hold(more)
		}
		*buf = appendWSItem((*buf)[:0], it)
		batched += len(*buf)
		if err := conn.Write(context.Background(), websocket.MessageText, *buf); err != nil {
			if raw != nil {
				raw.hold(false)
			}
			return err
		}
		if !more {
			return nil
		}
		it = next
	}
}

// refuseWS turns away a socket that may not open. A browser cannot read the status of a
// failed handshake, so the socket is accepted, told why in an error frame, and closed with a
// code that says it: 4029 when the credential holds too many streams, going away when the
// node is stopping.
func (s *Server) refuseWS(w http.ResponseWriter, r *http.Request, e *streamError) {
	w.Header().Set("Retry-After", "10")
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // not a WebSocket handshake; Accept answered it
	}
	defer conn.CloseNow()
	code := websocket.StatusGoingAway
	if e.status == http.StatusTooManyRequests {
		code = CloseTooManyConnections
	}
	frame, _ := json.Marshal(errorFrame{Type: "error", Error: e.body})
	ctx, cancel := context.WithTimeout(r.Context(), s.limits.WriteTimeout)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return
	}
	reason := e.body.Message
	if len(reason) > 120 { // a close reason holds at most 123 bytes
		reason = reason[:120]
	}
	conn.Close(code, reason)
}

// frameBuffers hold frames while they are written; an idle connection holds none.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func appendWSItem(b []byte, it Item) []byte {
	switch {
	case it.Event != nil:
		b = append(b, `{"type":"event","event":`...)
		b = appendEventJSON(b, it.Event)
		b = append(b, '}')
	case it.Gap != nil:
		// A gap travels as an event of its own type, so that clients handle it where they
		// handle events.
		g, _ := json.Marshal(it.Gap)
		b = append(b, `{"type":"event","event":{"id":0,"type":"`+TypeStreamGap+`","data":`...)
		b = append(b, g...)
		b = append(b, "}}"...)
	case it.Control != nil:
		c, _ := json.Marshal(it.Control)
		b = append(b, c...)
	}
	return b
}

// readLoop reads the client's frames until the connection ends; it cancels the writer by
// returning.
func (s *Server) readLoop(ctx context.Context, conn *websocket.Conn, sub *Subscriber, v Viewer) error {
	defer func() { sub.fail(ErrClosed) }()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			sub.Send(errorFrame{Type: "error", Error: errorBody{Code: "validation_error", Message: "frames must be JSON text", Details: []fieldDetail{{Field: "frame", Message: "must be text"}}}})
			continue
		}
		var msg clientMessage
		if err := json.Unmarshal(data, &msg); err != nil || msg.Type == "" {
			sub.Send(errorFrame{Type: "error", Error: errorBody{Code: "validation_error", Message: "frame is not a JSON object with a type",
				Details: []fieldDetail{{Field: "type", Message: "is required"}}}})
			continue
		}
		s.handleMessage(ctx, sub, v, msg, data)
	}
}

func (s *Server) handleMessage(ctx context.Context, sub *Subscriber, v Viewer, msg clientMessage, raw []byte) {
	fail := func(e *streamError) {
		if e.body.Details == nil {
			e.body.Details = []fieldDetail{}
		}
		sub.Send(errorFrame{Type: "error", ID: msg.ID, Error: e.body})
	}
	switch msg.Type {
	case "subscribe":
		if e := s.checkTopics(ctx, v, msg.Topics, len(sub.Topics())); e != nil {
			fail(e)
			return
		}
		if err := sub.Add(msg.Topics, msg.Since, ackFrame{Type: "ack", ID: msg.ID, Action: "subscribe", Topics: msg.Topics}); err != nil {
			fail(errField(http.StatusUnprocessableEntity, "validation_error", "topics", err.Error()))
		}
	case "unsubscribe":
		sub.Remove(msg.Topics)
		sub.Send(ackFrame{Type: "ack", ID: msg.ID, Action: "unsubscribe", Topics: msg.Topics})
	case "ping":
		sub.Send(pongFrame{Type: "pong", ID: msg.ID, Time: time.Now().UnixMilli()})
	default:
		h := s.commands[msg.Type]
		if h == nil {
			fail(errField(http.StatusUnprocessableEntity, "validation_error", "type", "unknown message type "+strconv.Quote(msg.Type)))
			return
		}
		v.Send = sub.Send
		reply, err := h(ctx, v, raw)
		if err != nil {
			var se *streamError
			if errors.As(err, &se) {
				fail(se)
			} else {
				fail(&streamError{body: errorBody{Code: "validation_error", Message: err.Error()}})
			}
			return
		}
		sub.Send(ackFrame{Type: "ack", ID: msg.ID, Action: msg.Type, Topics: []string{}, Result: reply})
		if a, ok := reply.(AfterAck); ok {
			a.Start()
		}
	}
}

// closeRevoked closes a socket whose credential was revoked with CloseRevoked and the reason.
// The close handshake waits for the client for a second at most: a revoked client gets no
// more time on the node than that.
func closeRevoked(conn *websocket.Conn, reason string) {
	stop := time.AfterFunc(time.Second, func() { _ = conn.CloseNow() })
	defer stop.Stop()
	_ = conn.Close(CloseRevoked, reason)
}
