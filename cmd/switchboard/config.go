package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// config is everything a node is told at start, from flags or the environment (flags win).
type config struct {
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
	ProvidersFile         string
	// SIP beyond the listen address.
	SIPTLSAddr   string
	SIPTLSCert   string
	SIPTLSKey    string
	RTPPorts     string
	MediaTimeout time.Duration
	Node         string
	RecordCalls  bool
	Demo         bool
	// SIP over TCP and TLS: idle and header timeouts, connection caps (sip.Config).
	SIPTCPIdleTimeout, SIPTCPHeaderTimeout time.Duration
	SIPTCPMaxConns, SIPTCPMaxConnsPerAddr  int
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
	// WebRTC configures browsers' calls (webcalls.go).
	WebRTC webrtcFlags

	// NodeHeartbeat is how often the node beats; NodeTimeout, how long another node may be
	// silent before its calls are failed (node-lost).
	NodeHeartbeat, NodeTimeout time.Duration
}

// env reads an environment variable with a default.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// register adds the flags every subcommand that opens the store shares.
func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", env("SWITCHBOARD_DATA_DIR", "./data"), "directory of the embedded database and the server secret (SWITCHBOARD_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", env("DATABASE_URL", ""), "postgres://… for PostgreSQL; empty for SQLite in the data directory (DATABASE_URL)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("LOG_FORMAT", "text"), "text or json (LOG_FORMAT)")
	fs.StringVar(&c.Secret, "secret", env("SWITCHBOARD_SECRET", ""), "server secret for tokens and sealed credentials; nodes sharing a database need the same one (SWITCHBOARD_SECRET; default: generated into the data directory)")
}

