// Package config is what a Switchboard node and its administration commands are told at
// start: every setting a flag and an environment variable, read through internal/settings
// (README's configuration table lists the same), and what follows from them alone: the
// process logger, the server secret, the store they name.
package config

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/internal/settings"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/webhook"

	"github.com/switchboard-go/switchboard/telemetry"
)

// Config is everything a node is told at start, from flags or the environment (flags win).
type Config struct {
	HTTPAddr      string
	SIPAddr       string
	DataDir       string
	DatabaseURL   string
	PublicIP      string
	LogLevel      string
	LogFormat     string
	Secret        string
	RateLimit     int
	ChatRateLimit int
	// AmplifierAuthRequired: false lets keyless requests from loopback reach the root
	// Amplifier paths as the default tenant (SWITCHBOARD_AMPLIFIER_AUTH_REQUIRED).
	AmplifierAuthRequired bool
	// Pprof serves the runtime's profiles at /debug/pprof/ to the operator (SWITCHBOARD_PPROF).
	Pprof         bool
	ProvidersFile string
	// SIP beyond the listen address.
	SIPTLSAddr   string
	SIPTLSCert   string
	SIPTLSKey    string
	RTPPorts     settings.PortRange
	MediaTimeout time.Duration
	Node         string
	RecordCalls  bool
	Demo         bool
	// RecordingRetention is how long a recording is kept after its call (0: kept).
	RecordingRetention time.Duration
	// CallEventRetention is how long the events a call published are kept (0: as long as
	// the call).
	CallEventRetention time.Duration
	// SIP over TCP and TLS: idle and header timeouts, connection caps (sip.Config).
	SIPTCPIdleTimeout, SIPTCPHeaderTimeout time.Duration
	SIPTCPMaxConns, SIPTCPMaxConnsPerAddr  int
	// SIPTrustedProxies and SIPOutboundProxy put the node behind SIP proxies (sip.Config).
	SIPTrustedProxies []netip.Prefix
	SIPOutboundProxy  string
	// SIPTLSCA is a PEM file of the authorities outbound SIP over TLS trusts ("": the system's).
	SIPTLSCA string
	// MaxCalls and MaxTenantCalls bound the node's concurrent calls, all transports
	// together, and each tenant's; zero is no limit.
	MaxCalls, MaxTenantCalls int
	// AllowPrivateWebhooks lets agents' tools call addresses of this machine and its
	// private networks.
	AllowPrivateWebhooks bool
	// AllowPrivateProviders lets the model and speech providers tenants configure reach
	// addresses of this machine and its private networks (the operator's own are trusted).
	AllowPrivateProviders bool
	// AllowPrivateFiles lets Amarsia's runner fetch users' files from addresses of this
	// machine and its private networks; FileMaxMiB and FileTimeout bound each fetch.
	AllowPrivateFiles bool
	FileMaxMiB        int
	FileTimeout       time.Duration
	// GatewayBodyBudgetMiB bounds the large model-request bodies the node holds at once.
	GatewayBodyBudgetMiB int
	// KnowledgeMaxUploadMiB bounds one uploaded knowledge document.
	KnowledgeMaxUploadMiB int
	// WebRTC configures browsers' calls.
	WebRTC WebRTC
	// MetricsToken and MetricsAllow open /metrics beyond loopback: to a scraper that
	// presents the token as a bearer, or to one whose address is in the networks.
	MetricsToken string
	MetricsAllow []netip.Prefix
	// Tracing is OpenTelemetry's OTLP/HTTP export, from the standard OTEL_* variables;
	// off without an endpoint.
	Tracing telemetry.Config

	// NodeHeartbeat is how often the node beats; NodeTimeout, how long another node may be
	// silent before its calls are failed (node-lost).
	NodeHeartbeat, NodeTimeout time.Duration
	// DrainTimeout is how long a stopping node lets its calls end on their own, taking no
	// new ones, before it ends those left.
	DrainTimeout time.Duration

	// Call webhooks: attempts of a delivery, the wait after its first failure (doubled
	// after each further one), and the bound of one attempt.
	WebhookMaxAttempts             int
	WebhookBackoff, WebhookTimeout time.Duration
}

