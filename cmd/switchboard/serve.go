package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/voice"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/internal/config"
	"github.com/switchboard-go/switchboard/internal/demo"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/mediastream"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// serve runs the node until ctx ends (the first SIGINT or SIGTERM), then drains it (a second
// signal cuts its wait for calls short, a third kills). Each phase is a method of server;
// what a phase starts, server.close stops, last first.
func serve(ctx context.Context, stopSignals context.CancelFunc, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: switchboard [serve] [flags]\n\nRuns the server until SIGINT or SIGTERM. Each flag has an environment variable, in brackets; the flag wins.\n\nflags:\n")
		settings.PrintDefaults(fs)
	}
	c, err := config.Serve(fs, args, os.LookupEnv)
	if err != nil {
		return err
	}
	n := &server{cfg: c, log: c.Logger(os.Stderr)}
	defer n.close()
	for _, phase := range []func(context.Context) error{n.open, n.construct, n.listen, n.wait} {
		if err := phase(ctx); errors.Is(err, errStopped) {
			return nil
		} else if err != nil {
			return err
		}
	}
	stopSignals()
	return n.drain()
}

// server is the node serve runs: what its phases made, for the later phases and the stop.
type server struct {
	cfg *config.Config
	log *slog.Logger
	// closers undo what the phases did, run last first by close.
	closers []func()

	st     *store.Store
	def    *store.Tenant
	secret []byte

	// bg is the background work (the event relay, key last-used flushing, sweeping idle
	// topics), which runs until the HTTP server has drained.
	bg      context.Context
	hub     *realtime.Hub
	streams *realtime.Server

	heart *store.Heartbeat

	knowledge  *knowledge.Service
	voicemails string
	recordings string
	web        *call.Node
	calls      *call.Registry
	stopWeb    context.CancelFunc
	sipSrv     *sip.Server
	auth       *api.Authenticator
	srv        *api.Server

	metrics *metrics.Registry  // the node's Prometheus registry (/metrics)
	tracing *telemetry.Tracing // nil: the node does not trace

	httpSrv   *http.Server
	sip       *sip.Serving
	errc      chan error
	flushed   chan struct{}
	stopFlush context.CancelFunc
}

// onClose adds what close undoes; it runs before everything added earlier.
func (n *server) onClose(f func()) { n.closers = append(n.closers, f) }

// close stops whatever the phases started, last first; drain has stopped the rest by then
// when the node served.
func (n *server) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
}

// open is the store phase: the secret (read once), the database migrated, the default
// tenant, and the demo agent on a first start.
func (n *server) open(ctx context.Context) error {
	c, log := n.cfg, n.log
	secret, err := c.ReadSecret()
	if err != nil {
		return fmt.Errorf("server secret: %w", err)
	}
	st, def, err := c.OpenStore(ctx, secret, log)
	if err != nil {
		return err
	}
	n.onClose(func() { _ = st.Close() })
	n.st, n.def, n.secret = st, def, secret
	store.LogUnroutablePhoneNumbers(ctx, st, log)
	if !c.Demo {
		return nil
	}
	return demo.Ensure(ctx, st, def, log)
}

// construct builds the parts, in the order they depend on each other: events, the
// tenants' providers, the cluster's heartbeat, knowledge, calls, the API.
func (n *server) construct(ctx context.Context) (err error) {
	if n.tracing, err = telemetry.New(ctx, n.cfg.Tracing); err != nil {
		return err
	}
	n.onClose(n.tracing.Shutdown) // after everything else: the drain's spans are exported
	if err := n.startEvents(ctx); err != nil {
		return err
	}
	// Tenants' own providers connect through one guarded client: public addresses only.
	tenantHTTP := netguard.NewTenantClient(n.cfg.AllowPrivateProviders)
	models, voices, err := provider.FromEnv(os.Getenv, n.cfg.ProvidersFile, tenantHTTP)
	if err != nil {
		return err
	}
	providers := provider.New(provider.Config{Store: n.st, Models: models, Speech: voices, TenantClient: tenantHTTP})
	if err := n.joinCluster(ctx); err != nil {
		return err
	}
	n.knowledge = knowledge.New(knowledge.Config{Store: n.st, Log: n.log, Node: n.cfg.Node, MaxUpload: int64(n.cfg.KnowledgeMaxUploadMiB) << 20,
		Embedder: &knowledge.EmbeddingsClient{Resolve: providers.EmbeddingEndpoint}, Events: realtime.Changes{Hub: n.hub, Log: n.log}})
	webhooks, rtcCalls, err := n.buildCalls(ctx, providers)
	if err != nil {
		return err
	}
	n.buildAPI(ctx, providers, webhooks, rtcCalls)
	return nil
}

