package realtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
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
		w.Header().Set("Retry-After", "10")
		writeHTTPError(w, e)
		return
	}
	defer s.close(v, sub)
	// Browsers send their page's origin; the socket is authenticated by key or token, not
	// by cookies, so any origin may use it.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(s.limits.MaxMessageBytes)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	// The reader handles the client's frames; every reply goes through the subscriber's
	// queue so that the writer below is the connection's only writer and replies keep
	// their order with the events.
	readErr := make(chan error, 1)
	go func() { readErr <- s.readLoop(ctx, conn, sub, v) }()

	beat := time.NewTicker(s.limits.Heartbeat)
	defer beat.Stop()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	for {
		it, err := sub.Next(ctx, beat.C)
		if err != nil {
			switch {
			case errors.Is(err, ErrSlowConsumer):
				conn.Close(CloseSlowConsumer, "too slow to keep up; reconnect with since")
				return
			case errors.Is(err, ErrShuttingDown):
				conn.Close(websocket.StatusGoingAway, "server shutting down; reconnect")
				return
			}
			select {
			case err := <-readErr:
				s.closeForReadError(conn, err)
			case <-time.After(time.Second):
				conn.Close(websocket.StatusGoingAway, "server closing")
			}
			return
		}
		if it.Heartbeat {
			pctx, pcancel := context.WithTimeout(ctx, s.limits.WriteTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return
			}
			continue
		}
		buf.Reset()
		writeWSItem(bw, it)
		_ = bw.Flush()
		wctx, wcancel := context.WithTimeout(ctx, s.limits.WriteTimeout)
		err = conn.Write(wctx, websocket.MessageText, buf.Bytes())
		wcancel()
		if err != nil {
			return
		}
	}
}

func writeWSItem(bw *bufio.Writer, it Item) {
	switch {
	case it.Event != nil:
		bw.WriteString(`{"type":"event","event":`)
		writeEventJSON(bw, it.Event)
		bw.WriteByte('}')
	case it.Gap != nil:
		// A gap travels as an event of its own type, so that clients handle it where they
		// handle events.
		b, _ := json.Marshal(it.Gap)
		bw.WriteString(`{"type":"event","event":{"id":0,"type":"` + TypeStreamGap + `","data":`)
		bw.Write(b)
		bw.WriteString("}}")
	case it.Control != nil:
		b, _ := json.Marshal(it.Control)
		bw.Write(b)
	}
}

// closeForReadError closes the socket with the code that says why reading stopped.
func (s *Server) closeForReadError(conn *websocket.Conn, err error) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		conn.Close(websocket.StatusNormalClosure, "")
	case errors.Is(err, errMessageTooBig):
		conn.Close(websocket.StatusMessageTooBig, "frame larger than "+strconv.FormatInt(s.limits.MaxMessageBytes, 10)+" bytes")
	default:
		conn.Close(websocket.StatusNormalClosure, "")
	}
}

var errMessageTooBig = errors.New("realtime: frame too big")

// readLoop reads the client's frames until the connection ends; it cancels the writer by
// returning.
func (s *Server) readLoop(ctx context.Context, conn *websocket.Conn, sub *Subscriber, v Viewer) error {
	defer func() { sub.fail(ErrClosed) }()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				return errMessageTooBig
			}
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
	}
}
