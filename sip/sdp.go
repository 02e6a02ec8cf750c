package sip

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/switchboard-go/switchboard/media"
)

// offer is what we take from a caller's SDP offer.
type offer struct {
	// Remote is where the caller says it receives RTP.
	Remote *net.UDPAddr
	// Codec is the first offered codec we support, in the caller's preference order.
	Codec media.Codec
	// EventPT is the caller's telephone-event payload type; EventOK says one was offered.
	EventPT uint8
	EventOK bool
}

// parseOffer applies RFC 3264 §6 to the first audio stream of an offer: the caller's
// preference order decides among the codecs we support (PCMU, PCMA), telephone-event is kept
// with the caller's payload type. Errors wrap ErrSDP or ErrNoCodec.
func parseOffer(body []byte) (offer, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return offer{}, fmt.Errorf("%w: %w", ErrSDP, err)
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		conn := md.ConnectionInformation
		if conn == nil {
			conn = sd.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return offer{}, fmt.Errorf("%w: no connection address", ErrSDP)
		}
		ip := net.ParseIP(conn.Address.Address)
		port := md.MediaName.Port.Value
		if ip == nil || port <= 0 || port > 65535 {
			return offer{}, fmt.Errorf("%w: bad media address %q port %d", ErrSDP, conn.Address.Address, port)
		}
		o := offer{Remote: &net.UDPAddr{IP: ip, Port: port}}
		rtpmap := map[string]string{}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			pt, enc, ok := strings.Cut(a.Value, " ")
			if ok {
				rtpmap[pt] = strings.ToLower(strings.TrimSpace(enc))
			}
		}
		for _, f := range md.MediaName.Formats {
			enc, mapped := rtpmap[f]
			switch {
			case o.Codec == nil && ((!mapped && f == "0") || enc == "pcmu/8000" || enc == "pcmu/8000/1"):
				o.Codec = media.PCMU{}
			case o.Codec == nil && ((!mapped && f == "8") || enc == "pcma/8000" || enc == "pcma/8000/1"):
				o.Codec = media.PCMA{}
			case !o.EventOK && enc == "telephone-event/8000":
				if pt, err := strconv.ParseUint(f, 10, 7); err == nil {
					o.EventPT, o.EventOK = uint8(pt), true
				}
			}
		}
		if o.Codec == nil {
			return offer{}, fmt.Errorf("%w: offered %v", ErrNoCodec, md.MediaName.Formats)
		}
		return o, nil
	}
	return offer{}, fmt.Errorf("%w: no audio stream", ErrSDP)
}

// answerSDP is our answer: one audio stream at ip:port with the chosen codec and, when
// offered, telephone-event under the caller's payload type.
func answerSDP(o offer, ip net.IP, port int) ([]byte, error) {
	sessID := uint64(time.Now().UnixNano())
	family := "IP4"
	if ip.To4() == nil {
		family = "IP6"
	}
	pt := o.Codec.PayloadType()
	formats := []string{strconv.Itoa(int(pt))}
	attrs := []sdp.Attribute{
		{Key: "rtpmap", Value: fmt.Sprintf("%d %s/%d", pt, o.Codec.Name(), o.Codec.ClockRate())},
	}
	if o.EventOK {
		formats = append(formats, strconv.Itoa(int(o.EventPT)))
		attrs = append(attrs,
			sdp.Attribute{Key: "rtpmap", Value: fmt.Sprintf("%d telephone-event/8000", o.EventPT)},
			sdp.Attribute{Key: "fmtp", Value: fmt.Sprintf("%d 0-16", o.EventPT)})
	}
	attrs = append(attrs, sdp.Attribute{Key: "ptime", Value: "20"}, sdp.Attribute{Key: "sendrecv"})
	sd := sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "switchboard", SessionID: sessID, SessionVersion: sessID,
			NetworkType: "IN", AddressType: family, UnicastAddress: ip.String(),
		},
		SessionName:           "switchboard",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: family, Address: &sdp.Address{Address: ip.String()}},
		TimeDescriptions:      []sdp.TimeDescription{{}},
		MediaDescriptions: []*sdp.MediaDescription{{
			MediaName: sdp.MediaName{
				Media: "audio", Port: sdp.RangedPort{Value: port},
				Protos: []string{"RTP", "AVP"}, Formats: formats,
			},
			Attributes: attrs,
		}},
	}
	return sd.Marshal()
}
