package api

import "time"

// SetBodyBuffersIdle shortens how long s keeps the buffers of large bodies when none come,
// so that a test can see them let go.
func SetBodyBuffersIdle(s *Server, d time.Duration) {
	s.bodyBufs.mu.Lock()
	s.bodyBufs.idle = d
	s.bodyBufs.mu.Unlock()
}

// GatewayBodiesInUse reports the bytes of gateway bodies s counts against its budget now.
func GatewayBodiesInUse(s *Server) int64 { return s.bodies.inUse() }

// PasswordChecks reports how many password hashes s's logins checked.
func PasswordChecks(s *Server) uint64 { return s.passwordChecks.Load() }

// SetAuthClock makes a read its time from now, so that a test can let its caches expire.
// Set it before a serves requests.
func SetAuthClock(a *Authenticator, now func() time.Time) { a.now = now }

// NewUIStream is the UI message stream writer, for the AI SDK judge's tests of it.
var NewUIStream = newUIStream

// UIFinishReason is the AI SDK's finish reason of a stop reason.
var UIFinishReason = uiFinishReason

// RawChunk writes any value as a chunk, so that a test can show the judge refusing what
// the writer never sends.
func (u *uiStream) RawChunk(v any) { u.chunk(v) }

// Open sends the stream's status and headers.
func (u *uiStream) Open() { u.open() }

// UIUsage is usage as the stream's metadata carries it.
type UIUsage = uiUsage

// NewUIUsage is usage as the stream's metadata carries it.
var NewUIUsage = newUIUsage

// DocumentedOperations lists the operations the OpenAPI document has written docs for
// ("METHOD /path"), so that a test can find docs left for a route that is gone.
func DocumentedOperations() []string {
	ops := make([]string, 0, len(operationDocs))
	for op := range operationDocs {
		ops = append(ops, op)
	}
	return ops
}
