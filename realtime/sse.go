package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ServeSSE streams events as text/event-stream: "id:" and "event:" on every event, the
// whole event as JSON in "data:", stream.gap events when the client fell behind, and a
// comment every heartbeat so that proxies keep the connection. ?topics= is a comma-separated
// list (default: tenant); a reconnecting client resumes with Last-Event-ID (or ?since=).
func (s *Server) ServeSSE(w http.ResponseWriter, r *http.Request, v Viewer) {
	topics := splitTopics(r.URL.Query().Get("topics"))
	if len(topics) == 0 {
		topics = []string{TenantTopic}
	}
	var since uint64
	for _, raw := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("since"), r.URL.Query().Get("last_event_id")} {
		if raw == "" {
			continue
		}
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			writeHTTPError(w, errField(http.StatusUnprocessableEntity, "validation_error", "Last-Event-ID", "must be an event ID (an unsigned integer)"))
			return
		}
		since = n
		break
	}
	if e := s.checkTopics(r.Context(), v, topics, 0); e != nil {
		writeHTTPError(w, e)
		return
	}
	sub, e := s.open(v)
	if e != nil {
		w.Header().Set("Retry-After", "10")
		writeHTTPError(w, e)
		return
	}
	if err := sub.Add(topics, since, nil); err != nil {
		s.close(v, sub)
		writeHTTPError(w, errField(http.StatusUnprocessableEntity, "validation_error", "topics", err.Error()))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream

	// A stream lives long and is mostly idle, so it leaves the HTTP server's request
	// goroutine: the connection is taken over and served by a goroutine of its own that
	// holds nothing but the socket and the subscriber, and the server frees the request,
	// its buffers and its stack. (A writer that cannot be taken over, such as HTTP/2's, is
	// streamed in the handler.)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.Set("Connection", "keep-alive")
		w.WriteHeader(http.StatusOK)
		defer s.close(v, sub)
		s.streamSSE(r.Context(), sub, &responseSink{w: w, rc: http.NewResponseController(w), timeout: s.limits.WriteTimeout})
		return
	}
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 200 OK\r\n"...)
	for k, vs := range h {
		for _, val := range vs {
			head = append(head, k...)
			head = append(head, ": "...)
			head = append(head, val...)
			head = append(head, "\r\n"...)
		}
	}
	// Without a length or chunking, the body is the rest of the connection.
	head = append(head, "Connection: close\r\n\r\n"...)
	_ = conn.SetDeadline(time.Time{})
	s.wg.Add(1)
	go func() { //nolint:contextcheck // the stream outlives the hijacked request; closing the connection ends it
		defer s.wg.Done()
		defer conn.Close()
		defer s.close(v, sub)
		sink := &connSink{conn: conn, timeout: s.limits.WriteTimeout}
		if sink.write(head) != nil {
			return
		}
		s.streamSSE(context.Background(), sub, sink)
	}()
}

// sseSink is where a stream's bytes go: a taken-over connection, or a ResponseWriter.
type sseSink interface {
	write(b []byte) error
}

type connSink struct {
	conn    net.Conn
	timeout time.Duration
}

// write writes b, cutting off a client that does not take it in time.
func (c *connSink) write(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.conn.Write(b)
	return err
}

type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (r *responseSink) write(b []byte) error {
	_ = r.rc.SetWriteDeadline(time.Now().Add(r.timeout))
	if _, err := r.w.Write(b); err != nil {
		return err
	}
	return r.rc.Flush()
}

// streamSSE writes the subscriber's items until it ends.
func (s *Server) streamSSE(ctx context.Context, sub *Subscriber, sink sseSink) {
	// The retry hint tells EventSource how soon to reconnect.
	if err := sink.write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	sub.SetHeartbeat(s.limits.Heartbeat)
	var buf *[]byte
	for {
		it, err := sub.Next(ctx)
		if err != nil {
			var revoked *RevokedError
			switch {
			case errors.Is(err, ErrSlowConsumer):
				_ = sink.write([]byte("event: error\ndata: {\"code\":\"slow_consumer\",\"message\":\"too slow to keep up; reconnect with Last-Event-ID\"}\n\n"))
			case errors.As(err, &revoked):
				// The client learns why before the stream ends, and that reconnecting with
				// the same credential is pointless.
				msg, _ := json.Marshal(errorBody{Code: "credential_revoked", Message: revoked.Reason + "; do not reconnect with this credential", Details: []fieldDetail{}})
				_ = sink.write(append(append([]byte("event: error\ndata: "), msg...), "\n\n"...))
			}
			return
		}
		if buf == nil {
			buf = frameBuffers.Get().(*[]byte)
			*buf = (*buf)[:0]
		}
		*buf = appendSSEItem(*buf, it)
		// Gather what else is ready into the same write: a stream that fell behind catches
		// up in a write (and a flush) per batch, not per event.
		for len(*buf) < maxBatchBytes {
			more, ok := sub.TryNext()
			if !ok {
				break
			}
			*buf = appendSSEItem(*buf, more)
		}
		err = sink.write(*buf)
		// An idle stream holds no buffer.
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			frameBuffers.Put(buf)
		}
		buf = nil
		if err != nil {
			return
		}
	}
}

func appendSSEItem(b []byte, it Item) []byte {
	switch {
	case it.Event != nil:
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, it.Event.ID, 10)
		b = append(b, "\nevent: "...)
		b = append(b, it.Event.Type...)
		b = append(b, "\ndata: "...)
		b = appendEventJSON(b, it.Event)
		b = append(b, "\n\n"...)
	case it.Gap != nil:
		g, _ := json.Marshal(it.Gap)
		b = append(b, "event: "+TypeStreamGap+"\ndata: "...)
		b = append(b, g...)
		b = append(b, "\n\n"...)
	case it.Heartbeat:
		b = append(b, ": heartbeat\n\n"...)
	}
	return b
}

// appendEventJSON writes an event as JSON without reflection: it is on the path of every
// delivery. Data is JSON already.
func appendEventJSON(b []byte, ev *Event) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, ev.ID, 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, ev.Type)
	b = append(b, `,"tenant_id":`...)
	b = appendJSONString(b, ev.TenantID)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, ev.Topic)
	b = append(b, `,"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	if len(ev.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, ev.Data...)
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
