package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/switchboard-go/switchboard/media"
)

const (
	// eventPT is the telephone-event payload type we offer.
	eventPT = 101
	// sentOnsets is how many of its latest sent onsets a call remembers for matching.
	sentOnsets = 64
	// onsetSlack is how much sooner than the echo delay an onset may come back and still
	// match: the echo measures its delay from a packet's arrival, we from its sending.
	onsetSlack = 40 * time.Millisecond
	// byeTimeout bounds the BYE of a call.
	byeTimeout = 5 * time.Second
)

// callResult is what one call measured.
type callResult struct {
	answered bool
	// failure is why an unanswered call failed: its SIP status, "timeout" or "error".
	failure     string
	setup       time.Duration
	remoteBye   bool
	byeFailed   bool
	sent        int64
	received    int64 // RTP packets of the agreed codec
	stats       media.ReceiverSnapshot
	roundTrips  []time.Duration
	heardOnsets int
	// turns are the voice-to-voice times of the caller's turns (Config.Turns).
	turns []time.Duration
}

// call is one call. Its owner is the goroutine in generator.call, which places it, waits
// for its audio to be sent and hangs up. The sending fields belong to the call's pacer
// between pacer.add and the close of sent; the receiving fields to readLoop until it
// returns. They share only atomics.
type call struct {
	conn   *net.UDPConn
	remote netip.AddrPort
	pat    *pattern
	epoch  time.Time
	echo   time.Duration

	// Owner → pacer.
	stop atomic.Bool
	// Pacer → owner: closed when the pacer lets go of the call.
	sent chan struct{}
	// Pacer → receiver: when each of the latest onsets was sent, in ns since epoch (0: none).
	onsetAt [sentOnsets]atomic.Int64
	onsetN  atomic.Uint64
	txCount atomic.Int64
	// Pacer → receiver, with Config.Turns: when the last caller's turn not yet answered
	// ended, in ns since epoch (0: none).
	turnAt atomic.Int64
	turns  bool

	// Pacer's.
	pz     *media.Packetizer
	out    []byte
	start  time.Time
	frame  int // frames sent or skipped
	frames int // frames to send in all

	// Receiver's.
	rx receiver
}

// receiver is the receiving half of a call: statistics and the onset detector.
type receiver struct {
	pt         uint8
	stats      *media.ReceiverStats
	decode     decodeFunc
	det        onsetDetector
	lastSeq    uint16
	haveSeq    bool
	packets    int64
	onsets     int
	roundTrips []time.Duration
	turns      []time.Duration
	pkt        rtp.Packet
	pcm        [maxRxSamples]int16
}

// pace sends the frames of c due at tick and says how late the first of them went, and
// whether the call has frames left. It runs on the pacer's goroutine.
func (c *call) pace(tick time.Time, p *pacer) (time.Duration, bool) {
	if c.stop.Load() {
		return 0, false
	}
	if c.start.IsZero() {
		c.start = tick
	}
	// Ticks come a little early or late; counting from half a frame before each one keeps
	// that from sending two frames in one tick and none in the next.
	due := min(int((tick.Sub(c.start)+media.FrameDuration/2)/media.FrameDuration)+1, c.frames)
	if behind := due - c.frame; behind > maxBurst {
		skip := behind - maxBurst
		c.pz.Skip(skip)
		c.frame += skip
		p.skipped.Add(int64(skip))
	}
	var lag time.Duration
	if c.frame < due {
		now := time.Now()
		lag = now.Sub(c.start.Add(time.Duration(c.frame) * media.FrameDuration))
		for ; c.frame < due; c.frame++ {
			if due-c.frame > 1 { // overdue by a frame or more
				p.late.Add(1)
			}
			c.send(now)
		}
	}
	return lag, c.frame < c.frames
}

// send sends frame c.frame of the pattern, sent at about now.
func (c *call) send(now time.Time) {
	k := c.frame % len(c.pat.payloads)
	n, err := c.pz.Packetize(c.out, c.pat.payloads[k])
	if err != nil {
		return
	}
	if _, err := c.conn.WriteToUDPAddrPort(c.out[:n], c.remote); err != nil {
		return // closed, or the far end's port is not there: the loss shows in the report
	}
	c.txCount.Add(1)
	if off := c.pat.turnEnds[k]; c.turns && off >= 0 {
		c.turnAt.Store(int64(time.Since(c.epoch) + time.Duration(off)*time.Second/detectRate))
	}
	if off := c.pat.onsets[k]; off >= 0 {
		at := time.Since(c.epoch) + time.Duration(off)*time.Second/detectRate
		i := c.onsetN.Add(1) - 1
		c.onsetAt[i%sentOnsets].Store(int64(at))
	}
}

// readLoop receives the call's RTP until the socket is closed.
func (c *call) readLoop() {
	var buf [1500]byte
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable reported on the socket
		}
		c.receive(buf[:n], time.Now())
	}
}

