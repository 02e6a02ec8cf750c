package realtime

import (
	"bufio"
	"encoding/json"
	"errors"
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
	defer s.close(v, sub)
	if err := sub.Add(topics, since, nil); err != nil {
		writeHTTPError(w, errField(http.StatusUnprocessableEntity, "validation_error", "topics", err.Error()))
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 4096)
	// The retry hint tells EventSource how soon to reconnect.
	_, _ = bw.WriteString("retry: 2000\n\n")
	if err := s.flushSSE(rc, bw); err != nil {
		return
	}
	beat := time.NewTicker(s.limits.Heartbeat)
	defer beat.Stop()
	for {
		it, err := sub.Next(r.Context(), beat.C)
		if err != nil {
			if errors.Is(err, ErrSlowConsumer) {
				_, _ = bw.WriteString("event: error\ndata: {\"code\":\"slow_consumer\",\"message\":\"too slow to keep up; reconnect with Last-Event-ID\"}\n\n")
				_ = s.flushSSE(rc, bw)
			}
			return
		}
		writeSSEItem(bw, it)
		if sub.Buffered() && bw.Buffered() < 3072 {
			continue // gather what is ready into one write
		}
		if err := s.flushSSE(rc, bw); err != nil {
			return
		}
	}
}

func (s *Server) flushSSE(rc *http.ResponseController, bw *bufio.Writer) error {
	_ = rc.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
	if err := bw.Flush(); err != nil {
		return err
	}
	return rc.Flush()
}

func writeSSEItem(bw *bufio.Writer, it Item) {
	switch {
	case it.Event != nil:
		var num [20]byte
		bw.WriteString("id: ")
		bw.Write(strconv.AppendUint(num[:0], it.Event.ID, 10))
		bw.WriteString("\nevent: ")
		bw.WriteString(it.Event.Type)
		bw.WriteString("\ndata: ")
		writeEventJSON(bw, it.Event)
		bw.WriteString("\n\n")
	case it.Gap != nil:
		b, _ := json.Marshal(it.Gap)
		bw.WriteString("event: " + TypeStreamGap + "\ndata: ")
		bw.Write(b)
		bw.WriteString("\n\n")
	case it.Heartbeat:
		bw.WriteString(": heartbeat\n\n")
	}
}

// writeEventJSON writes an event as JSON without reflection: it is on the path of every
// delivery. Data is already JSON; the other fields need no escaping beyond what
// strconv.Quote-like escaping gives, done by appendJSONString.
func writeEventJSON(bw *bufio.Writer, ev *Event) {
	var buf [96]byte
	b := buf[:0]
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, ev.ID, 10)
	bw.Write(b)
	bw.WriteString(`,"type":`)
	writeJSONString(bw, ev.Type)
	bw.WriteString(`,"tenant_id":`)
	writeJSONString(bw, ev.TenantID)
	bw.WriteString(`,"topic":`)
	writeJSONString(bw, ev.Topic)
	bw.WriteString(`,"time":"`)
	b = ev.Time.AppendFormat(buf[:0], time.RFC3339Nano)
	bw.Write(b)
	bw.WriteString(`","data":`)
	if len(ev.Data) == 0 {
		bw.WriteString("null")
	} else {
		bw.Write(ev.Data)
	}
	bw.WriteByte('}')
}

func writeJSONString(bw *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b, _ := json.Marshal(s)
			bw.Write(b)
			return
		}
	}
	bw.WriteByte('"')
	bw.WriteString(s)
	bw.WriteByte('"')
}