// Settings of the node, each a flag and a variable (internal/settings; README's
// configuration table lists the same). A value that does not parse stops the command, exit
// status 2, naming both.

// StoreSettings are the settings of every command that opens the store.
func (c *Config) StoreSettings(s *settings.Set) {
	s.Text(&c.DataDir, "data-dir", "SWITCHBOARD_DATA_DIR", "./data", "directory of the embedded database and the server secret", nil)
	s.Text(&c.DatabaseURL, "database-url", "DATABASE_URL", "", "postgres://… for PostgreSQL; empty for SQLite in the data directory", nil)
	s.Text(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error", checkLogLevel)
	s.Text(&c.LogFormat, "log-format", "LOG_FORMAT", "text", "text or json", settings.OneOf("text", "json"))
	s.Secret(&c.Secret, "secret", "SWITCHBOARD_SECRET", "server secret for tokens and sealed credentials, at least 16 characters; nodes sharing a database need the same one (default: generated into the data directory)", MinSecretLen)
}

// MinSecretLen is the shortest server secret a node accepts.
const MinSecretLen = 16

func checkLogLevel(v string) error {
	var level slog.Level
	if level.UnmarshalText([]byte(v)) != nil {
		return errors.New("must be debug, info, warn or error")
	}
	return nil
}

// ServeSettings are the settings of serve.
func (c *Config) ServeSettings(s *settings.Set) {
	c.StoreSettings(s)
	const noMax = settings.NoMax
	s.Text(&c.HTTPAddr, "http-addr", "SWITCHBOARD_HTTP_ADDR", ":8080", "HTTP listen address", nil)
	s.Text(&c.SIPAddr, "sip-addr", "SWITCHBOARD_SIP_ADDR", ":5060", "SIP listen address, UDP and TCP", nil)
	s.Text(&c.PublicIP, "public-ip", "SWITCHBOARD_PUBLIC_IP", "", "address advertised in SIP and SDP when behind NAT", nil)
	s.Text(&c.ProvidersFile, "providers-file", "SWITCHBOARD_PROVIDERS_FILE", "", "YAML file of model providers for the gateway", nil)
	s.Bool(&c.AllowPrivateWebhooks, "allow-private-webhooks", "SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS", false, "let agents' tool webhooks and call webhooks reach loopback and private addresses")
	s.Bool(&c.AllowPrivateProviders, "allow-private-providers", "SWITCHBOARD_ALLOW_PRIVATE_PROVIDERS", false, "let tenants' model and speech providers reach loopback and private addresses")
	s.Bool(&c.AllowPrivateFiles, "allow-private-files", "SWITCHBOARD_ALLOW_PRIVATE_FILES", false, "let the runner fetch file_uri parts from loopback and private addresses")
	s.Int(&c.FileMaxMiB, "file-max-mib", "SWITCHBOARD_FILE_MAX_MIB", 20, 0, noMax, "largest file the runner fetches for a file_uri part, in MiB")
	s.Duration(&c.FileTimeout, "file-timeout", "SWITCHBOARD_FILE_TIMEOUT", 30*time.Second, "longest the runner spends fetching one file_uri part")
	s.Int(&c.GatewayBodyBudgetMiB, "gateway-body-budget-mib", "SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB", 64, 1, noMax, "MiB of model-request bodies that the gateway holds at once; past it, 503 with Retry-After")
	s.Text(&c.SIPTLSAddr, "sip-tls-addr", "SWITCHBOARD_SIP_TLS_ADDR", ":5061", "SIP over TLS listen address, used when a certificate is set", nil)
	s.Text(&c.SIPTLSCert, "sip-tls-cert", "SWITCHBOARD_SIP_TLS_CERT", "", "PEM certificate file for SIP over TLS", nil)
	s.Text(&c.SIPTLSKey, "sip-tls-key", "SWITCHBOARD_SIP_TLS_KEY", "", "PEM key file of the SIP certificate", nil)
	// RTP takes even ports and RTCP the next: four ports are the fewest that carry two calls.
	s.Ports(&c.RTPPorts, "rtp-ports", "SWITCHBOARD_RTP_PORTS", 4, "UDP port range of calls' media, such as 10000-20000 (default: any free port)")
	s.Duration(&c.SIPTCPIdleTimeout, "sip-tcp-idle-timeout", "SWITCHBOARD_SIP_TCP_IDLE_TIMEOUT", 150*time.Second, "close a SIP TCP/TLS connection silent this long, keep-alives included, unless a live call came over it")
	s.Duration(&c.SIPTCPHeaderTimeout, "sip-tcp-header-timeout", "SWITCHBOARD_SIP_TCP_HEADER_TIMEOUT", 10*time.Second, "close a SIP TCP/TLS connection whose message is not whole this long after its first byte, or whose first message (with the TLS handshake) this long after it was accepted")
	s.Int(&c.SIPTCPMaxConns, "sip-tcp-max-conns", "SWITCHBOARD_SIP_TCP_MAX_CONNS", 4096, 0, noMax, "SIP TCP and TLS connections of the node; more are closed at once")
	s.Int(&c.SIPTCPMaxConnsPerAddr, "sip-tcp-max-conns-per-addr", "SWITCHBOARD_SIP_TCP_MAX_CONNS_PER_ADDR", 256, 0, noMax, "SIP TCP and TLS connections from one address; more are closed at once")
	s.Networks(&c.SIPTrustedProxies, "sip-trusted-proxies", "SWITCHBOARD_SIP_TRUSTED_PROXIES", "SIP proxies in front of the node (CIDR or addresses, comma-separated) whose X-Switchboard-Source header names the caller's address")
	s.Text(&c.SIPTLSCA, "sip-tls-ca", "SWITCHBOARD_SIP_TLS_CA", "", "PEM file of the certificate authorities outbound SIP over TLS trusts (a PBX or carrier with a private authority); empty: the system's", nil)
	s.Text(&c.SIPOutboundProxy, "sip-outbound-proxy", "SWITCHBOARD_SIP_OUTBOUND_PROXY", "", "SIP URI of the proxy outbound calls go through (sip:10.0.0.5:5060); empty: straight to the callee", sip.CheckOutboundProxy)
	s.Duration(&c.MediaTimeout, "media-timeout", "SWITCHBOARD_MEDIA_TIMEOUT", 30*time.Second, "a call whose RTP stops for this long is ended")
	s.Bool(&c.RecordCalls, "record-calls", "SWITCHBOARD_RECORD_CALLS", false, "record every answered call as a stereo WAV under the data directory's recordings/")
	s.Duration(&c.RecordingRetention, "recording-retention", "SWITCHBOARD_RECORDING_RETENTION", 0, "delete a call's recording this long after the call ended, such as 720h (0: keep; an agent's recording.retention_days wins)")
	s.Duration(&c.CallEventRetention, "call-event-retention", "SWITCHBOARD_CALL_EVENT_RETENTION", 0, "delete the events a call published (its history at /api/v1/calls/{id}/events) this long after they happened, such as 2160h (0: keep them as long as the call)")
	s.Bool(&c.Demo, "demo", "SWITCHBOARD_DEMO", true, "create the demo agent (sip:demo@…) on first start")
	host, _ := os.Hostname()
	s.Text(&c.Node, "node", "SWITCHBOARD_NODE", host, "this node's name in call records; a restart fails the calls it carried (default: the host name)", nil)
	s.Duration(&c.NodeHeartbeat, "node-heartbeat", "SWITCHBOARD_NODE_HEARTBEAT", store.DefaultHeartbeatEvery, "how often the node writes its heartbeat")
	s.Duration(&c.NodeTimeout, "node-timeout", "SWITCHBOARD_NODE_TIMEOUT", store.DefaultHeartbeatTimeout, "a node whose heartbeat stops this long is lost: another node fails its live calls, node-lost (at least twice the heartbeat)")
	s.Duration(&c.DrainTimeout, "drain-timeout", "SWITCHBOARD_DRAIN_TIMEOUT", 0, "on SIGTERM, how long the node takes no new calls (SIP 503, OPTIONS 503, /health/ready draining) and lets its calls end on their own before it ends the rest (0: end them at once)")
	s.Int(&c.MaxCalls, "max-calls", "SWITCHBOARD_MAX_CALLS", 2000, 0, noMax, "concurrent calls of the node, SIP, WebRTC and media streams together; more are refused (0: no limit)")
	s.Int(&c.MaxTenantCalls, "max-calls-per-tenant", "SWITCHBOARD_MAX_CALLS_PER_TENANT", 0, 0, noMax, "concurrent calls of any one tenant on the node (0: only the node's limit)")
	s.Int(&c.RateLimit, "rate-limit", "SWITCHBOARD_RATE_LIMIT", 100, 0, noMax, "requests a minute for an API key without a limit of its own")
	s.Bool(&c.AmplifierAuthRequired, "amplifier-auth-required", "SWITCHBOARD_AMPLIFIER_AUTH_REQUIRED", true, "false: keyless requests from loopback (never from elsewhere, nor through a proxy) reach the root Amplifier paths as the default tenant's admin")
	s.Int(&c.KnowledgeMaxUploadMiB, "knowledge-max-upload-mib", "SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB", 32, 1, noMax, "MiB of one uploaded knowledge document; larger uploads are refused with 413")
	s.Int(&c.ChatRateLimit, "chat-rate-limit", "SWITCHBOARD_CHAT_RATE_LIMIT", 60, 0, noMax, "Alumia chat requests (POST /api/v1/chat) a minute, per key or user and per client address")
	s.Secret(&c.MetricsToken, "metrics-token", "SWITCHBOARD_METRICS_TOKEN", "bearer token that opens /metrics to a scraper off this host, at least 16 characters (/metrics is always open on loopback)", MinSecretLen)
	s.Networks(&c.MetricsAllow, "metrics-allow", "SWITCHBOARD_METRICS_ALLOW", "networks (CIDR) and addresses, comma-separated, whose scrapers reach /metrics without the token")
	s.Bool(&c.Pprof, "pprof", "SWITCHBOARD_PPROF", false, "serve the Go runtime's profiles at /debug/pprof/ to the operator (an admin key of the default tenant)")
	c.tracingSettings(s)
	c.WebRTC.settings(s)
	c.webhookSettings(s)
}

func (c *Config) webhookSettings(s *settings.Set) {
	s.Int(&c.WebhookMaxAttempts, "webhook-max-attempts", "SWITCHBOARD_WEBHOOK_MAX_ATTEMPTS", webhook.DefaultMaxAttempts, 1, 100, "attempts of a call webhook's delivery before it is failed")
	s.Duration(&c.WebhookBackoff, "webhook-backoff", "SWITCHBOARD_WEBHOOK_BACKOFF", webhook.DefaultBackoff, "wait after a call webhook's first failed attempt, doubled after each further one (at most an hour) and jittered")
	s.Duration(&c.WebhookTimeout, "webhook-timeout", "SWITCHBOARD_WEBHOOK_TIMEOUT", webhook.DefaultTimeout, "longest one attempt to post a call webhook may take, answer included")
}

// CallWebhooks are the options of the node's call webhooks; they reach private addresses
// when agents' tool webhooks may (SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS).
func (c *Config) CallWebhooks() webhook.Options {
	return webhook.Options{AllowPrivate: c.AllowPrivateWebhooks, MaxAttempts: c.WebhookMaxAttempts, Backoff: c.WebhookBackoff, Timeout: c.WebhookTimeout}
}

// tracingSettings are OpenTelemetry's standard variables, each with a flag like every
// setting; tracing is off unless an endpoint is set.
func (c *Config) tracingSettings(s *settings.Set) {
	t := &c.Tracing
	endpoint := func(v string) error {
		if v == "" {
			return nil
		}
		return telemetry.CheckEndpoint(v)
	}
	s.Text(&t.Endpoint, "otel-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "", "OTLP/HTTP collector base URL; traces go to its /v1/traces (empty: no tracing)", endpoint)
	s.Text(&t.TracesEndpoint, "otel-traces-endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", "OTLP/HTTP URL of traces, used as given; wins over --otel-endpoint", endpoint)
	s.SecretOf(&t.Headers, "otel-headers", "OTEL_EXPORTER_OTLP_HEADERS", "headers of every export, key=value pairs, comma-separated, values URL-encoded", func(v string) error {
		if _, err := telemetry.ParseHeaders(v); err != nil {
			return errors.New("must be key=value pairs, comma-separated, values URL-encoded")
		}
		return nil
	})
	s.Text(&t.ServiceName, "otel-service-name", "OTEL_SERVICE_NAME", "switchboard", "service.name of the node's spans", nil)
	s.Text(&t.Sampler, "otel-traces-sampler", "OTEL_TRACES_SAMPLER", "parentbased_always_on", "which traces are kept: "+strings.Join(telemetry.Samplers, ", "), settings.OneOf(telemetry.Samplers...))
	s.Text(&t.SamplerArg, "otel-traces-sampler-arg", "OTEL_TRACES_SAMPLER_ARG", "", "the ratio of traces kept by the traceidratio samplers, from 0 to 1 (default 1)", func(v string) error {
		if v == "" {
			return nil
		}
		if _, err := telemetry.NewSampler("traceidratio", v); err != nil {
			return errors.New("must be a ratio from 0 to 1")
		}
		return nil
	})
}

// WebRTC configures the node's WebRTC peers.
type WebRTC struct {
	Enabled         bool
	ICEServers      string
	Ports           settings.PortRange
	UDPPort         int
	ConnectTimeout  time.Duration
	Disconnected    time.Duration
	Failed          time.Duration
	IncludeLoopback bool
}

func (f *WebRTC) settings(s *settings.Set) {
	s.Bool(&f.Enabled, "webrtc", "SWITCHBOARD_WEBRTC", true, "answer browsers' calls over WebRTC at /api/v1/webrtc/sessions")
	s.Text(&f.ICEServers, "ice-servers", "SWITCHBOARD_ICE_SERVERS", "", "STUN/TURN servers handed to browsers: a JSON array of RTCIceServer, or a comma list of stun:/turn: URLs", func(v string) error {
		_, err := rtc.ParseICEServers(v)
		return err
	})
	s.Ports(&f.Ports, "webrtc-ports", "SWITCHBOARD_WEBRTC_PORTS", 1, "UDP port range of WebRTC's ICE, such as 20000-30000 (default: any free port)")
	s.Int(&f.UDPPort, "webrtc-udp-port", "SWITCHBOARD_WEBRTC_UDP_PORT", 0, 0, 65535, "one UDP port for every WebRTC call's ICE, instead of a port per call (0: none)")
	s.Duration(&f.ConnectTimeout, "ice-connect-timeout", "SWITCHBOARD_ICE_CONNECT_TIMEOUT", rtc.DefaultICEConnectTimeout, "a WebRTC call whose ICE has not connected by then ends as ice-failed")
	s.Duration(&f.Disconnected, "ice-disconnected-timeout", "SWITCHBOARD_ICE_DISCONNECTED_TIMEOUT", rtc.DefaultICEDisconnectedTimeout, "silence after which a browser's ICE is disconnected")
	s.Duration(&f.Failed, "ice-failed-timeout", "SWITCHBOARD_ICE_FAILED_TIMEOUT", rtc.DefaultICEFailedTimeout, "further silence after which it failed and the call ends as peer-disconnected")
	s.Bool(&f.IncludeLoopback, "webrtc-loopback", "SWITCHBOARD_WEBRTC_LOOPBACK", false, "offer loopback ICE candidates too, for browsers on this host")
}

// Config turns the settings into the peers' configuration.
func (f *WebRTC) Config(publicIP string, log *slog.Logger) (rtc.Config, error) {
	cfg := rtc.Config{UDPPort: f.UDPPort, ConnectTimeout: f.ConnectTimeout, DisconnectedTimeout: f.Disconnected,
		FailedTimeout: f.Failed, IncludeLoopback: f.IncludeLoopback, Log: log,
		PortMin: uint16(f.Ports.Min), PortMax: uint16(f.Ports.Max)}
	var err error
	if cfg.ICEServers, err = rtc.ParseICEServers(f.ICEServers); err != nil {
		return cfg, fmt.Errorf("SWITCHBOARD_ICE_SERVERS: %w", err)
	}
	if publicIP != "" {
		cfg.PublicIPs = []string{publicIP}
	}
	return cfg, nil
}

// Parse reads a command's settings from args and the environment (lookupEnv: os.LookupEnv;
// tests pass their own) into a Config, every value checked; register names the settings
// (StoreSettings, ServeSettings), and the command's own flags are on fs already. A value
// refused, or a command line fs cannot parse, is a settings.UsageError.
func Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool), register func(*Config, *settings.Set)) (*Config, error) {
	c := new(Config)
	s := settings.New(fs, lookupEnv)
	register(c, s)
	if err := s.Parse(args); err != nil {
		return nil, settings.UsageError{Err: err}
	}
	return c, nil
}