// receive accounts for one datagram that arrived at at.
func (c *call) receive(b []byte, at time.Time) {
	r := &c.rx
	if media.ParseRTP(&r.pkt, b) != nil || r.pkt.PayloadType != r.pt {
		return
	}
	r.packets++
	r.stats.Update(r.pkt.SSRC, r.pkt.SequenceNumber, r.pkt.Timestamp, at)
	// The detector hears packets in order; late ones are counted, not heard.
	seq := r.pkt.SequenceNumber
	if r.haveSeq && int16(seq-r.lastSeq) <= 0 {
		return
	}
	r.lastSeq, r.haveSeq = seq, true
	n, err := r.decode(r.pcm[:], r.pkt.Payload)
	if err != nil {
		return
	}
	off := r.det.frame(r.pcm[:n])
	if off < 0 {
		return
	}
	r.onsets++
	heard := at.Sub(c.epoch) + time.Duration(off)*time.Second/detectRate
	if t := c.turnAt.Load(); t != 0 && heard > time.Duration(t) && c.turnAt.CompareAndSwap(t, 0) {
		r.turns = append(r.turns, heard-time.Duration(t))
	}
	if rt, ok := c.match(heard); ok && len(r.roundTrips) < cap(r.roundTrips) {
		r.roundTrips = append(r.roundTrips, rt)
	}
}

// match finds the sent onset that an onset heard at heard echoes: the latest one sent at
// least the echo delay (less a little slack) before, if less than the pattern's spacing
// before that.
func (c *call) match(heard time.Duration) (time.Duration, bool) {
	earliest := c.echo - onsetSlack
	best, found := time.Duration(0), false
	for i := range c.onsetAt {
		s := c.onsetAt[i].Load()
		if s == 0 {
			continue
		}
		rt := heard - time.Duration(s)
		if rt >= earliest && (!found || rt < best) {
			best, found = rt, true
		}
	}
	if !found || best >= earliest+c.pat.spacing {
		return 0, false
	}
	return best, true
}

// call places call i and returns what it measured.
func (g *generator) call(ctx context.Context, i int) callResult {
	var res callResult
	log := g.cfg.Log.With("call", i)
	network := "udp4"
	if g.localIP.Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(g.localIP, 0)))
	if err != nil {
		log.Warn("rtp socket", "error", err)
		res.failure = "error"
		return res
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port

	req := sip.NewRequest(sip.INVITE, *g.target.Clone())
	req.SetBody(offerSDP(g.localIP, port, g.pattern.codec))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	// A Contact of the call's own: sipgo fills in the port of the one it adds, which the
	// dialog cache shares between calls.
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "load", Host: g.localIP.String()}})
	req.SetTransport(strings.ToUpper(g.cfg.Transport))
	req.Laddr = sip.Addr{IP: net.IP(g.localIP.AsSlice())}

	began := time.Now()
	dlg, failure := g.invite(ctx, req)
	if dlg == nil {
		res.failure = failure
		log.Info("call failed", "reason", failure)
		return res
	}
	defer dlg.Close()
	res.setup = time.Since(began)

	hangup := func() {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), byeTimeout)
		defer cancel()
		if err := dlg.Bye(bctx); err != nil {
			res.byeFailed = true
			log.Info("bye failed", "error", err)
		}
	}
	remote, pt, err := parseAnswer(dlg.InviteResponse.Body(), g.pattern.codec)
	if err != nil {
		log.Warn("answer", "error", err)
		_ = dlg.Ack(ctx)
		hangup()
		g.failed.Add(1)
		res.failure = "bad-answer"
		return res
	}
	res.answered = true
	g.answered.Add(1)
	if err := dlg.Ack(ctx); err != nil {
		log.Warn("ack failed", "error", err)
	}

	c := &call{
		conn: conn, remote: remote, pat: g.pattern, epoch: g.epoch, echo: g.cfg.EchoDelay, turns: g.cfg.Turns,
		sent:   make(chan struct{}),
		pz:     media.NewPacketizer(pt, g.pattern.codec.clockRate, 0),
		out:    make([]byte, 12+g.pattern.maxPayload),
		frames: int((g.cfg.Duration + media.FrameDuration - 1) / media.FrameDuration),
	}
	decode, err := newDecoder(g.pattern.codec)
	if err != nil {
		log.Warn("decoder", "error", err)
		hangup()
		return res
	}
	c.rx = receiver{
		pt: pt, stats: media.NewReceiverStats(g.pattern.codec.clockRate), decode: decode, det: newOnsetDetector(),
		roundTrips: make([]time.Duration, 0, int(g.cfg.Duration/g.pattern.spacing)+2),
	}
	var reading sync.WaitGroup
	reading.Add(1)
	go func() { defer reading.Done(); c.readLoop() }()

	g.pacers[i%len(g.pacers)].add(c)
	hungUp := dlg.Context().Done()
	select {
	case <-c.sent:
		// Let the last of the audio come back before hanging up.
		tail := time.NewTimer(g.cfg.EchoDelay + 250*time.Millisecond)
		select {
		case <-tail.C:
		case <-hungUp:
		case <-ctx.Done():
		}
		tail.Stop()
	case <-hungUp:
	case <-ctx.Done():
	}
	c.stop.Store(true)
	<-c.sent
	select {
	case <-hungUp:
		res.remoteBye = true
		log.Info("far end hung up")
	default:
		hangup()
	}
	_ = conn.Close()
	reading.Wait()

	res.sent = c.txCount.Load()
	res.received = c.rx.packets
	res.stats = c.rx.stats.Snapshot()
	res.roundTrips = c.rx.roundTrips
	res.heardOnsets = c.rx.onsets
	res.turns = c.rx.turns
	return res
}