// registerServe adds the flags of serve.
func (c *config) registerServe(fs *flag.FlagSet) {
	c.register(fs)
	fs.StringVar(&c.HTTPAddr, "http-addr", env("SWITCHBOARD_HTTP_ADDR", ":8080"), "HTTP listen address (SWITCHBOARD_HTTP_ADDR)")
	fs.StringVar(&c.SIPAddr, "sip-addr", env("SWITCHBOARD_SIP_ADDR", ":5060"), "SIP listen address, UDP and TCP (SWITCHBOARD_SIP_ADDR)")
	fs.StringVar(&c.PublicIP, "public-ip", env("SWITCHBOARD_PUBLIC_IP", ""), "address advertised in SIP and SDP when behind NAT (SWITCHBOARD_PUBLIC_IP)")
	fs.StringVar(&c.ProvidersFile, "providers-file", env("SWITCHBOARD_PROVIDERS_FILE", ""), "YAML file of model providers for the gateway (SWITCHBOARD_PROVIDERS_FILE)")
	fs.BoolVar(&c.AllowPrivateWebhooks, "allow-private-webhooks", env("SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS", "") == "true", "let agents' tool webhooks reach loopback and private addresses (SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS=true)")
	fs.BoolVar(&c.AllowPrivateProviders, "allow-private-providers", env("SWITCHBOARD_ALLOW_PRIVATE_PROVIDERS", "") == "true", "let tenants' model and speech providers reach loopback and private addresses (SWITCHBOARD_ALLOW_PRIVATE_PROVIDERS=true)")
	fs.BoolVar(&c.AllowPrivateFiles, "allow-private-files", env("SWITCHBOARD_ALLOW_PRIVATE_FILES", "") == "true", "let the runner fetch file_uri parts from loopback and private addresses (SWITCHBOARD_ALLOW_PRIVATE_FILES=true)")
	fs.IntVar(&c.FileMaxMiB, "file-max-mib", envInt("SWITCHBOARD_FILE_MAX_MIB", 20), "largest file the runner fetches for a file_uri part, in MiB (SWITCHBOARD_FILE_MAX_MIB)")
	fs.DurationVar(&c.FileTimeout, "file-timeout", envDuration("SWITCHBOARD_FILE_TIMEOUT", 30*time.Second), "longest the runner spends fetching one file_uri part (SWITCHBOARD_FILE_TIMEOUT)")
	fs.IntVar(&c.GatewayBodyBudgetMiB, "gateway-body-budget-mib", envInt("SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB", 64), "MiB of model-request bodies that the gateway holds at once; past it, 503 with Retry-After (SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB)")
	fs.StringVar(&c.SIPTLSAddr, "sip-tls-addr", env("SWITCHBOARD_SIP_TLS_ADDR", ":5061"), "SIP over TLS listen address, used when a certificate is set (SWITCHBOARD_SIP_TLS_ADDR)")
	fs.StringVar(&c.SIPTLSCert, "sip-tls-cert", env("SWITCHBOARD_SIP_TLS_CERT", ""), "PEM certificate file for SIP over TLS (SWITCHBOARD_SIP_TLS_CERT)")
	fs.StringVar(&c.SIPTLSKey, "sip-tls-key", env("SWITCHBOARD_SIP_TLS_KEY", ""), "PEM key file of the SIP certificate (SWITCHBOARD_SIP_TLS_KEY)")
	fs.StringVar(&c.RTPPorts, "rtp-ports", env("SWITCHBOARD_RTP_PORTS", ""), "UDP port range of calls' media, such as 10000-20000 (SWITCHBOARD_RTP_PORTS; default: any free port)")
	fs.DurationVar(&c.SIPTCPIdleTimeout, "sip-tcp-idle-timeout", envDuration("SWITCHBOARD_SIP_TCP_IDLE_TIMEOUT", 150*time.Second), "close a SIP TCP/TLS connection silent this long, keep-alives included, unless a live call came over it (SWITCHBOARD_SIP_TCP_IDLE_TIMEOUT)")
	fs.DurationVar(&c.SIPTCPHeaderTimeout, "sip-tcp-header-timeout", envDuration("SWITCHBOARD_SIP_TCP_HEADER_TIMEOUT", 10*time.Second), "close a SIP TCP/TLS connection whose message is not whole this long after its first byte, or whose first message (with the TLS handshake) this long after it was accepted (SWITCHBOARD_SIP_TCP_HEADER_TIMEOUT)")
	fs.IntVar(&c.SIPTCPMaxConns, "sip-tcp-max-conns", envInt("SWITCHBOARD_SIP_TCP_MAX_CONNS", 4096), "SIP TCP and TLS connections of the node; more are closed at once (SWITCHBOARD_SIP_TCP_MAX_CONNS)")
	fs.IntVar(&c.SIPTCPMaxConnsPerAddr, "sip-tcp-max-conns-per-addr", envInt("SWITCHBOARD_SIP_TCP_MAX_CONNS_PER_ADDR", 256), "SIP TCP and TLS connections from one address; more are closed at once (SWITCHBOARD_SIP_TCP_MAX_CONNS_PER_ADDR)")
	fs.DurationVar(&c.MediaTimeout, "media-timeout", envDuration("SWITCHBOARD_MEDIA_TIMEOUT", 30*time.Second), "a call whose RTP stops for this long is ended (SWITCHBOARD_MEDIA_TIMEOUT)")
	fs.BoolVar(&c.RecordCalls, "record-calls", env("SWITCHBOARD_RECORD_CALLS", "") == "true", "record every answered call as a stereo WAV under the data directory's recordings/ (SWITCHBOARD_RECORD_CALLS=true)")
	fs.BoolVar(&c.Demo, "demo", env("SWITCHBOARD_DEMO", "true") == "true", "create the demo agent (sip:demo@…) on first start (SWITCHBOARD_DEMO=false to skip)")
	host, _ := os.Hostname()
	fs.StringVar(&c.Node, "node", env("SWITCHBOARD_NODE", host), "this node's name in call records; a restart fails the calls it carried (SWITCHBOARD_NODE; default: the host name)")
	fs.DurationVar(&c.NodeHeartbeat, "node-heartbeat", envDuration("SWITCHBOARD_NODE_HEARTBEAT", store.DefaultHeartbeatEvery), "how often the node writes its heartbeat (SWITCHBOARD_NODE_HEARTBEAT)")
	fs.DurationVar(&c.NodeTimeout, "node-timeout", envDuration("SWITCHBOARD_NODE_TIMEOUT", store.DefaultHeartbeatTimeout), "a node whose heartbeat stops this long is lost: another node fails its live calls, node-lost (SWITCHBOARD_NODE_TIMEOUT; at least twice the heartbeat)")
	fs.IntVar(&c.MaxCalls, "max-calls", envInt("SWITCHBOARD_MAX_CALLS", 2000), "concurrent calls of the node, SIP, WebRTC and media streams together; more are refused (SWITCHBOARD_MAX_CALLS; 0: no limit)")
	fs.IntVar(&c.MaxTenantCalls, "max-calls-per-tenant", envInt("SWITCHBOARD_MAX_CALLS_PER_TENANT", 0), "concurrent calls of any one tenant on the node (SWITCHBOARD_MAX_CALLS_PER_TENANT; 0: only the node's limit)")
	fs.IntVar(&c.RateLimit, "rate-limit", envInt("SWITCHBOARD_RATE_LIMIT", 100), "requests a minute for an API key without a limit of its own (SWITCHBOARD_RATE_LIMIT)")
	fs.BoolVar(&c.AmplifierAuthRequired, "amplifier-auth-required", env("SWITCHBOARD_AMPLIFIER_AUTH_REQUIRED", "true") != "false", "false: keyless requests from loopback (never from elsewhere, nor through a proxy) reach the root Amplifier paths as the default tenant's admin (SWITCHBOARD_AMPLIFIER_AUTH_REQUIRED)")
	fs.IntVar(&c.KnowledgeMaxUploadMiB, "knowledge-max-upload-mib", envInt("SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB", 32), "MiB of one uploaded knowledge document; larger uploads are refused with 413 (SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB)")
	fs.IntVar(&c.ChatRateLimit, "chat-rate-limit", envInt("SWITCHBOARD_CHAT_RATE_LIMIT", 60), "Alumia chat requests (POST /api/v1/chat) a minute, per key or user and per client address (SWITCHBOARD_CHAT_RATE_LIMIT)")
	c.WebRTC.register(fs)
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(env(name, fmt.Sprint(def)), &n); err != nil {
		return def
	}
	return n
}

