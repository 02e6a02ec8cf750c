// Command diago-echo is the peer Switchboard's SIP echo is compared with (scripts/compare):
// diago v0.42.1, a Go SIP and media library on the same sipgo stack, answering every INVITE
// on one UDP address and sending the caller's G.711 RTP back as it arrives, until the caller
// hangs up. It is built by scripts/compare/run.sh in a module of its own so that Switchboard's
// go.mod never requires diago.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5090", "UDP address to answer INVITEs on (host:port); RTP binds to the same host")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "diago-echo: -log-level %q: want debug, info, warn or error\n", *logLevel)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, log); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "diago-echo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string, log *slog.Logger) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("-addr %q: the port must be 1-65535 (the script picks a free one)", addr)
	}
	// sipgo's transport and transaction layers log to their package default.
	sip.SetDefaultLogger(log)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("diago-echo"))
	if err != nil {
		return err
	}
	defer ua.Close()
	// G.711 only, as Switchboard's echo is measured with; diago's default also offers
	// telephone-event, which the load generator ignores either way.
	dg := diago.NewDiago(ua,
		diago.WithLogger(log),
		diago.WithTransport(diago.Transport{Transport: "udp", BindHost: host, BindPort: port}),
		diago.WithMediaConfig(diago.MediaConfig{Codecs: []media.Codec{media.CodecAudioUlaw, media.CodecAudioAlaw}}),
	)
	err = dg.ServeBackground(ctx, func(d *diago.DialogServerSession) {
		if err := echo(d); err != nil {
			log.Warn("call ended with an error", "call_id", d.InviteRequest.CallID().Value(), "err", err)
		}
	})
	if err != nil {
		return err
	}
	// The script waits for this line before it places calls.
	fmt.Println("diago-echo: answering on udp", addr)
	<-ctx.Done()
	return nil
}

// echo answers and copies the caller's audio back until the caller hangs up (the media
// session closes, so the copy ends with io.EOF); diago hangs up itself if we return first.
func echo(d *diago.DialogServerSession) error {
	if err := d.Trying(); err != nil {
		return fmt.Errorf("100 Trying: %w", err)
	}
	med, err := d.Answer(diago.AnswerOptions{})
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if err := med.Echo(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("echo: %w", err)
	}
	return nil
}