// invite sends req and waits for the final response: the dialog when answered, or why not.
func (g *generator) invite(ctx context.Context, req *sip.Request) (*sipgo.DialogClientSession, string) {
	dlg, err := g.dialogs.WriteInvite(ctx, req)
	if err != nil {
		g.failed.Add(1)
		return nil, "error"
	}
	// On timeout, a call that got a provisional answer is CANCELled; one that got nothing
	// is given up at once (sipgo would otherwise wait for Timer B before cancelling).
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var provisional atomic.Bool
	timer := time.AfterFunc(g.cfg.SetupTimeout, func() {
		if provisional.Load() {
			cancel(context.DeadlineExceeded)
		} else {
			cancel(sipgo.WaitAnswerForceCancelErr)
		}
	})
	defer timer.Stop()
	err = dlg.WaitAnswer(wctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.IsProvisional() && res.StatusCode > 100 {
			provisional.Store(true)
		}
		return nil
	}})
	if err == nil {
		return dlg, ""
	}
	_ = dlg.Close()
	g.failed.Add(1)
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		return nil, strconv.Itoa(de.Res.StatusCode)
	case wctx.Err() != nil && ctx.Err() == nil:
		return nil, "timeout"
	case ctx.Err() != nil:
		return nil, "interrupted"
	}
	g.cfg.Log.Debug("invite failed", "error", err)
	return nil, "error"
}

// offerSDP offers one audio stream at ip:port with codec and telephone-event.
func offerSDP(ip netip.Addr, port int, codec codecSpec) []byte {
	family := "IP4"
	if ip.Is6() {
		family = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=switchboard-load %d 1 IN %s %s\r\ns=switchboard load\r\nc=IN %s %s\r\nt=0 0\r\n",
		time.Now().UnixNano(), family, ip, family, ip)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %d %d\r\n", port, codec.pt, eventPT)
	fmt.Fprintf(&b, "a=rtpmap:%d %s\r\n", codec.pt, codec.rtpmap)
	if codec.dynamicOpus {
		fmt.Fprintf(&b, "a=fmtp:%d minptime=20;useinbandfec=0\r\n", codec.pt)
	}
	fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\na=ptime:20\r\na=sendrecv\r\n", eventPT, eventPT)
	return []byte(b.String())
}

// parseAnswer returns where the far end takes RTP and the payload type it answered for
// codec.
func parseAnswer(body []byte, codec codecSpec) (netip.AddrPort, uint8, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: %w", ErrAnswer, err)
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		conn := md.ConnectionInformation
		if conn == nil {
			conn = sd.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return netip.AddrPort{}, 0, fmt.Errorf("%w: no connection address", ErrAnswer)
		}
		ip, err := netip.ParseAddr(conn.Address.Address)
		if err != nil || md.MediaName.Port.Value > 65535 {
			return netip.AddrPort{}, 0, fmt.Errorf("%w: media address %q port %d", ErrAnswer, conn.Address.Address, md.MediaName.Port.Value)
		}
		want := strings.ToLower(codec.rtpmap)
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				continue
			}
			enc, mapped := "", false
			for _, a := range md.Attributes {
				if a.Key == "rtpmap" && strings.HasPrefix(a.Value, f+" ") {
					enc, mapped = strings.ToLower(strings.TrimSpace(a.Value[len(f)+1:])), true
				}
			}
			switch {
			case mapped && (enc == want || strings.TrimSuffix(enc, "/1") == want || (codec.dynamicOpus && strings.HasPrefix(enc, "opus/48000"))):
			case !mapped && uint8(pt) == codec.pt && !codec.dynamicOpus:
			default:
				continue
			}
			return netip.AddrPortFrom(ip.Unmap(), uint16(md.MediaName.Port.Value)), uint8(pt), nil
		}
		return netip.AddrPort{}, 0, fmt.Errorf("%w: %s not in the answer's formats %v", ErrAnswer, codec.rtpmap, md.MediaName.Formats)
	}
	return netip.AddrPort{}, 0, fmt.Errorf("%w: no audio stream", ErrAnswer)
}
