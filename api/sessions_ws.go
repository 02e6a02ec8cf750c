package api

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/session"
)

// HandleSessionCommands lets clients of the events socket (/api/v1/ws) talk to sessions:
//
//	{"type":"session.send","id":"1","session_id":"ses_…","content":"Hi"}
//	  → {"type":"ack","id":"1","action":"session.send","result":{"session_id","message_id","user_message"}}
//	  → {"type":"session.event","id":"1","session_id":"ses_…","event":{…}} for each event of the answer,
//	    as the SSE answer of POST /api/v1/sessions/{id}/messages carries them, ending with "finish"
//
// The body is that of POST /api/v1/sessions/{id}/messages (content or parts, metadata) and
// is refused as it is (an error frame naming the field; 404 for another tenant's session, 409
// while the last message is still being answered). The command needs the write scope. The
// socket may go on reading and sending while the answer streams; a socket that closes stops
// receiving it, and the answer is stored all the same.
func (s *Server) HandleSessionCommands(streams *realtime.Server) {
	streams.Handle("session.send", s.sessionSendCommand)
}

// sessionSendReply is the ack's result; Start streams the answer once the ack is queued.
type sessionSendReply struct {
	SessionID   string `json:"session_id"`
	MessageID   string `json:"message_id"`
	UserMessage any    `json:"user_message"`
	start       func()
}

func (r *sessionSendReply) Start() { r.start() }

// sessionEventFrame carries one event of an answer on the events socket.
type sessionEventFrame struct {
	Type      string       `json:"type"`
	ID        string       `json:"id,omitempty"`
	SessionID string       `json:"session_id"`
	Event     SessionEvent `json:"event"`
}

func (s *Server) sessionSendCommand(ctx context.Context, v realtime.Viewer, msg json.RawMessage) (any, error) {
	p, err := s.commandPrincipal(ctx, v)
	if err != nil {
		return nil, s.commandError(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(msg, &fields); err != nil {
		return nil, s.commandError(errValidation("body", "must be a JSON object"))
	}
	var frameID, sessionID string
	_ = json.Unmarshal(fields["id"], &frameID)
	if err := json.Unmarshal(fields["session_id"], &sessionID); err != nil || strings.TrimSpace(sessionID) == "" {
		return nil, s.commandError(errValidation("session_id", "is required: the session to send the message to"))
	}
	delete(fields, "type")
	delete(fields, "id")
	delete(fields, "session_id")
	body, _ := json.Marshal(fields)
	in, err := sessionInput(body)
	if err != nil {
		return nil, s.commandError(err)
	}
	sess, err := s.session(ctx, p, sessionID)
	if err != nil {
		return nil, s.commandError(err)
	}
	pending, err := s.beginAnswer(ctx, p.TenantID, sess, in)
	if err != nil {
		return nil, s.commandError(sessionError(err))
	}
	send := v.Send
	reply := &sessionSendReply{SessionID: sess.ID, MessageID: pending.MessageID(), UserMessage: renderMessage(shapeCanonical, pending.User())}
	reply.start = func() {
		go func() {
			_, _ = pending.Stream(ctx, session.SinkFunc(func(ev *session.Event) error {
				if send != nil {
					send(sessionEventFrame{Type: "session.event", ID: frameID, SessionID: sess.ID, Event: renderEvent(shapeCanonical, ev)})
				}
				return nil
			}))
		}()
	}
	return reply, nil
}
