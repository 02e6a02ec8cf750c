package rtc

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
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

// trickle is an RFC 8840 fragment: candidates, whether the client said it had no more, and
// its ICE credentials when it gave them (a WHIP client restarting ICE gives new ones).
type trickle struct {
	cands      []webrtc.ICECandidateInit
	end        bool
	ufrag, pwd string
}

// parseTrickle reads an RFC 8840 trickle-ICE SDP fragment: a=ice-ufrag, a=ice-pwd, a=mid,
// m= lines, a=candidate and a=end-of-candidates. A fragment must carry candidates, their
// end, or new ICE credentials (both a=ice-ufrag and a=ice-pwd).
func parseTrickle(frag []byte) (t trickle, err error) {
	var cands []webrtc.ICECandidateInit
	var end bool
	var ufrag, pwd string
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
		case strings.HasPrefix(line, "a=ice-pwd:"):
			pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=ice-options:"):
		case line == "a=end-of-candidates":
			end = true
		case strings.HasPrefix(line, "a=candidate:"):
			c := strings.TrimPrefix(line, "a=")
			if _, perr := ice.UnmarshalCandidate(c); perr != nil {
				return t, fmt.Errorf("%w: line %d: %v", ErrCandidate, n, perr)
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
			return t, fmt.Errorf("%w: line %d is not an ICE fragment line (a=candidate, a=end-of-candidates, a=ice-ufrag, a=ice-pwd, a=mid, m=): %.60q", ErrCandidate, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("%w: %v", ErrCandidate, err)
	}
	switch {
	case len(cands) > 0 || end || ufrag != "" && pwd != "":
	case ufrag != "" || pwd != "":
		return t, fmt.Errorf("%w: an ICE restart gives both a=ice-ufrag and a=ice-pwd", ErrCandidate)
	default:
		return t, fmt.Errorf("%w: no a=candidate or a=end-of-candidates line", ErrCandidate)
	}
	return trickle{cands: cands, end: end, ufrag: ufrag, pwd: pwd}, nil
}

// withICECredentials is the session description sdp with its ICE credentials replaced by
// ufrag and pwd, its candidates left out and its version one higher: a WHIP client's ICE
// restart (RFC 9725) sends only the new credentials, and this is the offer they stand for.
func withICECredentials(sdp, ufrag, pwd string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(sdp, "\n") {
		text := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(text, "a=ice-ufrag:"):
			b.WriteString("a=ice-ufrag:" + ufrag + "\r\n")
		case strings.HasPrefix(text, "a=ice-pwd:"):
			b.WriteString("a=ice-pwd:" + pwd + "\r\n")
		case strings.HasPrefix(text, "a=candidate:"), text == "a=end-of-candidates":
		case strings.HasPrefix(text, "o="):
			// o=<username> <sess-id> <sess-version> …: a new offer has a higher version.
			f := strings.Fields(text)
			if len(f) >= 3 {
				if v, err := strconv.ParseUint(f[2], 10, 63); err == nil {
					f[2] = strconv.FormatUint(v+1, 10)
				}
			}
			b.WriteString(strings.Join(f, " ") + "\r\n")
		default:
			b.WriteString(line)
		}
	}
	return b.String()
}

// answerFragment is the node's part of a WHIP ICE restart: the ICE credentials and
// candidates of its answer, as an RFC 8840 fragment.
func answerFragment(answer string) []byte {
	var b bytes.Buffer
	seen := map[string]bool{}
	for _, line := range strings.Split(answer, "\n") {
		text := strings.TrimSpace(line)
		if (strings.HasPrefix(text, "a=ice-ufrag:") || strings.HasPrefix(text, "a=ice-pwd:") || strings.HasPrefix(text, "a=candidate:")) && !seen[text] {
			seen[text] = true
			b.WriteString(text + "\r\n")
		}
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.Bytes()
}
