// Package loadgen owns Switchboard's SIP load generator: it places many concurrent calls
// to a SIP URI with sipgo, sends each one G.711 or Opus RTP paced by a few shared
// schedulers, receives what comes back, and reports setup time, loss, jitter, round-trip
// audio latency and CPU. The server it is aimed at is usually Switchboard's echo.
package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Config says what load to place.
type Config struct {
	// Target is the SIP URI called, e.g. sip:echo@127.0.0.1:5060.
	Target string
	// Transport of SIP: udp (default) or tcp. RTP is always UDP.
	Transport string
	// Calls is how many calls may be up at once.
	Calls int
	// Rate is how many new calls a second are placed; 0 places them as fast as Calls allows.
	Rate float64
	// Total is how many calls are placed in all; 0 means Calls.
	Total int
	// Duration is how long each answered call sends audio; it then waits EchoDelay for the
	// last of it to come back, and hangs up.
	Duration time.Duration
	// Codec is pcmu (default), pcma or opus.
	Codec string
	// WAV is a PCM16 WAV file to send in a loop instead of the tone bursts.
	WAV string
	// EchoDelay is how long the far end holds audio before sending it back (Switchboard's
	// echo: 500 ms); the report gives round trip minus it as the added latency.
	EchoDelay time.Duration
	// LocalIP is the address of our SIP and RTP sockets; empty means the one the system
	// routes to the target from.
	LocalIP string
	// Turns reads the audio (WAV) as a caller's turns of a conversation: each stretch of
	// speech followed by turnQuiet of quiet ends a turn, and the report gives, per turn, the
	// time from its last word sent to the first onset heard after it (the agent's answer on
	// the wire: Report.VoiceToVoiceMs).
	Turns bool
	// ServerPID, when not 0, is the process whose CPU time over the run is reported.
	ServerPID int
	// SetupTimeout bounds INVITE → final response; 0 means 10 s.
	SetupTimeout time.Duration
	// Log gets progress every few seconds and the calls that fail; nil discards.
	Log *slog.Logger
}

func (c *Config) check() (codecSpec, sip.Uri, error) {
	var uri sip.Uri
	if c.Calls <= 0 {
		return codecSpec{}, uri, fmt.Errorf("%w: calls must be at least 1", ErrConfig)
	}
	if c.Total == 0 {
		c.Total = c.Calls
	}
	if c.Total < 0 || c.Rate < 0 || c.EchoDelay < 0 || c.SetupTimeout < 0 || c.ServerPID < 0 {
		return codecSpec{}, uri, fmt.Errorf("%w: total, rate, echo delay, setup timeout and server PID cannot be negative", ErrConfig)
	}
	if c.Duration < 20*time.Millisecond {
		return codecSpec{}, uri, fmt.Errorf("%w: duration %v, want at least one 20 ms frame", ErrConfig, c.Duration)
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch c.Transport = strings.ToLower(c.Transport); c.Transport {
	case "":
		c.Transport = "udp"
	case "udp", "tcp":
	default:
		return codecSpec{}, uri, fmt.Errorf("%w: transport %q, want udp or tcp", ErrConfig, c.Transport)
	}
	codec, err := lookupCodec(c.Codec)
	if err != nil {
		return codecSpec{}, uri, err
	}
	c.Codec = codec.name
	target := c.Target
	if !strings.HasPrefix(strings.ToLower(target), "sip:") {
		target = "sip:" + target
	}
	if err := sip.ParseUri(target, &uri); err != nil || uri.Host == "" {
		return codecSpec{}, uri, fmt.Errorf("%w: target %q is not a SIP URI such as sip:echo@127.0.0.1:5060", ErrConfig, c.Target)
	}
	if uri.Port == 0 {
		uri.Port = 5060
	}
	return codec, uri, nil
}

// generator is one run: the shared audio, the SIP user agent and the pacers.
type generator struct {
	cfg     Config
	target  sip.Uri
	localIP netip.Addr
	pattern *pattern
	ua      *sipgo.UserAgent
	dialogs *sipgo.DialogClientCache
	pacers  []*pacer
	epoch   time.Time // origin of the times calls share with their pacer

	active, peak atomic.Int64
	answered     atomic.Int64
	failed       atomic.Int64
}

// Run places the calls of cfg and returns what was measured. It returns early, with what
// was measured so far, when ctx ends: calls in progress hang up. An error is a run that
// could not start; calls that fail are in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	codec, target, err := cfg.check()
	if err != nil {
		return nil, err
	}
	localIP, err := pickLocalIP(ctx, cfg.LocalIP, target.Host)
	if err != nil {
		return nil, err
	}
	var pcm []int16
	if cfg.WAV != "" {
		if pcm, err = wavPCM(cfg.WAV, codec.encodeRate); err != nil {
			return nil, err
		}
	}
	pat, err := newPattern(codec, pcm)
	if err != nil {
		return nil, err
	}
	g := &generator{cfg: cfg, target: target, localIP: localIP, pattern: pat, epoch: time.Now()}
	if err := g.startUA(); err != nil {
		return nil, err
	}
	defer g.ua.Close()

	// The pacers outlive every call: a call leaves its pacer before it ends.
	pctx, stopPacers := context.WithCancel(context.WithoutCancel(ctx))
	var pacing sync.WaitGroup
	g.pacers = make([]*pacer, runtime.GOMAXPROCS(0))
	for i := range g.pacers {
		g.pacers[i] = &pacer{}
		pacing.Add(1)
		go func() { defer pacing.Done(); g.pacers[i].run(pctx) }()
	}
	defer func() { stopPacers(); pacing.Wait() }()

	col := newCollector(cfg.Total)
	mon, err := startMonitor(cfg.ServerPID, cfg.Log, g)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	g.placeAll(ctx, col)
	elapsed := time.Since(begin)
	serverCPU, selfCPU := mon.stop()
	return col.report(g, elapsed, serverCPU, selfCPU), nil
}

