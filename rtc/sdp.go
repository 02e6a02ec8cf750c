package rtc

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// opusCapability is the one codec the node's peers speak: Opus at 48 kHz (RFC 7587), with
// in-band FEC.
var opusCapability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// OfferError says why an offer cannot be answered.
type OfferError struct{ Reason string }

func (e *OfferError) Error() string { return "webrtc: offer not acceptable: " + e.Reason }

// Unwrap makes an OfferError an ErrOffer.
func (e *OfferError) Unwrap() error { return ErrOffer }

// checkOffer accepts an offer that is SDP with an audio section offering Opus.
func checkOffer(offer string) error {
	if strings.TrimSpace(offer) == "" {
		return &OfferError{Reason: "the offer is empty"}
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return &OfferError{Reason: "the offer is not SDP: " + err.Error()}
	}
	audio := false
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		audio = true
		if m.MediaName.Port.Value == 0 {
			continue // rejected or stopped
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "111 opus/48000/2"
			_, enc, ok := strings.Cut(a.Value, " ")
			if ok && strings.HasPrefix(strings.ToLower(enc), "opus/48000") {
				return nil
			}
		}
		return &OfferError{Reason: "the offer's audio does not offer Opus (opus/48000/2), the only codec Switchboard speaks over WebRTC"}
	}
	if !audio {
		return &OfferError{Reason: "the offer has no audio section (m=audio): add an audio transceiver or a microphone track"}
	}
	return nil
}

// parseTrickle reads an RFC 8840 trickle-ICE SDP fragment: a=ice-ufrag, a=ice-pwd, a=mid,
// m= lines, a=candidate and a=end-of-candidates. It returns the candidates, whether the
// client said it had no more, and the ufrag (empty when not given).
func parseTrickle(frag []byte) (cands []webrtc.ICECandidateInit, end bool, ufrag string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(frag))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	mid := ""
	var idx uint16
	mline := -1
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"), strings.HasPrefix(line, "a=ice-options:"):
		case line == "a=end-of-candidates":
			end = true
		case strings.HasPrefix(line, "a=candidate:"):
			c := strings.TrimPrefix(line, "a=")
			if _, perr := ice.UnmarshalCandidate(c); perr != nil {
				return nil, false, "", fmt.Errorf("%w: line %d: %v", ErrCandidate, n, perr)
			}
			init := webrtc.ICECandidateInit{Candidate: c}
			if mid != "" {
				m := mid
				init.SDPMid = &m
			}
			if mline >= 0 {
				idx = uint16(mline)
			}
			i := idx
			init.SDPMLineIndex = &i
			cands = append(cands, init)
		default:
			return nil, false, "", fmt.Errorf("%w: line %d is not an ICE fragment line (a=candidate, a=end-of-candidates, a=ice-ufrag, a=ice-pwd, a=mid, m=): %.60q", ErrCandidate, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, false, "", fmt.Errorf("%w: %v", ErrCandidate, err)
	}
	if len(cands) == 0 && !end {
		return nil, false, "", fmt.Errorf("%w: no a=candidate or a=end-of-candidates line", ErrCandidate)
	}
	return cands, end, ufrag, nil
}
