package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/internal/loadgen"
)

// sipgoLog sets sipgo's package logger once in a process: its goroutines read it unguarded,
// and those of an earlier run may still be closing.
var sipgoLog sync.Once

// loadCmd places calls at a SIP URI and prints what it measured. It fails when any call
// failed, so that scripts can tell.
func loadCmd(ctx context.Context, args []string, p Process) error {
	var cfg loadgen.Config
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	fs.IntVar(&cfg.Calls, "calls", 10, "calls up at once")
	fs.Float64Var(&cfg.Rate, "rate", 20, "new calls a second (0: as fast as -calls allows)")
	fs.IntVar(&cfg.Total, "total", 0, "calls to place in all (0: as many as -calls)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "audio each call sends before hanging up")
	fs.StringVar(&cfg.Codec, "codec", "pcmu", "pcmu, pcma or opus")
	fs.StringVar(&cfg.WAV, "wav", "", "PCM16 WAV file to send in a loop (default: a 1 kHz burst of 100 ms every second)")
	fs.StringVar(&cfg.Transport, "transport", "udp", "SIP transport: udp or tcp")
	fs.StringVar(&cfg.LocalIP, "local-ip", "", "address of our SIP and RTP sockets (default: the one routed to the target)")
	fs.DurationVar(&cfg.EchoDelay, "echo-delay", 500*time.Millisecond, "how long the far end holds audio before sending it back; subtracted for the added latency")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 10*time.Second, "longest wait for an INVITE's final response")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "process ID of the server, to report its CPU over the run (Linux)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error (progress every 5 s at info, on stderr)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: switchboard load [flags] sip:echo@HOST:PORT")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("load: one target SIP URI, such as sip:echo@127.0.0.1:5060")
	}
	cfg.Target = fs.Arg(0)
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("load: -log-level %q: want debug, info, warn or error", *logLevel)
	}
	cfg.Log = slog.New(slog.NewTextHandler(p.Stderr, &slog.HandlerOptions{Level: level}))
	// sipgo's transaction and transport layers log to their package default (retransmitted
	// 200s of a loaded server, by the hundred): at the level asked for, like the rest.
	sipgoLog.Do(func() { sip.SetDefaultLogger(cfg.Log) })

	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(p.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(p.Stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("load: %d of %d calls failed", rep.Failed, rep.Attempted)
	}
	if rep.Attempted < rep.Total {
		return fmt.Errorf("load: interrupted after %d of %d calls", rep.Attempted, rep.Total)
	}
	return nil
}
