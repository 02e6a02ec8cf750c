package sip

import (
	"sync"
	"time"
)

// logLimit bounds how often one kind of line is logged: a flood of bad packets from the
// internet must not become a flood of log lines (and of disk and CPU) on the node. Each
// window lets a few lines through; the first line of the next window says how many were
// left out.
type logLimit struct {
	window time.Duration
	burst  int

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func newLogLimit(burst int, window time.Duration) *logLimit {
	return &logLimit{window: window, burst: burst}
}

// allow says whether a line may be logged now, and how many were left out before it.
func (l *logLimit) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// truncate shortens what a peer sent to what a log line may hold; slog quotes and escapes
// it, so control characters cannot forge log lines.
func truncate(b []byte, max int) string {
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