// startEvents starts the hub of events, and on PostgreSQL its relay between nodes; it
// returns once the relay listens, so that no other node's event is missed.
func (n *server) startEvents(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgDone sync.WaitGroup
	n.onClose(func() { stopBG(); bgDone.Wait() })
	n.bg = bg
	n.hub = realtime.NewHub(realtime.Options{Log: n.log})
	if n.st.Dialect() == store.Postgres {
		relay := realtime.NewPostgresRelay(n.cfg.DatabaseURL, n.hub, n.log)
		bgDone.Go(func() { relay.Run(bg) })
		if relay.WaitListening(ctx, 10*time.Second) != nil {
			return errStopped
		}
	}
	bgDone.Go(func() { n.hub.RunSweeper(bg, time.Minute) })
	n.streams = realtime.NewServer(n.hub, api.TopicChecker(n.st), realtime.Limits{}, n.log)
	return nil
}

// errStopped is a stop asked for before the node served: not a failure.
var errStopped = errors.New("stopped before serving")

// joinCluster fails the calls this node carried when it last stopped without hanging them
// up, then starts the node's heartbeat: it beats before taking calls, and fails the calls
// of nodes gone silent (node-lost), publishing their call.ended.
//
//nolint:contextcheck // the heartbeat beats on through the drain, after the first signal ended ctx
func (n *server) joinCluster(ctx context.Context) error {
	c, st := n.cfg, n.st
	if count, err := store.FailInterruptedCalls(ctx, st, c.Node); err != nil {
		return fmt.Errorf("calls of the last run: %w", err)
	} else if count > 0 {
		n.log.Warn("calls interrupted by the last stop marked failed", "calls", count, "node", c.Node)
	}
	heart, err := store.NewHeartbeat(st, store.HeartbeatOptions{Node: c.Node, Version: version, Every: c.NodeHeartbeat,
		Timeout: c.NodeTimeout, Log: n.log, OnLost: func(rec store.Call) { _ = call.PublishEnded(n.hub, st, rec) }})
	if err != nil {
		return err
	}
	if err := heart.Join(ctx); err != nil {
		return err
	}
	heart.Start(n.bg)
	n.onClose(heart.Stop)
	n.heart = heart
	return nil
}

