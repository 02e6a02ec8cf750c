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
	ProvidersFile string
	// AllowPrivateWebhooks lets agents' tools call addresses of this machine and its
	// private networks.
	AllowPrivateWebhooks bool
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
	fs.IntVar(&c.RateLimit, "rate-limit", envInt("SWITCHBOARD_RATE_LIMIT", 100), "requests a minute for an API key without a limit of its own (SWITCHBOARD_RATE_LIMIT)")
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(env(name, fmt.Sprint(def)), &n); err != nil {
		return def
	}
	return n
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
