package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// openStore opens and migrates the database and makes sure the default tenant exists.
func openStore(ctx context.Context, c *config, log *slog.Logger) (*store.Store, *store.Tenant, error) {
	secret, err := c.secret()
	if err != nil {
		return nil, nil, fmt.Errorf("server secret: %w", err)
	}
	st, err := store.Open(ctx, store.Options{URL: c.DatabaseURL, DataDir: c.DataDir, Secret: secret, Log: log})
	if err != nil {
		return nil, nil, err
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	for _, name := range applied {
		log.Info("migration applied", "migration", name)
	}
	def, err := st.EnsureTenant(ctx, store.DefaultTenantSlug)
	if err != nil {
		_ = st.Close()
		return nil, nil, fmt.Errorf("default tenant: %w", err)
	}
	return st, def, nil
}

// logUnroutableNumbers names, once at each start, every phone number that routes nowhere
// because an older number had it when numbers became unique: until its tenant changes it,
// calls to it reach the older number, and only this line and the API's
// routable field say so.
func logUnroutableNumbers(ctx context.Context, st *store.Store, log *slog.Logger) {
	numbers, err := store.UnroutablePhoneNumbers(ctx, st)
	if err != nil {
		log.Warn("phone numbers that route nowhere not readable", "error", err)
		return
	}
	for _, pn := range numbers {
		log.Warn("phone number routes nowhere", "tenant_id", pn.TenantID, "phone_number_id", pn.ID, "number", pn.Number,
			"why", "an older number had it when numbers became unique; its tenant must change it to a free one")
	}
}

// serve runs the node until ctx ends (the first SIGINT or SIGTERM), then drains: it stops
// accepting, lets requests in flight finish, and closes the store. A second signal forces.
func serve(ctx context.Context, stopSignals context.CancelFunc, args []string) error {
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.registerServe(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := c.logger(os.Stderr)
	if err != nil {
		return err
	}
	st, def, err := openStore(ctx, &c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	logUnroutableNumbers(ctx, st, log)
	secret, _ := c.secret()
	if c.Demo {
		if err := ensureDemo(ctx, st, def, log); err != nil {
			return err
		}
	}

	// Background work of the node (the event relay, key last-used flushing, sweeping idle
	// topics) runs until the HTTP server has drained.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgDone sync.WaitGroup
	defer func() { stopBG(); bgDone.Wait() }()

	hub := realtime.NewHub(realtime.Options{Log: log})
	if st.Dialect() == store.Postgres {
		relay := realtime.NewPostgresRelay(c.DatabaseURL, hub, log)
		bgDone.Add(1)
		go func() { defer bgDone.Done(); relay.Run(bg) }()
		// Serve once the relay listens, so that no other node's event is missed.
		select {
		case <-relay.Ready():
		case <-time.After(10 * time.Second):
			log.Warn("the event relay is not listening yet; serving anyway")
		case <-ctx.Done():
			return nil
		}
	}
	bgDone.Add(1)
	go func() {
		defer bgDone.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				hub.Sweep(now)
			case <-bg.Done():
				return
			}
		}
	}()
	streams := realtime.NewServer(hub, api.TopicChecker(st), realtime.Limits{}, log)

	providers, err := providerConfigs(c.ProvidersFile)
	if err != nil {
		return err
	}
	// The operator's providers are trusted; those tenants configure connect through one
	// guarded client, public addresses only unless the operator allows more.
	tenantHTTP := netguard.NewTenantClient(c.AllowPrivateProviders)
	models, err := llm.NewRegistry(providers, llm.WithTenantClient(tenantHTTP))
	if err != nil {
		return err
	}
	voices := speech.NewRegistry(providers, speech.RegistryOptions{TenantClient: tenantHTTP})

	// SIP: UDP and TCP on one port, TLS on another when a certificate is set. Calls this
	// node carried when it last stopped without hanging them up are failed first.
	if n, err := store.FailInterruptedCalls(ctx, st, c.Node); err != nil {
		return fmt.Errorf("calls of the last run: %w", err)
	} else if n > 0 {
		log.Warn("calls interrupted by the last stop marked failed", "calls", n, "node", c.Node)
	}
	// The node's heartbeat: it beats before taking calls, and fails the calls of nodes
	// gone silent (node-lost), publishing their call.ended.
	heart, err := store.NewHeartbeat(st, store.HeartbeatOptions{Node: c.Node, Version: version, Every: c.NodeHeartbeat,
		Timeout: c.NodeTimeout, Log: log, OnLost: func(rec store.Call) { _ = sip.PublishEnded(hub, rec) }})
	if err != nil {
		return err
	}
	if err := heart.Join(ctx); err != nil {
		return err
	}
	heartCtx, stopHeart := context.WithCancel(bg)
	heartDone := make(chan struct{})
	go func() { defer close(heartDone); heart.Run(heartCtx) }()
	defer func() { stopHeart(); <-heartDone }()
	rtpMin, rtpMax, err := c.rtpPorts()
	if err != nil {
		return err
	}
	// Calls to agents: the conversation runtime, given the API server (for the tenants'
	// model providers) once it exists.
	voicemails := filepath.Join(c.DataDir, "voicemails")
	if err := os.MkdirAll(voicemails, 0o750); err != nil {
		return fmt.Errorf("voicemails: %w", err)
	}
	webhooks := agent.NewWebhooks(c.AllowPrivateWebhooks)
	agents := &agentCalls{st: st, speech: voices, webhooks: webhooks, voicemailDir: voicemails, log: log}
	// Web calls (browsers over WebRTC, media-stream sockets) end as shutdown when the node
	// stops.
	webCtx, stopWeb := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWeb()
	if c.KnowledgeMaxUploadMiB < 1 {
		return fmt.Errorf("--knowledge-max-upload-mib must be 1 or more")
	}
	if c.GatewayBodyBudgetMiB < 1 {
		return fmt.Errorf("--gateway-body-budget-mib must be 1 or more")
	}
	// An upload is held within the body budget, less the part kept for small bodies (a
	// sixteenth, at most 4 MiB): a limit past that would answer the largest uploads 503,
	// "retry shortly", for ever.
	if budget := c.GatewayBodyBudgetMiB<<20 - min(c.GatewayBodyBudgetMiB<<20/16, 4<<20); c.KnowledgeMaxUploadMiB<<20+64<<10 > budget {
		return fmt.Errorf("--knowledge-max-upload-mib %d does not fit in --gateway-body-budget-mib %d, which holds uploads too: raise the budget past %d MiB or lower the upload limit",
			c.KnowledgeMaxUploadMiB, c.GatewayBodyBudgetMiB, c.KnowledgeMaxUploadMiB+c.KnowledgeMaxUploadMiB/15+1)
	}
	if c.MaxCalls < 0 || c.MaxTenantCalls < 0 {
		return fmt.Errorf("--max-calls and --max-calls-per-tenant must be 0 (no limit) or more")
	}
	calls := callcap.New(c.MaxCalls, c.MaxTenantCalls)
	web := newWebCalls(webCtx, st, agents, hub, calls, c.Node, log)
	var rtcCalls api.WebRTCCalls
	if c.WebRTC.Enabled {
		rcfg, err := c.WebRTC.config(c.PublicIP, log)
		if err != nil {
			return err
		}
		engine, err := rtc.NewEngine(rcfg)
		if err != nil {
			return err
		}
		defer engine.Close()
		rtcCalls = newWebRTCCalls(web, engine)
	}
	sipCfg := sip.Config{Log: log, PublicIP: c.PublicIP, RTPPortMin: rtpMin, RTPPortMax: rtpMax,
		Store: st, DefaultTenantID: def.ID, Node: c.Node, Events: hub, MediaTimeout: c.MediaTimeout, Agents: agents, Calls: calls,
		TCPIdleTimeout: c.SIPTCPIdleTimeout, TCPHeaderTimeout: c.SIPTCPHeaderTimeout, TCPMaxConns: c.SIPTCPMaxConns, TCPMaxConnsPerAddr: c.SIPTCPMaxConnsPerAddr}
	if c.RecordCalls {
		sipCfg.RecordDir = filepath.Join(c.DataDir, "recordings")
		if err := os.MkdirAll(sipCfg.RecordDir, 0o750); err != nil {
			return fmt.Errorf("recordings: %w", err)
		}
	}
	if c.SIPTLSCert != "" || c.SIPTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(c.SIPTLSCert, c.SIPTLSKey)
		if err != nil {
			return fmt.Errorf("SIP TLS certificate: %w", err)
		}
		sipCfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	sipSrv, err := sip.New(sipCfg)
	if err != nil {
		return err
	}

	auth := api.NewAuthenticator(st, secret, def.ID, log)
	srv := api.New(api.Config{Store: st, Auth: auth, Log: log, Version: version, Commit: commit, Node: c.Node, DefaultRateLimit: c.RateLimit, ChatRateLimit: c.ChatRateLimit, AmplifierAuthOptional: !c.AmplifierAuthRequired,
		Hub: hub, Streams: streams, Models: models, AllowPrivateProviders: c.AllowPrivateProviders, GatewayBodyBudget: int64(c.GatewayBodyBudgetMiB) << 20, Webhooks: webhooks, Calls: nodeCalls{sip: sipSrv, web: web}, RecordingsDir: sipCfg.RecordDir, VoicemailsDir: voicemails,
		WebRTC: rtcCalls, MediaStreams: web, Checks: sipChecks(sipSrv), KnowledgeMaxUpload: int64(c.KnowledgeMaxUploadMiB) << 20,
		Speech: voices, AllowPrivateFiles: c.AllowPrivateFiles, FileLimits: netguard.FileLimits{MaxBytes: int64(c.FileMaxMiB) << 20, Timeout: c.FileTimeout}})
	// Knowledge documents this node left processing when it stopped, and those of nodes
	// that died, are taken up again; its ingestions stop (to be resumed) when it does.
	srv.Knowledge().Start(context.WithoutCancel(ctx))
	defer srv.Knowledge().Close()
	agents.api, agents.knowledge = srv, srv.Knowledge()
	// Browsers may signal their WebRTC calls over the events socket too.
	srv.HandleWebRTCCommands(streams)
	srv.HandleSessionCommands(streams)
	httpSrv := &http.Server{
		Addr: c.HTTPAddr, Handler: srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return err
	}
	sipUDP, sipTCP, err := sip.Listen(ctx, c.SIPAddr)
	if err != nil {
		return err
	}
	var sipTLS net.Listener
	if sipCfg.TLS != nil {
		if sipTLS, err = net.Listen("tcp", c.SIPTLSAddr); err != nil {
			return fmt.Errorf("sip: listen tls %s: %w", c.SIPTLSAddr, err)
		}
	}
	sipCtx, stopSIP := context.WithCancel(context.WithoutCancel(ctx))
	sipDone := make(chan struct{})
	go func() {
		defer close(sipDone)
		if err := sipSrv.Serve(sipCtx, sipUDP, sipTCP, sipTLS); err != nil {
			log.Error("sip stopped", "err", err)
		}
	}()
	defer func() { stopSIP(); <-sipDone }()
	// The node says it serves (and answers /health) only once SIP serves on every listener.
	select {
	case <-sipSrv.Ready():
	case <-sipDone:
		return errors.New("sip: stopped before it served")
	}

	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	flushed := make(chan struct{})
	go func() { auth.RunFlusher(flushCtx, 30*time.Second); close(flushed) }()
	go srv.RunRevalidation(flushCtx, api.RevalidateEvery)

	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	log.Info("switchboard serving", "version", version, "http", ln.Addr().String(), "sip", sipUDP.LocalAddr().String(), "database", st.Dialect(), "data_dir", c.DataDir)

	select {
	case err := <-errc:
		stopFlush()
		<-flushed
		return err
	case <-ctx.Done():
	}
	// The first signal ends ctx; let a second one kill the process at once.
	stopSignals()
	log.Info("shutting down: no new requests, finishing those in flight", "streams", streams.Open())
	// Event streams never finish by themselves: end them so that clients reconnect to
	// another node, then wait for the requests in flight.
	streams.Shutdown()
	stopSIP() // ends the calls: each gets a BYE
	<-sipDone
	stopWeb() // ends the web calls: each browser is hung up
	webWait, cancelWebWait := context.WithTimeout(context.Background(), 15*time.Second)
	if err := web.wait(webWait); err != nil {
		log.Warn("web calls still ending at shutdown", "calls", web.Open())
	}
	cancelWebWait()
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = httpSrv.Shutdown(shutCtx)
	// Answers of sessions outlive their requests: let them be stored (canceled at the
	// deadline, and stored as such).
	srv.Sessions().Shutdown(shutCtx)
	leaveNode(st, heart, stopHeart, heartDone, log)
	stopFlush()
	<-flushed
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// leaveNode is the node's last word once its calls have ended: their records still queued
// for the database are written (for up to 15 s), and the node's heartbeat is removed, so that
// no other node has to find it lost.
func leaveNode(st *store.Store, heart *store.Heartbeat, stopHeart context.CancelFunc, heartDone <-chan struct{}, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := st.FlushCalls(ctx); err != nil {
		log.Error("call records not written at shutdown", "error", err)
	}
	stopHeart()
	<-heartDone
	if err := heart.Leave(ctx); err != nil {
		log.Warn("node heartbeat not removed; other nodes will see it lost after the timeout", "error", err)
	}
}

// providerConfigs are the model providers of the node: openai and anthropic from their
// usual variables, and those of the providers file. The model gateway and the agents' speech
// both resolve names among them.
func providerConfigs(file string) ([]llm.ProviderConfig, error) {
	cfgs, err := llm.Configs(os.Getenv, file)
	if err != nil {
		return nil, fmt.Errorf("providers file: %w", err)
	}
	return cfgs, nil
}
