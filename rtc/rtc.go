// Package rtc carries browsers' calls over WebRTC: the node's pion peers, each a
// media.Stream of one Opus track each way and an "events" data channel, and the SDP offer,
// answer and trickle-ICE handling their signalling needs. It knows nothing of SIP.
package rtc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// A browser's call reaches Switchboard as an SDP offer; the node answers it
// with a pion PeerConnection that carries one Opus audio track each way and the client's
// "events" data channel, and that is a media.Stream to whatever talks on the call. The
// node gathers its host candidates (rewritten to the public address when it sits behind a
// 1:1 NAT) before it answers, so a client that never trickles still connects; clients get
// the STUN and TURN servers to gather theirs.

// Errors of WebRTC signalling.
var (
	// ErrOffer is an offer Switchboard cannot answer: not SDP, no audio, no Opus.
	ErrOffer = errors.New("webrtc: offer not acceptable")
	// ErrCandidate is a trickled ICE fragment that is not one.
	ErrCandidate = errors.New("webrtc: bad ICE candidate fragment")
	// ErrEnded is signalling for a peer whose call has ended.
	ErrEnded = errors.New("webrtc: the call has ended")
)

// Defaults of Config. A browser whose network changes notices within seconds (its own
// ICE goes disconnected, or the operating system says so), gathers on its new network and
// sends a new offer: a few seconds more. The node waits the disconnected and failed
// timeouts together, 20 s, for that offer before it ends the call, several times what a
// restart takes; a browser that is gone for good ends its call 20 s after it went silent.
const (
	DefaultICEConnectTimeout      = 20 * time.Second
	DefaultICEDisconnectedTimeout = 5 * time.Second
	DefaultICEFailedTimeout       = 15 * time.Second
	// gatherTimeout bounds the wait for the node's own candidates before it answers.
	gatherTimeout = 5 * time.Second
)

// ICEServer is a STUN or TURN server, in the shape of the browser's RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ParseICEServers reads the ICE servers of the configuration: a JSON array of
// RTCIceServer objects (`[{"urls":["turn:turn.example.com"],"username":"u","credential":"p"}]`),
// or a comma-separated list of stun:/turn:/turns: URLs without credentials.
func ParseICEServers(s string) ([]ICEServer, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var servers []ICEServer
	if strings.HasPrefix(s, "[") {
		var err error
		if servers, err = decodeICEServers(s); err != nil {
			return nil, err
		}
	} else {
		for _, u := range strings.Split(s, ",") {
			if u = strings.TrimSpace(u); u != "" {
				servers = append(servers, ICEServer{URLs: []string{u}})
			}
		}
	}
	for _, srv := range servers {
		if len(srv.URLs) == 0 {
			return nil, errors.New("an ICE server without urls")
		}
		for _, u := range srv.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				return nil, fmt.Errorf("ICE server URL %q: want a stun, stuns, turn or turns URL", u)
			}
		}
	}
	return servers, nil
}

// Config configures the node's WebRTC peers.
type Config struct {
	// ICEServers are handed to clients (GET /api/v1/webrtc/config and each session's
	// answer); the node itself gathers host candidates only.
	ICEServers []ICEServer
	// PublicIPs replace the host candidates' addresses (a node behind a 1:1 NAT, such as a
	// cloud instance with an elastic address).
	PublicIPs []string
	// PortMin and PortMax bound the UDP ports of the peers' ICE sockets; zero: any.
	PortMin, PortMax uint16
	// UDPPort, when set, carries every peer's ICE over this one UDP port instead.
	UDPPort int
	// ConnectTimeout ends a call whose ICE has not connected by then (ice-failed);
	// DisconnectedTimeout and FailedTimeout are pion's: after DisconnectedTimeout without
	// a packet a peer is disconnected, and the call waits FailedTimeout more for the
	// browser to come back or restart ICE (Peer.Renegotiate) before it ends
	// (peer-disconnected).
	ConnectTimeout, DisconnectedTimeout, FailedTimeout time.Duration
	// IncludeLoopback adds loopback host candidates (tests on a host without another
	// interface).
	IncludeLoopback bool
	Log             *slog.Logger
}