func envDuration(name string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(env(name, def.String()))
	if err != nil {
		return def
	}
	return d
}

// rtpPorts reads the RTP port range "min-max"; empty is any free port.
func (c *config) rtpPorts() (int, int, error) {
	if c.RTPPorts == "" {
		return 0, 0, nil
	}
	lo, hi, ok := strings.Cut(c.RTPPorts, "-")
	var a, b int
	if _, err := fmt.Sscan(lo, &a); !ok || err != nil {
		return 0, 0, fmt.Errorf("SWITCHBOARD_RTP_PORTS %q: want min-max, such as 10000-20000", c.RTPPorts)
	}
	if _, err := fmt.Sscan(hi, &b); err != nil || a < 1024 || b > 65535 || b-a < 3 {
		return 0, 0, fmt.Errorf("SWITCHBOARD_RTP_PORTS %q: want min-max within 1024-65535, at least 4 ports", c.RTPPorts)
	}
	return a, b, nil
}

// logger builds the process logger from LOG_LEVEL and LOG_FORMAT.
func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.LogFormat) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("LOG_FORMAT %q: want text or json", c.LogFormat)
}

// secret returns the server secret: SWITCHBOARD_SECRET, or the one kept in the data
// directory, made on first use.
func (c *config) secret() ([]byte, error) {
	if c.Secret != "" {
		if len(c.Secret) < 16 {
			return nil, errors.New("SWITCHBOARD_SECRET must be at least 16 characters")
		}
		return []byte(c.Secret), nil
	}
	path := filepath.Join(c.DataDir, "secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 16 {
			return nil, fmt.Errorf("%s is shorter than 16 characters", path)
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
		return c.secret() // another process made it first
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
