package api

import "time"

// SetBodyBuffersIdle shortens how long s keeps the buffers of large bodies when none come,
// so that a test can see them let go.
func SetBodyBuffersIdle(s *Server, d time.Duration) {
	s.bodyBufs.mu.Lock()
	s.bodyBufs.idle = d
	s.bodyBufs.mu.Unlock()
}
