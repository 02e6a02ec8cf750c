package sip

import (
	"context"
	"log/slog"
	"strings"

	"github.com/switchboard-go/switchboard/media"
)

// BuiltinLine is what a built-in destination needs of a call: its stream, its logger and
// its events. *Call satisfies it, and so do the calls of other transports (WebRTC, media
// streams), which answer with the same destinations.
type BuiltinLine interface {
	Stream() media.Stream
	Log() *slog.Logger
	Publish(typ string, data any)
}

// Builtin is the built-in destination of that name (any case: "echo", "tone"), or nil. It
// returns when the line's stream ends or ctx does.
func Builtin(name string) func(ctx context.Context, c BuiltinLine) {
	switch strings.ToLower(name) {
	case "echo":
		return serveEcho
	case "tone":
		return serveTone
	}
	return nil
}
