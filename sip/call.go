package sip

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"

	"github.com/switchboard-go/switchboard/media"
)

// call is one answered inbound call. Its owner is the goroutine that runs run: the media
// goroutines report to it on events and it alone decides when the call ends.
type call struct {
	log    *slog.Logger
	dlg    *sipgo.DialogServerSession
	conn   *net.UDPConn
	echo   *echo
	events chan media.Event

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

func newCall(log *slog.Logger, dlg *sipgo.DialogServerSession, conn *net.UDPConn, o offer) *call {
	events := make(chan media.Event, 8)
	return &call{log: log, dlg: dlg, conn: conn, events: events, echo: newEcho(log, conn, o, events)}
}

// run starts the media and blocks until the call ends: a BYE from the caller (the dialog's
// context ends), or server shutdown, on which we send the BYE.
func (c *call) run(ctx context.Context) {
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.echo.readLoop() }()
	go func() { defer c.wg.Done(); c.echo.writeLoop(mctx) }()
	defer c.close()

	c.log.Info("call answered")
	for {
		select {
		case <-c.dlg.Context().Done():
			c.log.Info("call ended", "reason", "caller-hangup")
			return
		case <-ctx.Done():
			c.log.Info("call ended", "reason", "shutdown")
			bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := c.dlg.Bye(bctx); err != nil {
				c.log.Warn("bye failed", "error", err)
			}
			bcancel()
			return
		case ev := <-c.events:
			if ev.Kind == media.EventDTMF {
				c.log.Info("dtmf", "digit", string(ev.Digit), "duration", ev.Duration)
			}
		}
	}
}

// close stops the media goroutines and closes the socket; it is idempotent.
func (c *call) close() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	if c.cancel != nil {
		c.cancel()
	}
	_ = c.conn.Close()
	c.wg.Wait()
	_ = c.dlg.Close()
	c.log.Info("call media closed", "rx_packets", c.echo.rx.Load(), "tx_packets", c.echo.tx.Load(), "dropped_packets", c.echo.foreign.Load())
}