// Serve reads the settings of serve, and refuses those that are each good but cannot go
// together.
func Serve(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) (*Config, error) {
	c, err := Parse(fs, args, lookupEnv, (*Config).ServeSettings)
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, settings.UsageError{Err: fmt.Errorf("serve takes flags only, not %q", fs.Arg(0))}
	}
	// An upload is held within the body budget, less the part kept for small bodies (a
	// sixteenth, at most 4 MiB): a limit past that would answer the largest uploads 503,
	// "retry shortly", for ever.
	if budget := c.GatewayBodyBudgetMiB<<20 - min(c.GatewayBodyBudgetMiB<<20/16, 4<<20); c.KnowledgeMaxUploadMiB<<20+64<<10 > budget {
		err := fmt.Errorf("--knowledge-max-upload-mib %d does not fit in --gateway-body-budget-mib %d, which holds uploads too (SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB, SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB): raise the budget past %d MiB or lower the upload limit",
			c.KnowledgeMaxUploadMiB, c.GatewayBodyBudgetMiB, c.KnowledgeMaxUploadMiB+c.KnowledgeMaxUploadMiB/15+1)
		return nil, settings.UsageError{Err: err}
	}
	return c, nil
}

// Logger builds the process logger from LOG_LEVEL and LOG_FORMAT, which the settings
// checked.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	// A line logged in a traced request or call carries its trace_id and span_id.
	if strings.EqualFold(c.LogFormat, "json") {
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts)))
}

// ReadSecret returns the server secret: SWITCHBOARD_SECRET, or the one kept in the data
// directory, made on first use. A command reads it once and hands it on.
func (c *Config) ReadSecret() ([]byte, error) {
	if c.Secret != "" {
		return []byte(c.Secret), nil // its length was checked with the other settings
	}
	path := filepath.Join(c.DataDir, "secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("%s is shorter than %d characters", path, MinSecretLen)
		}
		return []byte(s), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return nil, err
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return c.ReadSecret() // another process made it first
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(s + "\n"); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// OpenStore opens and migrates the database the settings name, with the server secret the
// command read once, and makes sure the default tenant exists.
func (c *Config) OpenStore(ctx context.Context, secret []byte, log *slog.Logger) (*store.Store, *store.Tenant, error) {
	st, err := store.Open(ctx, store.Options{URL: c.DatabaseURL, DataDir: c.DataDir, Secret: secret, Log: log, CallEventRetention: c.CallEventRetention})
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