// Engine makes the node's peers. It is safe for concurrent use.
type Engine struct {
	cfg Config
	api *webrtc.API
	mux ice.UDPMux
	log *slog.Logger
}

// NewEngine sets pion up: Opus only, RTCP reports, the ICE timeouts, ports and addresses
// of cfg. Close releases the UDP port it may hold.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultICEConnectTimeout
	}
	if cfg.DisconnectedTimeout <= 0 {
		cfg.DisconnectedTimeout = DefaultICEDisconnectedTimeout
	}
	if cfg.FailedTimeout <= 0 {
		cfg.FailedTimeout = DefaultICEFailedTimeout
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: opusCapability, PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("webrtc: opus: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("webrtc: rtcp reports: %w", err)
	}

	var se webrtc.SettingEngine
	se.LoggerFactory = slogFactory{log: cfg.Log}
	se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, 2*time.Second)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if len(cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("webrtc: public address: %w", err)
		}
	}
	w := &Engine{cfg: cfg, log: cfg.Log}
	switch {
	case cfg.UDPPort > 0:
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(slogFactory{log: cfg.Log}.NewLogger("udpmux"))}
		if cfg.IncludeLoopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...)
		if err != nil {
			return nil, fmt.Errorf("webrtc: udp port %d: %w", cfg.UDPPort, err)
		}
		se.SetICEUDPMux(mux)
		w.mux = mux
	case cfg.PortMin > 0 || cfg.PortMax > 0:
		if err := se.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("webrtc: udp ports %d-%d: %w", cfg.PortMin, cfg.PortMax, err)
		}
	}
	w.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return w, nil
}

// ICEServers are the STUN and TURN servers clients should use.
func (w *Engine) ICEServers() []ICEServer {
	if w.cfg.ICEServers == nil {
		return []ICEServer{}
	}
	return w.cfg.ICEServers
}

// UDPAddr is the address of the single ICE port, when one is set.
func (w *Engine) UDPAddr() net.Addr {
	if m, ok := w.mux.(*ice.MultiUDPMuxDefault); ok {
		if addrs := m.GetListenAddresses(); len(addrs) > 0 {
			return addrs[0]
		}
	}
	return nil
}

// Close releases the node's ICE port.
func (w *Engine) Close() error {
	if w.mux != nil {
		return w.mux.Close()
	}
	return nil
}

// Answer answers a client's offer with a new peer: it checks that the offer carries Opus
// audio (an *OfferError otherwise), gathers the node's candidates and returns the peer
// whose LocalDescription is the answer. The peer lives until Hangup, its ICE failing, or
// its client closing it; ctx bounds only the answer.
func (w *Engine) Answer(ctx context.Context, offer string, log *slog.Logger) (*Peer, error) {
	if err := checkOffer(offer); err != nil {
		return nil, err
	}
	if log == nil {
		log = w.log
	}
	return newPeer(ctx, w, offer, log)
}

// decodeICEServers reads a JSON array of ICE servers whose urls is a string or a list.
func decodeICEServers(s string) ([]ICEServer, error) {
	var raw []struct {
		URLs       any    `json:"urls"`
		Username   string `json:"username"`
		Credential string `json:"credential"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("ICE servers: %w", err)
	}
	out := make([]ICEServer, 0, len(raw))
	for _, r := range raw {
		srv := ICEServer{Username: r.Username, Credential: r.Credential}
		switch u := r.URLs.(type) {
		case string:
			srv.URLs = []string{u}
		case []any:
			for _, x := range u {
				s, ok := x.(string)
				if !ok {
					return nil, errors.New("ICE servers: urls must be strings")
				}
				srv.URLs = append(srv.URLs, s)
			}
		default:
			return nil, errors.New("ICE servers: urls must be a string or a list of strings")
		}
		out = append(out, srv)
	}
	return out, nil
}