// placeAll places cfg.Total calls, at most cfg.Calls at once and cfg.Rate a second, and
// returns when they have all ended or ctx ended and the calls in progress have hung up.
func (g *generator) placeAll(ctx context.Context, col *collector) {
	slots := make(chan struct{}, g.cfg.Calls)
	var calls sync.WaitGroup
	defer calls.Wait()
	var interval time.Duration
	if g.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / g.cfg.Rate)
	}
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := range g.cfg.Total {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			// A slot that came free late does not earn a burst of calls to catch up.
			if floor := time.Now().Add(-interval); next.Before(floor) {
				next = floor
			}
			next = next.Add(interval)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if n := g.active.Add(1); n > g.peak.Load() {
			g.peak.Store(n) // only this goroutine raises the peak
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			r := g.call(ctx, i)
			g.active.Add(-1)
			<-slots
			col.add(r)
		}()
	}
}

// startUA makes the user agent the calls share: one client, and a server for the BYEs the
// far end sends.
func (g *generator) startUA() error {
	host := g.localIP.String()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-load"), sipgo.WithUserAgentHostname(host))
	if err != nil {
		return fmt.Errorf("loadgen: user agent: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(host), sipgo.WithClientLogger(g.cfg.Log))
	if err != nil {
		_ = ua.Close()
		return fmt.Errorf("loadgen: client: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(g.cfg.Log))
	if err != nil {
		_ = ua.Close()
		return fmt.Errorf("loadgen: server: %w", err)
	}
	g.ua = ua
	g.dialogs = sipgo.NewDialogClientCache(client, sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: "load", Host: host},
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := g.dialogs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		}
	})
	return nil
}

// pickLocalIP is ip, or the address the system routes to host from.
func pickLocalIP(ctx context.Context, ip, host string) (netip.Addr, error) {
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%w: local IP %q", ErrConfig, ip)
		}
		return a.Unmap(), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("loadgen: resolve %s: %w", host, err)
	}
	dst := addrs[0].Unmap()
	if dst.IsLoopback() {
		return dst, nil
	}
	// A UDP "connection" sends nothing; it only asks the routing table for our address.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", netip.AddrPortFrom(dst, 9).String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("loadgen: route to %s: %w", dst, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
