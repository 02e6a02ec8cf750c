package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/switchboard-go/switchboard/media"
)

// Media directions of RFC 3264 §5.1.
const (
	dirSendRecv = "sendrecv"
	dirSendOnly = "sendonly"
	dirRecvOnly = "recvonly"
	dirInactive = "inactive"
)

// opusPT is the payload type we offer Opus under; in an answer we take the caller's.
const opusPT = 111

// defaultEventPT is the payload type we offer telephone-event under.
const defaultEventPT = 101

// ourCodecs are the codecs we offer, in our preference order.
var ourCodecs = []media.CodecSpec{
	{Name: "PCMU", PayloadType: media.PayloadTypePCMU, ClockRate: 8000, Channels: 1},
	{Name: "PCMA", PayloadType: media.PayloadTypePCMA, ClockRate: 8000, Channels: 1},
	{Name: "opus", PayloadType: opusPT, ClockRate: 48000, Channels: 2},
}

// remoteSDP is what we take from the far end's offer or answer: its first audio stream.
type remoteSDP struct {
	// RTP is where the far end receives RTP; RTCP where it receives RTCP (zero: RTP port+1).
	RTP, RTCP netip.AddrPort
	// Codecs are the offered codecs we support, in the far end's preference order.
	Codecs []media.CodecSpec
	// EventPT is the far end's telephone-event payload type, 0 when none.
	EventPT uint8
	// Direction is the stream's direction from the far end's point of view.
	Direction string
	// Held is an RFC 2543 hold: a connection address of 0.0.0.0.
	Held bool
	// Secure is an RTP/SAVP stream: SRTP, with the keys of Crypto.
	Secure bool
	// Crypto are the stream's a=crypto lines we can use, in the far end's order (srtp.go).
	Crypto []sdesCrypto
}

// parseSDP applies RFC 3264 to the first audio stream of a session description. Errors wrap
// ErrSDP (unusable) or ErrNoCodec (nothing in common).
func parseSDP(body []byte) (remoteSDP, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return remoteSDP{}, fmt.Errorf("%w: %w", ErrSDP, err)
	}
	sessionDir := directionOf(sd.Attributes, dirSendRecv)
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		proto := strings.ToUpper(strings.Join(md.MediaName.Protos, "/"))
		if proto != "RTP/AVP" && proto != "RTP/SAVP" {
			return remoteSDP{}, fmt.Errorf("%w: audio over %q is neither RTP/AVP nor RTP/SAVP", ErrSDP, strings.Join(md.MediaName.Protos, "/"))
		}
		conn := md.ConnectionInformation
		if conn == nil {
			conn = sd.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return remoteSDP{}, fmt.Errorf("%w: no connection address", ErrSDP)
		}
		ip, err := netip.ParseAddr(conn.Address.Address)
		if err != nil {
			return remoteSDP{}, fmt.Errorf("%w: connection address %q is not an IP address", ErrSDP, conn.Address.Address)
		}
		ip = ip.Unmap()
		if ip.IsMulticast() {
			return remoteSDP{}, fmt.Errorf("%w: multicast media address %s", ErrSDP, ip)
		}
		port := md.MediaName.Port.Value
		if port <= 0 || port > 65535 {
			return remoteSDP{}, fmt.Errorf("%w: audio port %d", ErrSDP, port)
		}
		r := remoteSDP{
			RTP:       netip.AddrPortFrom(ip, uint16(port)),
			Direction: directionOf(md.Attributes, sessionDir),
			Held:      ip.IsUnspecified(),
			Secure:    proto == "RTP/SAVP",
		}
		rtpmap := map[string]string{}
		for _, a := range md.Attributes {
			switch a.Key {
			case "rtpmap":
				pt, enc, ok := strings.Cut(a.Value, " ")
				if ok {
					rtpmap[pt] = strings.ToLower(strings.TrimSpace(enc))
				}
			case "rtcp": // RFC 3605: "port [IN IP4 addr]"
				f := strings.Fields(a.Value)
				if len(f) == 0 {
					continue
				}
				p, err := strconv.Atoi(f[0])
				if err != nil || p <= 0 || p > 65535 {
					return remoteSDP{}, fmt.Errorf("%w: rtcp port %q", ErrSDP, f[0])
				}
				rip := ip
				if len(f) == 4 {
					if a, err := netip.ParseAddr(f[3]); err == nil {
						rip = a.Unmap()
					}
				}
				r.RTCP = netip.AddrPortFrom(rip, uint16(p))
			case "crypto":
				if c, ok := parseCrypto(a.Value); ok && r.Secure && len(r.Crypto) < len(srtpSuites)*4 {
					r.Crypto = append(r.Crypto, c)
				}
			}
		}
		if len(md.MediaName.Formats) > 64 {
			return remoteSDP{}, fmt.Errorf("%w: %d formats in one stream", ErrSDP, len(md.MediaName.Formats))
		}
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				return remoteSDP{}, fmt.Errorf("%w: payload type %q", ErrSDP, f)
			}
			enc, mapped := rtpmap[f]
			switch {
			case (!mapped && pt == 0) || enc == "pcmu/8000" || enc == "pcmu/8000/1":
				r.Codecs = append(r.Codecs, media.CodecSpec{Name: "PCMU", PayloadType: uint8(pt), ClockRate: 8000, Channels: 1})
			case (!mapped && pt == 8) || enc == "pcma/8000" || enc == "pcma/8000/1":
				r.Codecs = append(r.Codecs, media.CodecSpec{Name: "PCMA", PayloadType: uint8(pt), ClockRate: 8000, Channels: 1})
			case enc == "opus/48000/2" || enc == "opus/48000":
				r.Codecs = append(r.Codecs, media.CodecSpec{Name: "opus", PayloadType: uint8(pt), ClockRate: 48000, Channels: 2})
			case r.EventPT == 0 && enc == "telephone-event/8000":
				r.EventPT = uint8(pt)
			}
		}
		if len(r.Codecs) == 0 {
			return remoteSDP{}, fmt.Errorf("%w: offered %v", ErrNoCodec, md.MediaName.Formats)
		}
		return r, nil
	}
	return remoteSDP{}, fmt.Errorf("%w: no audio stream", ErrSDP)
}

