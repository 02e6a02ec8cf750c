package sip

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// quietLog is the logger sipgo's transport and transaction layers get. They log what the
// network sends them: every unparsable datagram at ERROR with all its bytes, every
// request they cannot key a transaction for. Anyone can send those, as fast as they like.
// Through quietLog, each kind of line (by message) is rate-limited, long values are cut,
// and unparsable input is a warning: it is the far end's fault, not the node's.
func quietLog(l *slog.Logger) *slog.Logger {
	return slog.New(&quietHandler{h: l.Handler(), limits: &sync.Map{}})
}

type quietHandler struct {
	h      slog.Handler
	limits *sync.Map // message → *logLimit
}

// quietValueMax is how much of a value (a message's bytes, an error quoting them) a line
// keeps.
const quietValueMax = 200

func (q *quietHandler) Enabled(ctx context.Context, l slog.Level) bool { return q.h.Enabled(ctx, l) }

func (q *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	if level >= slog.LevelWarn {
		v, ok := q.limits.Load(r.Message)
		if !ok {
			v, _ = q.limits.LoadOrStore(r.Message, newLogLimit(10, 10*time.Second))
		}
		allowed, left := v.(*logLimit).allow(r.Time)
		if !allowed {
			return nil
		}
		if left > 0 {
			r.AddAttrs(slog.Int("suppressed", left))
		}
		if r.Message == "failed to parse" || r.Message == "Read error" {
			level = slog.LevelWarn
		}
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(cut(a))
		return true
	})
	return q.h.Handle(ctx, out)
}

// cut shortens a long string or error value.
func cut(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	var s string
	switch v.Kind() {
	case slog.KindString:
		s = v.String()
	case slog.KindAny:
		err, ok := v.Any().(error)
		if !ok {
			return a
		}
		s = err.Error()
	default:
		return a
	}
	if len(s) <= quietValueMax {
		return a
	}
	return slog.String(a.Key, truncate([]byte(s), quietValueMax))
}

func (q *quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &quietHandler{h: q.h.WithAttrs(as), limits: q.limits}
}

func (q *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{h: q.h.WithGroup(name), limits: q.limits}
}
