package call

import (
	"context"
	"log/slog"
	"time"
)

// The deadlines of a call's teardown, the same whatever carries it.
const (
	// HandlerGrace is how long an ended call waits for what talks on it (an agent, a
	// built-in destination) to return by itself: it sees its stream end and writes its
	// report with the call's reason. Only then is its context cancelled, which it would
	// take for a shutdown.
	HandlerGrace = 2 * time.Second
	// HandlerStop is how long it then waits for a handler whose context was cancelled,
	// before the call's record is made final without it.
	HandlerStop = 5 * time.Second
	// ByeTimeout bounds telling the far end that the call is over (a SIP BYE's answer).
	ByeTimeout = 5 * time.Second
)

// AwaitHandler is the one rule by which an ended call lets go of its handler: it waits
// HandlerGrace for done, then cancels the handler with stop and waits HandlerStop more,
// logging a handler that still runs. stop is called in every case.
func AwaitHandler(done <-chan struct{}, stop context.CancelFunc, log *slog.Logger) {
	defer stop()
	grace := time.NewTimer(HandlerGrace)
	defer grace.Stop()
	select {
	case <-done:
		return
	case <-grace.C:
	}
	stop()
	t := time.NewTimer(HandlerStop)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		log.Warn("call handler still running after the call ended")
	}
}