// buildCalls builds what carries calls: the agents' runtime, web calls (browsers over
// WebRTC, media-stream sockets) and SIP, under one limit of calls.
func (n *server) buildCalls(ctx context.Context, providers *provider.Registry) (*agent.Webhooks, api.WebRTCCalls, error) {
	c, log := n.cfg, n.log
	n.voicemails = filepath.Join(c.DataDir, "voicemails") // made by the runtime at its first voicemail
	webhooks := agent.NewWebhooks(c.AllowPrivateWebhooks)
	n.metrics = metrics.New() // the node's /metrics: its calls and the agents' answers are counted there
	agents := voice.NewRuntime(voice.RuntimeConfig{Store: n.st, Providers: providers, Knowledge: n.knowledge,
		Webhooks: webhooks, VoicemailDir: n.voicemails, Turns: n.metrics.Turns(), Log: log})
	// Web calls end as shutdown when the node stops.
	webCtx, stopWeb := context.WithCancel(context.WithoutCancel(ctx))
	n.onClose(stopWeb)
	n.stopWeb = stopWeb
	// The node's live calls, whatever carries them, within the node's and tenants' limits.
	n.calls = call.NewRegistry(callcap.New(c.MaxCalls, c.MaxTenantCalls))
	n.calls.Measure(n.metrics.Calls()) // counted where they live and end, whatever carries them
	n.calls.Trace(n.tracing)
	n.calls.LimitTenants(n.st, c.Node) // a tenant's own limit holds across the cluster
	// Calls are recorded as the node or their agent asks; this node sweeps its expired ones.
	n.recordings = filepath.Join(c.DataDir, "recordings")
	if err := os.MkdirAll(n.recordings, 0o750); err != nil {
		return nil, nil, fmt.Errorf("recordings: %w", err)
	}
	recordings := call.Recordings{Dir: n.recordings, All: c.RecordCalls, Retention: c.RecordingRetention}
	n.web = call.NewNode(webCtx, call.NodeConfig{Store: n.st, Events: n.hub, Calls: n.calls, Node: c.Node, Log: log,
		Agent: func(ctx context.Context, c *call.Call, ag *store.Agent) { agents.Answer(ctx, c, ag) }, Recordings: recordings})
	go n.web.SweepRecordings(n.bg) //nolint:contextcheck // background work of the node, past the start's ctx
	var rtcCalls api.WebRTCCalls
	if c.WebRTC.Enabled {
		rcfg, err := c.WebRTC.Config(c.PublicIP, log)
		if err != nil {
			return nil, nil, err
		}
		engine, err := rtc.NewEngine(rcfg)
		if err != nil {
			return nil, nil, err
		}
		n.onClose(func() { _ = engine.Close() })
		rtcCalls = api.NewWebRTCCalls(n.web, engine, log)
	}
	sipTLS, err := sip.LoadTLS(c.SIPTLSCert, c.SIPTLSKey)
	if err != nil {
		return nil, nil, err
	}
	sipCfg := sip.Config{Log: log, TLS: sipTLS, PublicIP: c.PublicIP, RTPPortMin: c.RTPPorts.Min, RTPPortMax: c.RTPPorts.Max,
		Store: n.st, DefaultTenantID: n.def.ID, Node: c.Node, Events: n.hub, MediaTimeout: c.MediaTimeout, Agents: sip.StoreAgents(n.st, func(ctx context.Context, c *sip.Call, ag *store.Agent) { agents.Answer(ctx, c, ag) }, agents), Calls: n.calls,
		TCPIdleTimeout: c.SIPTCPIdleTimeout, TCPHeaderTimeout: c.SIPTCPHeaderTimeout, TCPMaxConns: c.SIPTCPMaxConns, TCPMaxConnsPerAddr: c.SIPTCPMaxConnsPerAddr, TrustedProxies: c.SIPTrustedProxies, OutboundProxy: c.SIPOutboundProxy, TLSCAFile: c.SIPTLSCA}
	sipCfg.Recordings = recordings
	if n.sipSrv, err = sip.New(sipCfg); err != nil {
		return nil, nil, err
	}
	return webhooks, rtcCalls, nil
}

