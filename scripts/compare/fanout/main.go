// Command fanout measures event fan-out for scripts/compare: it opens N WebSocket subscribers
// of one topic on a server (Switchboard's events socket, or Centrifugo's JSON protocol), makes
// M changes that each publish one event, and reports delivery latency, what went missing, and
// the server process's CPU per delivery and memory per connection read from /proc.
//
// Both servers are spoken to with the same client (coder/websocket) and the same parsing, so
// that the client's share of the machine is the same for each. Every event carries a
// sequence number ("fanout_seq") whose sending time the program keeps; a delivery's latency
// is its arrival less that time, measured on one monotonic clock.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

type config struct {
	server      string // switchboard or centrifugo
	baseURL     string // http://host:port
	subscribers int
	events      int
	rate        float64
	serverPID   int
	dialConc    int
	settle      time.Duration
	wait        time.Duration

	// Switchboard: keys (a credential holds at most 1,000 streams, so subscribers are spread
	// over them) and the agent whose updates are the events.
	keys  []string
	agent string

	// Centrifugo: a connection token, the HTTP API key, the channel, and padding that makes
	// its events about as large as Switchboard's.
	token   string
	apiKey  string
	channel string
	pad     int
}

func main() {
	var c config
	var keys string
	flag.StringVar(&c.server, "server", "switchboard", "switchboard or centrifugo")
	flag.StringVar(&c.baseURL, "url", "", "server's HTTP base URL, such as http://127.0.0.1:8080")
	flag.IntVar(&c.subscribers, "subscribers", 1000, "WebSocket subscribers of the one topic")
	flag.IntVar(&c.events, "events", 100, "events to publish")
	flag.Float64Var(&c.rate, "rate", 10, "events published a second")
	flag.IntVar(&c.serverPID, "server-pid", 0, "server process, for CPU and memory from /proc (required)")
	flag.IntVar(&c.dialConc, "dial-concurrency", 32, "subscribers connecting at once")
	flag.DurationVar(&c.settle, "settle", 2*time.Second, "wait after the last subscriber is in before reading the server's memory")
	flag.DurationVar(&c.wait, "wait", 15*time.Second, "longest wait for the deliveries after the last publish")
	flag.StringVar(&keys, "keys", "", "switchboard: comma-separated API keys (1,000 subscribers a key; the first also publishes)")
	flag.StringVar(&c.agent, "agent", "", "switchboard: ID of the agent updated to publish (topic agent:ID)")
	flag.StringVar(&c.token, "token", "", "centrifugo: connection JWT")
	flag.StringVar(&c.apiKey, "api-key", "", "centrifugo: HTTP API key")
	flag.StringVar(&c.channel, "channel", "bench:fanout", "centrifugo: channel")
	flag.IntVar(&c.pad, "pad", 1014, "centrifugo: bytes of padding in each event's data")
	flag.Parse()
	if keys != "" {
		c.keys = strings.Split(keys, ",")
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, c)
	if rep != nil {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func (c *config) check() error {
	switch {
	case c.baseURL == "":
		return errors.New("-url is required")
	case c.subscribers < 1 || c.events < 1 || c.rate <= 0 || c.dialConc < 1:
		return errors.New("-subscribers, -events, -rate and -dial-concurrency must be positive")
	case c.serverPID <= 0:
		return errors.New("-server-pid is required")
	}
	c.baseURL = strings.TrimSuffix(c.baseURL, "/")
	switch c.server {
	case "switchboard":
		if len(c.keys) == 0 || c.agent == "" {
			return errors.New("switchboard needs -keys and -agent")
		}
		if need := (c.subscribers + 999) / 1000; len(c.keys) < need {
			return fmt.Errorf("%d subscribers need %d keys (1,000 streams a key), got %d", c.subscribers, need, len(c.keys))
		}
	case "centrifugo":
		if c.token == "" || c.apiKey == "" {
			return errors.New("centrifugo needs -token and -api-key")
		}
	default:
		return fmt.Errorf("-server %q: want switchboard or centrifugo", c.server)
	}
	return nil
}

// Report is what one run measured. Times in milliseconds, CPU in microseconds.
type Report struct {
	Server      string  `json:"server"`
	Subscribers int     `json:"subscribers"`
	Connected   int     `json:"connected"`
	Events      int     `json:"events"`
	Published   int     `json:"published"`
	Rate        float64 `json:"rate"`
	Expected    int64   `json:"expected_deliveries"`
	Delivered   int64   `json:"delivered"`
	Missed      int64   `json:"missed"`
	Gaps        int64   `json:"gaps"`
	Dropped     int64   `json:"subscribers_dropped"`
	// FirstDrop is why the first subscriber that the server dropped ended (a close code and
	// reason, or the read error).
	FirstDrop  string  `json:"first_drop,omitempty"`
	FrameBytes float64 `json:"mean_message_bytes"`

	Latency     Distribution `json:"delivery_ms"`
	FirstLat    Distribution `json:"first_delivery_ms"`
	PublishCall Distribution `json:"publish_request_ms"`

	ConnectSeconds     float64 `json:"connect_seconds"`
	RSSBeforeKiB       int64   `json:"server_rss_before_kib"`
	RSSConnectedKiB    int64   `json:"server_rss_connected_kib"`
	MemPerConnKiB      float64 `json:"server_kib_per_connection"`
	ServerCPUSeconds   float64 `json:"server_cpu_seconds"`
	CPUPerDeliveryUs   float64 `json:"server_cpu_us_per_delivery"`
	ClientCPUSeconds   float64 `json:"client_cpu_seconds"`
	PublishWallSeconds float64 `json:"publish_seconds"`
}

// Distribution summarises samples in milliseconds.
type Distribution struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func distribution(s []time.Duration) Distribution {
	if len(s) == 0 {
		return Distribution{}
	}
	slices.Sort(s)
	// Nearest rank, as switchboard load reports its percentiles.
	at := func(p float64) float64 {
		rank := int(math.Ceil(p / 100 * float64(len(s))))
		return ms(s[min(max(rank, 1), len(s))-1])
	}
	return Distribution{Count: len(s), P50: at(50), P99: at(99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// run is one measurement: connect, read memory, publish, wait for deliveries, read CPU.
func run(ctx context.Context, c config) (*Report, error) {
	rep := &Report{Server: c.server, Subscribers: c.subscribers, Events: c.events, Rate: c.rate}
	p := newProbe(c.events)
	var err error
	if rep.RSSBeforeKiB, err = rssKiB(c.serverPID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Connect everyone before anything is published, a few at a time.
	begin := time.Now()
	subs := make([]*subscriber, c.subscribers)
	var connectErr atomic.Pointer[error]
	sem := make(chan struct{}, c.dialConc)
	var dialing sync.WaitGroup
	for i := range subs {
		sem <- struct{}{}
		dialing.Add(1)
		go func() {
			defer func() { <-sem; dialing.Done() }()
			s, err := connect(ctx, c, i, p)
			if err != nil {
				connectErr.CompareAndSwap(nil, &err)
				return
			}
			subs[i] = s
		}()
	}
	dialing.Wait()
	rep.ConnectSeconds = time.Since(begin).Seconds()
	var reading sync.WaitGroup
	var stopOnce sync.Once
	// stopReaders ends every subscriber; their latencies are read only after.
	stopReaders := func() {
		stopOnce.Do(func() {
			cancel()
			for _, s := range subs {
				if s != nil {
					s.conn.CloseNow()
				}
			}
			reading.Wait()
		})
	}
	defer stopReaders()
	for _, s := range subs {
		if s != nil {
			rep.Connected++
			reading.Add(1)
			go func() { defer reading.Done(); s.read(ctx) }()
		}
	}
	if e := connectErr.Load(); e != nil {
		return rep, fmt.Errorf("%d of %d subscribers connected; first failure: %w", rep.Connected, c.subscribers, *e)
	}

	// Memory per connection: what the server holds once everyone is in and idle.
	select {
	case <-time.After(c.settle):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	if rep.RSSConnectedKiB, err = rssKiB(c.serverPID); err != nil {
		return rep, err
	}
	rep.MemPerConnKiB = round1(float64(rep.RSSConnectedKiB-rep.RSSBeforeKiB) / float64(c.subscribers))

	cpu0, err := processCPU(c.serverPID)
	if err != nil {
		return rep, err
	}
	self0 := selfCPU()
	pub := newPublisher(c)
	interval := time.Duration(float64(time.Second) / c.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var calls []time.Duration
	start := time.Now()
	for seq := range c.events {
		p.sent(seq)
		t0 := time.Now()
		if err := pub.publish(ctx, seq); err != nil {
			return rep, fmt.Errorf("publish %d: %w", seq, err)
		}
		calls = append(calls, time.Since(t0))
		rep.Published++
		if seq == c.events-1 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	rep.PublishWallSeconds = round3(time.Since(start).Seconds())
	rep.Expected = int64(rep.Connected) * int64(c.events)
	p.await(ctx, rep.Expected, c.wait)
	cpu1, err := processCPU(c.serverPID)
	if err != nil {
		return rep, err
	}
	rep.ClientCPUSeconds = round3((selfCPU() - self0).Seconds())
	rep.ServerCPUSeconds = round3((cpu1 - cpu0).Seconds())

	stopReaders()
	rep.Delivered = p.delivered.Load()
	rep.Missed = rep.Expected - rep.Delivered
	rep.Gaps = p.gaps.Load()
	rep.Dropped = p.dropped.Load()
	if why := p.firstDrop.Load(); why != nil {
		rep.FirstDrop = *why
	}
	if rep.Delivered > 0 {
		rep.CPUPerDeliveryUs = round3(float64((cpu1 - cpu0).Microseconds()) / float64(rep.Delivered))
		rep.FrameBytes = round1(float64(p.bytes.Load()) / float64(rep.Delivered))
	}
	var all []time.Duration
	for _, s := range subs {
		if s != nil {
			all = append(all, s.lat...)
		}
	}
	rep.Latency = distribution(all)
	rep.FirstLat = distribution(p.firsts())
	rep.PublishCall = distribution(calls)
	return rep, nil
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// probe holds the sending times of the events and counts what arrives.
type probe struct {
	epoch     time.Time
	sentAt    []atomic.Int64 // ns since epoch; 0 until sent
	firstAt   []atomic.Int64 // earliest arrival, ns since epoch
	delivered atomic.Int64
	bytes     atomic.Int64
	gaps      atomic.Int64
	dropped   atomic.Int64
	firstDrop atomic.Pointer[string]
	progress  chan struct{} // a token per delivery batch, for await
}

// drop counts a subscriber the server ended, keeping the first one's reason.
func (p *probe) drop(err error) {
	p.dropped.Add(1)
	why := err.Error()
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		why = fmt.Sprintf("close %d %q", int(ce.Code), ce.Reason)
	}
	p.firstDrop.CompareAndSwap(nil, &why)
}

func newProbe(events int) *probe {
	return &probe{epoch: time.Now(), sentAt: make([]atomic.Int64, events), firstAt: make([]atomic.Int64, events), progress: make(chan struct{}, 1)}
}

func (p *probe) now() int64 { return int64(time.Since(p.epoch)) }

func (p *probe) sent(seq int) { p.sentAt[seq].Store(p.now()) }

// arrived records one delivery of seq at now, returning its latency.
func (p *probe) arrived(seq int, now int64, size int) (time.Duration, bool) {
	if seq < 0 || seq >= len(p.sentAt) {
		return 0, false
	}
	sent := p.sentAt[seq].Load()
	if sent == 0 {
		return 0, false
	}
	for {
		f := p.firstAt[seq].Load()
		if f != 0 && f <= now || p.firstAt[seq].CompareAndSwap(f, now) {
			break
		}
	}
	p.delivered.Add(1)
	p.bytes.Add(int64(size))
	select {
	case p.progress <- struct{}{}:
	default:
	}
	return time.Duration(now - sent), true
}

// await returns when want deliveries have arrived, or nothing has arrived for wait.
func (p *probe) await(ctx context.Context, want int64, wait time.Duration) {
	quiet := time.NewTimer(wait)
	defer quiet.Stop()
	for p.delivered.Load() < want {
		select {
		case <-p.progress:
			quiet.Reset(wait)
		case <-quiet.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (p *probe) firsts() []time.Duration {
	var out []time.Duration
	for i := range p.firstAt {
		if f, s := p.firstAt[i].Load(), p.sentAt[i].Load(); f != 0 && s != 0 {
			out = append(out, time.Duration(f-s))
		}
	}
	return out
}

// seqKey marks the sequence number in both servers' events; found by a scan rather than a
// decode, so that the client spends the same on each server's messages.
var seqKey = []byte(`"fanout_seq":`)

// subscriber is one WebSocket connection and the latencies it saw.
type subscriber struct {
	server string
	conn   *websocket.Conn
	p      *probe
	lat    []time.Duration
}

func connect(ctx context.Context, c config, i int, p *probe) (*subscriber, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s := &subscriber{server: c.server, p: p, lat: make([]time.Duration, 0, c.events)}
	var err error
	switch c.server {
	case "switchboard":
		u := "ws" + strings.TrimPrefix(c.baseURL, "http") + "/api/v1/ws"
		h := http.Header{"X-API-Key": {c.keys[i/1000]}}
		s.conn, _, err = websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			return nil, err
		}
		s.conn.SetReadLimit(1 << 20)
		sub, _ := json.Marshal(map[string]any{"type": "subscribe", "id": "1", "topics": []string{"agent:" + c.agent}})
		if err = s.conn.Write(ctx, websocket.MessageText, sub); err != nil {
			return nil, err
		}
		err = s.awaitReply(ctx, []byte(`"type":"ack"`), []byte(`"type":"error"`))
	case "centrifugo":
		u := "ws" + strings.TrimPrefix(c.baseURL, "http") + "/connection/websocket"
		s.conn, _, err = websocket.Dial(ctx, u, nil)
		if err != nil {
			return nil, err
		}
		s.conn.SetReadLimit(1 << 20)
		conn, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": c.token, "name": "fanout"}})
		sub, _ := json.Marshal(map[string]any{"id": 2, "subscribe": map[string]any{"channel": c.channel}})
		// Centrifugo's JSON protocol takes several commands in one message, a line each.
		if err = s.conn.Write(ctx, websocket.MessageText, slices.Concat(conn, []byte("\n"), sub)); err != nil {
			return nil, err
		}
		err = s.awaitReply(ctx, []byte(`"id":2,"subscribe"`), []byte(`"error"`))
	}
	if err != nil {
		if s.conn != nil {
			s.conn.CloseNow()
		}
		return nil, err
	}
	return s, nil
}

// awaitReply reads until a message holding ok, failing on one holding bad.
func (s *subscriber) awaitReply(ctx context.Context, ok, bad []byte) error {
	for {
		_, msg, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		if bytes.Contains(msg, bad) {
			return fmt.Errorf("refused: %s", msg)
		}
		if bytes.Contains(msg, ok) {
			return nil
		}
	}
}

// read takes deliveries until the connection ends. Centrifugo pings with an empty command,
// which must be answered with one.
func (s *subscriber) read(ctx context.Context) {
	var seqs []int
	for {
		_, r, err := s.conn.Reader(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.p.drop(err)
			}
			return
		}
		msg, err := io.ReadAll(r)
		if err != nil {
			if ctx.Err() == nil {
				s.p.drop(err)
			}
			return
		}
		now := s.p.now()
		if s.server == "centrifugo" {
			for range pings(msg) {
				_ = s.conn.Write(ctx, websocket.MessageText, []byte("{}"))
			}
		}
		if bytes.Contains(msg, []byte(`"stream.gap"`)) {
			s.p.gaps.Add(1)
		}
		seqs = sequences(seqs[:0], msg)
		for _, seq := range seqs {
			if d, ok := s.p.arrived(seq, now, len(msg)/len(seqs)); ok {
				s.lat = append(s.lat, d)
			}
		}
	}
}

// sequences appends to dst the sequence numbers of the events in one WebSocket message:
// Switchboard sends one event a message, Centrifugo several, a line each.
func sequences(dst []int, msg []byte) []int {
	for {
		i := bytes.Index(msg, seqKey)
		if i < 0 {
			return dst
		}
		msg = msg[i+len(seqKey):]
		j := 0
		for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
			j++
		}
		if seq, err := strconv.Atoi(string(msg[:j])); err == nil {
			dst = append(dst, seq)
		}
	}
}

// pings counts Centrifugo's pings in a message: empty commands, a line each, each to be
// answered with one.
func pings(msg []byte) int {
	if !bytes.Contains(msg, []byte("{}")) {
		return 0
	}
	n := 0
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if bytes.Equal(bytes.TrimSpace(line), []byte("{}")) {
			n++
		}
	}
	return n
}

// publisher makes the change that publishes one event.
type publisher struct {
	c      config
	client *http.Client
	pad    string
}

func newPublisher(c config) *publisher {
	return &publisher{c: c, client: &http.Client{Timeout: 30 * time.Second}, pad: strings.Repeat("x", c.pad)}
}

func (p *publisher) publish(ctx context.Context, seq int) error {
	var req *http.Request
	var err error
	switch p.c.server {
	case "switchboard":
		// An agent's update is the API write whose event the subscribers watch.
		body := `{"metadata":{"fanout_seq":` + strconv.Itoa(seq) + `}}`
		req, err = http.NewRequestWithContext(ctx, http.MethodPatch, p.c.baseURL+"/api/v1/agents/"+p.c.agent, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("X-API-Key", p.c.keys[0])
	case "centrifugo":
		body := `{"channel":` + strconv.Quote(p.c.channel) + `,"data":{"fanout_seq":` + strconv.Itoa(seq) + `,"pad":"` + p.pad + `"}}`
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.c.baseURL+"/api/publish", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("X-API-Key", p.c.apiKey)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 != 2 || p.c.server == "centrifugo" && bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("%s: %s", res.Status, bytes.TrimSpace(b))
	}
	return nil
}
