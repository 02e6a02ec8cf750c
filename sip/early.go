package sip

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
)

// EarlyMedia is a Handler that plays audio before the call is answered (an announcement,
// a custom ringback): the caller hears it through a 183 Session Progress with our SDP.
// An INVITE without an offer (late offer) has no answer to send early: its call is
// answered at once, without ServeEarly. The call's record stays ringing meanwhile.
type EarlyMedia interface {
	Handler
	// ServeEarly plays over c.Stream() before answer; it returns true to answer the call
	// (then ServeCall runs on the same stream), false to refuse it (480). Its context ends,
	// and the stream with it, when the caller cancels or the call otherwise ends first.
	ServeEarly(ctx context.Context, c *Call) (answer bool)
}

// earlyEnd is how a handler's early media ended.
type earlyEnd struct {
	answer, panicked bool
}

// earlyMedia sends a 183 Session Progress with body, our answer to the INVITE's offer,
// starts the media session at once so that RTP flows before the answer, and runs h's
// ServeEarly. It returns true when the call is to be answered: the session goes on into
// the call. Otherwise the call has ended (refused, cancelled by the caller, hung up or
// shut down) and its media is closed.
//
// The 183 is sent unreliably (no 100rel): it is what trunks commonly take, and the 200
// repeats the same description.
func (c *Call) earlyMedia(ctx context.Context, h EarlyMedia, body []byte) bool {
	dlg := c.uas
	if err := c.openMedia(); err != nil {
		c.log.Error("media session", "error", err)
		c.ports.close()
		_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		c.end(ctx, call.ReasonError)
		return false
	}
	// Whether a caller sends before the answer is up to it (RFC 3960): its silence is no
	// media timeout until then.
	send, _ := c.flows()
	_ = c.sess.Update(media.RTPUpdate{Send: send, Receive: false})

	res := sip.NewResponseFromRequest(dlg.InviteRequest, sip.StatusSessionInProgress, "Session Progress", body)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(&c.contact)
	if err := dlg.WriteResponse(res); err != nil {
		c.closeMedia()
		if dlg.Context().Err() != nil || errors.Is(err, sip.ErrTransactionCanceled) {
			c.end(ctx, call.ReasonCanceled)
		} else {
			c.log.Info("session progress not sent", "error", err)
			c.end(ctx, call.ReasonError)
		}
		return false
	}
	c.log.Info("early media", "codec", c.codec.Name, "rtp_port", c.ports.port)
	c.Publish(call.EventEarlyTone, call.EarlyMedia{Codec: c.codec.Name})

	hctx, stopHandler := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHandler()
	done := make(chan earlyEnd, 1) // never blocks: a handler that overstays does not leak here
	go func() {
		var e earlyEnd
		defer func() {
			if p := recover(); p != nil {
				c.panicked("early media handler", p)
				e = earlyEnd{panicked: true}
			}
			done <- e
		}()
		e.answer = h.ServeEarly(hctx, c)
	}()

	var (
		reason   call.Reason
		respond  = true // false: the transaction layer answered (CANCEL)
		returned bool
	)
	select {
	case e := <-done:
		returned = true
		switch {
		case c.hungUp(): // it hung up, then returned
			reason = c.Reason()
		case e.panicked:
			reason = call.ReasonError
		case e.answer:
			return true
		default:
			reason = call.ReasonRejected
		}
	case <-dlg.Context().Done():
		// CANCEL: the transaction layer answered it 200 and the INVITE 487.
		reason, respond = call.ReasonCanceled, false
	case <-c.Ending(): // Hangup, from the API or the handler itself
		reason = c.Reason()
	case <-c.sess.Done():
		reason = call.FromStream(c.sess.Reason())
	case <-ctx.Done():
		reason = call.ReasonShutdown
	}

	// The caller hears nothing more, and the handler's reads and writes end.
	stopHandler()
	c.sess.Hangup(string(reason))
	if respond {
		cause := reason.SIP()
		c.log.Info("early media ended unanswered", "reason", reason, "status", cause.Status)
		if err := dlg.Respond(cause.Status, cause.Phrase, nil); err != nil {
			c.log.Info("final response not sent", "status", cause.Status, "error", err)
		}
	}
	if !returned {
		select {
		case <-done:
		case <-time.After(call.HandlerStop):
			c.log.Warn("early media handler still running after the call ended")
		}
	}
	c.closeMedia()
	c.end(ctx, reason)
	return false
}

// answerEarly makes the session of early media the answered call's, once our 200 is
// acknowledged: the media timeout runs from now, and signalling handlers may use it.
func (c *Call) answerEarly() {
	send, recv := c.flows()
	_ = c.sess.Update(media.RTPUpdate{Send: send, Receive: recv})
	c.mediaDone()
}

// flows says whether the call's session sends and receives, under our direction and the
// far end's address (nothing is sent to an RFC 2543 hold's 0.0.0.0).
func (c *Call) flows() (send, recv bool) {
	send, recv = flow(c.dir)
	return send && !c.remote.Addr().IsUnspecified(), recv
}

// closeMedia frees the media of a call that will not be answered: the session started for
// early media, or else the call's RTP ports. Recordings are of answered calls: the early
// media of one that was not is not kept.
func (c *Call) closeMedia() {
	if c.sess == nil {
		c.ports.close()
		return
	}
	_ = c.sess.Close()
	c.dropRecording()
}

// dropRecording closes and removes the recording of a call whose media did not start or
// that was not answered.
func (c *Call) dropRecording() {
	if c.recFile != nil {
		_ = c.recFile.Close()
		_ = os.Remove(c.recFile.Name())
		c.recFile = nil
	}
}