// buildAPI builds the HTTP API over everything else.
func (n *server) buildAPI(ctx context.Context, providers *provider.Registry, webhooks *agent.Webhooks, rtcCalls api.WebRTCCalls) {
	c, log := n.cfg, n.log
	n.auth = api.NewAuthenticator(n.st, n.secret, n.def.ID, log)
	srv := api.New(api.Config{Store: n.st, Auth: n.auth, Log: log, Version: version, Commit: commit, Node: c.Node, DefaultRateLimit: c.RateLimit, ChatRateLimit: c.ChatRateLimit, AmplifierAuthOptional: !c.AmplifierAuthRequired,
		Hub: n.hub, Streams: n.streams, Providers: providers, AllowPrivateProviders: c.AllowPrivateProviders, GatewayBodyBudget: int64(c.GatewayBodyBudgetMiB) << 20, Webhooks: webhooks, Calls: api.NodeCalls(n.sipSrv, n.calls, n.hub, c.Node, n.log), RecordingsDir: n.recordings, VoicemailsDir: n.voicemails,
		WebRTC: rtcCalls, MediaStreams: mediastream.NewCalls(n.web), Checks: api.SIPChecks(n.sipSrv), Knowledge: n.knowledge, KnowledgeMaxUpload: int64(c.KnowledgeMaxUploadMiB) << 20,
		AllowPrivateFiles: c.AllowPrivateFiles, FileLimits: netguard.FileLimits{MaxBytes: int64(c.FileMaxMiB) << 20, Timeout: c.FileTimeout},
		Metrics: n.metrics, MetricsToken: c.MetricsToken, MetricsAllow: c.MetricsAllow, Draining: n.calls.Draining, Pprof: c.Pprof, CallWebhooks: c.CallWebhooks(), Tracing: n.tracing})
	// Knowledge documents this node left processing when it stopped, and those of nodes
	// that died, are taken up again; its ingestions stop (to be resumed) when it does.
	srv.Knowledge().Start(context.WithoutCancel(ctx))
	n.onClose(srv.Knowledge().Close)
	srv.HandleWebRTCCommands(n.streams) // browsers may signal their calls over the events socket too
	srv.HandleSessionCommands(n.streams)
	n.srv = srv
}

// listen opens the HTTP and SIP listeners and serves on them; the node says it serves (and
// answers /health) only once SIP serves on every listener.
func (n *server) listen(ctx context.Context) error {
	c, log := n.cfg, n.log
	n.httpSrv = &http.Server{Addr: c.HTTPAddr, Handler: n.srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", c.HTTPAddr)
	if err != nil {
		return err
	}
	if n.sip, err = n.sipSrv.Start(ctx, c.SIPAddr, c.SIPTLSAddr); err != nil {
		return err
	}
	n.onClose(n.sip.Stop)

	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	n.flushed = n.srv.StartCallWebhooks(flushCtx, func(ctx context.Context) { n.auth.RunFlusher(ctx, 30*time.Second) })
	go n.srv.RunRevalidation(flushCtx, api.RevalidateEvery)
	n.stopFlush = stopFlush

	n.errc = make(chan error, 1)
	go func() { n.errc <- n.httpSrv.Serve(ln) }()
	log.Info("switchboard serving", "version", version, "http", ln.Addr().String(), "sip", n.sip.Addr().String(), "database", n.st.Dialect(), "data_dir", c.DataDir)
	return nil
}

// wait serves until ctx ends (nil) or the HTTP server fails (its error).
func (n *server) wait(ctx context.Context) error {
	select {
	case err := <-n.errc:
		n.stopFlush()
		<-n.flushed
		return err
	case <-ctx.Done():
		return nil
	}
}

// drain stops the node in order: no new calls, its calls let end up to the drain timeout,
// event streams end (clients reconnect to another node), the calls left end (SIP with a BYE,
// browsers hung up), requests in flight finish, answers of sessions are stored, the calls'
// records are written and the node leaves the cluster.
//
//nolint:contextcheck // it runs after the first signal ended the root context; each stage has its own deadline
func (n *server) drain() error {
	log := n.log
	again, stopAgain := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	n.calls.DrainWithin(again, n.cfg.DrainTimeout, log)
	stopAgain()
	log.Info("shutting down: no new requests, finishing those in flight", "streams", n.streams.Open())
	n.streams.Shutdown()
	n.sip.Stop()
	n.stopWeb()
	webWait, cancelWebWait := context.WithTimeout(context.Background(), 15*time.Second)
	if err := n.web.Wait(webWait); err != nil {
		log.Warn("web calls still ending at shutdown", "calls", n.calls.Open())
	}
	cancelWebWait()
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.httpSrv.Shutdown(shutCtx)
	// Answers of sessions outlive their requests: let them be stored (canceled at the
	// deadline, and stored as such).
	n.srv.Sessions().Shutdown(shutCtx)
	n.heart.Depart()
	n.stopFlush()
	<-n.flushed
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
