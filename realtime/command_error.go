package realtime

// CommandFieldError names a field of a command the node refused, and why.
type CommandFieldError struct {
	Field   string
	Message string
}

// CommandError is a command's refusal in the canonical error shape: a CommandHandler that
// returns it has the client get {"type":"error","id":…,"error":{"code","message","details"}}
// with these code and details, as an HTTP client of the same operation would (the WebRTC
// signalling commands refuse an offer exactly as POST /api/v1/webrtc/sessions does). status
// is the HTTP status of the same refusal.
func CommandError(status int, code, message string, details ...CommandFieldError) error {
	e := &streamError{status: status, body: errorBody{Code: code, Message: message, Details: make([]fieldDetail, 0, len(details))}}
	for _, d := range details {
		e.body.Details = append(e.body.Details, fieldDetail(d))
	}
	return e
}