// directionOf is the direction attribute among attrs, or def.
func directionOf(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case dirSendRecv, dirSendOnly, dirRecvOnly, dirInactive:
			return a.Key
		}
	}
	return def
}

// answerDirection is the direction we answer an offered one with (RFC 3264 §6.1): what the
// far end only sends we only receive, and so on; never blindly sendrecv.
func answerDirection(offered string, held bool) string {
	switch offered {
	case dirSendOnly:
		return dirRecvOnly
	case dirRecvOnly:
		return dirSendOnly
	case dirInactive:
		return dirInactive
	}
	if held { // c=0.0.0.0: the far end wants no media from us
		return dirRecvOnly
	}
	return dirSendRecv
}

// flow says whether we send and receive under our side's direction.
func flow(ours string) (send, recv bool) {
	return ours == dirSendRecv || ours == dirSendOnly, ours == dirSendRecv || ours == dirRecvOnly
}

// localSDP is our side of a call's session description. The session ID stays for the
// call; the version goes up with every change (RFC 3264 §8).
type localSDP struct {
	sessID  uint64
	version atomic.Uint64
	ip      netip.Addr
	port    int
}

func newLocalSDP(ip netip.Addr, port int) *localSDP {
	id := uint64(time.Now().UnixNano()) & (1<<62 - 1)
	l := &localSDP{sessID: id, ip: ip, port: port}
	l.version.Store(id)
	return l
}

// marshal writes one audio stream with codecs (and telephone-event when eventPT is not 0)
// in direction dir. bump says the description changed since the last one sent.
func (l *localSDP) marshal(codecs []media.CodecSpec, eventPT uint8, dir string, bump bool) []byte {
	return l.marshalSRTP(nil, codecs, eventPT, dir, bump)
}

// marshalSRTP is marshal of a stream carrying SRTP, RTP/SAVP with our a=crypto lines (none:
// RTP/AVP).
func (l *localSDP) marshalSRTP(crypto []sdesCrypto, codecs []media.CodecSpec, eventPT uint8, dir string, bump bool) []byte {
	v := l.version.Load()
	if bump {
		v = l.version.Add(1)
	}
	fam := family(l.ip)
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=switchboard %d %d IN %s %s\r\ns=switchboard\r\nc=IN %s %s\r\nt=0 0\r\n",
		l.sessID, v, fam, l.ip, fam, l.ip)
	proto := "RTP/AVP"
	if len(crypto) > 0 {
		proto = "RTP/SAVP"
	}
	fmt.Fprintf(&b, "m=audio %d %s", l.port, proto)
	for _, c := range codecs {
		fmt.Fprintf(&b, " %d", c.PayloadType)
	}
	if eventPT != 0 {
		fmt.Fprintf(&b, " %d", eventPT)
	}
	b.WriteString("\r\n")
	for _, c := range codecs {
		if c.Channels > 1 {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d/%d\r\n", c.PayloadType, c.Name, c.ClockRate, c.Channels)
		} else {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", c.PayloadType, c.Name, c.ClockRate)
		}
		if strings.EqualFold(c.Name, "opus") {
			fmt.Fprintf(&b, "a=fmtp:%d useinbandfec=1;minptime=20\r\n", c.PayloadType)
		}
	}
	if eventPT != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", eventPT, eventPT)
	}
	for _, c := range crypto {
		fmt.Fprintf(&b, "a=crypto:%s\r\n", c.attr())
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=rtcp:%d\r\na=%s\r\n", l.port+1, dir)
	return []byte(b.String())
}

// reaches checks that media on our address can reach the far end's of r: a socket of one
// family cannot send to the other, and IPv6 media answered from IPv4 is silence. A hold
// (no address) reaches everywhere.
func (l *localSDP) reaches(r remoteSDP) error {
	if r.Held || r.RTP.Addr().Is4() == l.ip.Is4() {
		return nil
	}
	return fmt.Errorf("%w: media at %s, ours at %s", ErrMediaFamily, r.RTP.Addr(), l.ip)
}

// family is the SDP name of ip's address family.
func family(ip netip.Addr) string {
	if ip.Is4() {
		return "IP4"
	}
	return "IP6"
}

// addrIP turns a net.IP into a netip.Addr, unmapped.
func addrIP(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
