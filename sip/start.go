package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Serving is a Server started by Start: it serves until Stop.
type Serving struct {
	addr net.Addr
	stop context.CancelFunc
	done chan struct{}
}

// Start listens on addr (UDP and TCP, one port: Listen) and, when Config.TLS is set, on
// tlsAddr, and serves there (Serve) on a goroutine of its own until Stop. It returns once
// SIP serves on every listener, so that a node says it serves only when it does. ctx bounds
// the listening only: the serving outlives it, for a node drains its calls after the signal
// that ended ctx.
func (s *Server) Start(ctx context.Context, addr, tlsAddr string) (*Serving, error) {
	pc, l, err := Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	var tl net.Listener
	if s.cfg.TLS != nil {
		var lc net.ListenConfig
		if tl, err = lc.Listen(ctx, "tcp", tlsAddr); err != nil {
			_, _ = pc.Close(), l.Close()
			return nil, fmt.Errorf("sip: listen tls %s: %w", tlsAddr, err)
		}
	}
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r := &Serving{addr: pc.LocalAddr(), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := s.Serve(serveCtx, pc, l, tl); err != nil {
			s.log.Error("sip stopped", "err", err)
		}
	}()
	select {
	case <-s.Ready():
		return r, nil
	case <-r.done:
		stop()
		return nil, errors.New("sip: stopped before it served")
	}
}

// Addr is the address SIP serves on over UDP (and TCP).
func (r *Serving) Addr() net.Addr { return r.addr }

// Stop stops serving: the active calls end (each gets a BYE), and it returns once they
// have. It may be called again.
func (r *Serving) Stop() {
	r.stop()
	<-r.done
}
