package s2s

import "errors"

var (
	// ErrDial is a Realtime server that could not be reached or refused the session (its
	// HTTP status, when it answered, is in the message).
	ErrDial = errors.New("s2s: the Realtime server cannot be reached")
	// ErrProtocol is a message the server sent that is not a Realtime event.
	ErrProtocol = errors.New("s2s: not a Realtime event")
	// ErrClosed is a session whose socket has closed.
	ErrClosed = errors.New("s2s: the Realtime session is closed")
)

// ServerError is an "error" event of the server: a client event it refused, or a failure
// of its own.
type ServerError struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	EventID string `json:"event_id"`
}

func (e *ServerError) Error() string {
	msg := "s2s: the Realtime server reported " + e.Type
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}
