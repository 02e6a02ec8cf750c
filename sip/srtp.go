package sip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// SRTP with SDES (RFC 4568): a call's media is encrypted when its description says
// RTP/SAVP and each side gives its master key in an a=crypto line. The keys are in the SDP
// in the clear, so they travel only over SIP TLS: an RTP/SAVP offer over UDP or TCP is
// refused 488, and an outbound call that would offer SRTP leaves over TLS or not at all.
//
// What a call does is decided by its trunk's srtp mode and what the far end offers:
//
//   - an RTP/SAVP offer (over TLS) is answered RTP/SAVP with the first suite it lists that
//     we carry, under its tag, with a fresh key of ours, whatever the trunk's mode: the
//     caller asked for encryption, and it costs little;
//   - an RTP/AVP offer is refused 488 by a trunk whose mode is "required", and answered in
//     the clear otherwise;
//   - outbound, "offer" and "required" offer RTP/SAVP with both suites (a key each); a far
//     end that refuses it 488 is offered RTP/AVP again under "offer", and the call fails
//     under "required".

// srtpSuites are the suites we carry, in the order we offer them.
var srtpSuites = []media.SRTPSuite{media.SRTPAES128SHA1_80, media.SRTPAES128SHA1_32}

// sdesCrypto is one a=crypto line: its tag, suite and inline key (master key and salt).
type sdesCrypto struct {
	Tag   int
	Suite media.SRTPSuite
	Key   []byte
}

// attr is the line's value: "<tag> <suite> inline:<key>".
func (c sdesCrypto) attr() string {
	return strconv.Itoa(c.Tag) + " " + string(c.Suite) + " inline:" + base64.StdEncoding.EncodeToString(c.Key)
}

// parseCrypto reads an a=crypto value we can use: a suite we carry with one inline key of
// its length; a lifetime is allowed, a master key identifier (MKI), several keys or any
// session parameter are not, so the line is not taken (RFC 4568 §6.1: an answerer takes
// only a line it understands whole).
func parseCrypto(v string) (sdesCrypto, bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return sdesCrypto{}, false
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return sdesCrypto{}, false
	}
	suite := media.SRTPSuite(f[1])
	if !suite.Supported() {
		return sdesCrypto{}, false
	}
	params, ok := strings.CutPrefix(f[2], "inline:")
	if !ok || strings.Contains(params, ";") {
		return sdesCrypto{}, false
	}
	parts := strings.Split(params, "|")
	if len(parts) > 2 { // key|lifetime|MKI:length: an MKI we do not carry
		return sdesCrypto{}, false
	}
	if len(parts) == 2 && strings.Contains(parts[1], ":") {
		return sdesCrypto{}, false
	}
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		// Some phones leave the padding out.
		key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	}
	if err != nil || len(key) != media.SRTPKeyLen {
		return sdesCrypto{}, false
	}
	return sdesCrypto{Tag: tag, Suite: suite, Key: key}, true
}

// newSRTPKey is a fresh master key and salt.
func newSRTPKey() []byte {
	k := make([]byte, media.SRTPKeyLen)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24)
	return k
}

// callSRTP is the SRTP of a call: what we offered (outbound, or our offer in a 200 or a
// re-INVITE's answer) and, once agreed, our line and the far end's key.
type callSRTP struct {
	// offered are our lines of an offer not yet answered, a key each.
	offered []sdesCrypto
	// ours is our line in the agreed description: the far end's tag and suite, our key.
	ours *sdesCrypto
	// remote is the far end's key.
	remote []byte
}

// config is what the media session carries; nil without SRTP.
func (s *callSRTP) config() *media.SRTPConfig {
	if s == nil || s.ours == nil {
		return nil
	}
	return &media.SRTPConfig{Suite: s.ours.Suite, Local: s.ours.Key, Remote: s.remote}
}

// lines are our a=crypto lines as the description stands.
func (s *callSRTP) lines() []sdesCrypto {
	if s == nil {
		return nil
	}
	if s.ours != nil {
		return []sdesCrypto{*s.ours}
	}
	return s.offered
}

// newSRTPOffer is our offer of both suites, a fresh key each.
func newSRTPOffer() *callSRTP {
	s := &callSRTP{}
	for i, suite := range srtpSuites {
		s.offered = append(s.offered, sdesCrypto{Tag: i + 1, Suite: suite, Key: newSRTPKey()})
	}
	return s
}

// answerSRTP answers the far end's offered lines: the first we carry, under its tag, with
// a fresh key of ours.
func answerSRTP(offered []sdesCrypto) (*callSRTP, error) {
	if len(offered) == 0 {
		return nil, ErrNoCrypto
	}
	o := offered[0]
	return &callSRTP{ours: &sdesCrypto{Tag: o.Tag, Suite: o.Suite, Key: newSRTPKey()}, remote: o.Key}, nil
}

// takeAnswer takes the far end's answer to our offer: a line with the tag and suite of one
// we offered.
func (s *callSRTP) takeAnswer(r remoteSDP) error {
	if !r.Secure {
		return fmt.Errorf("%w: RTP/AVP answered to our RTP/SAVP offer", ErrNoCrypto)
	}
	for _, a := range r.Crypto {
		for _, o := range s.offered {
			if a.Tag == o.Tag && a.Suite == o.Suite {
				ours := o
				s.ours, s.remote, s.offered = &ours, a.Key, nil
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the answer names no crypto line we offered", ErrNoCrypto)
}

// reoffer reads the far end's new description in a call carrying SRTP (a re-INVITE, an
// UPDATE, the answer in an ACK): it must stay RTP/SAVP with the call's suite, under any tag.
// It returns that line, and says whether its key is new; the caller keeps it (keep) once
// the media session has taken it, so that a description refused leaves the call as it was.
func (s *callSRTP) reoffer(r remoteSDP) (line sdesCrypto, newKey bool, err error) {
	if !r.Secure {
		return line, false, fmt.Errorf("%w: an RTP/AVP description in a call carrying SRTP", ErrNoCrypto)
	}
	for _, c := range r.Crypto {
		if c.Suite == s.ours.Suite {
			return c, !bytes.Equal(c.Key, s.remote), nil
		}
	}
	return line, false, fmt.Errorf("%w: the description drops the call's suite %s", ErrNoCrypto, s.ours.Suite)
}

// keep takes the far end's line of a description the call took: our answer is under its
// tag, and its key decrypts what comes.
func (s *callSRTP) keep(line sdesCrypto) {
	s.ours.Tag, s.remote = line.Tag, line.Key
}

// srtpMode is a trunk's SRTP mode; off for a call without a trunk.
func srtpMode(t *store.Trunk) string {
	if t == nil || t.SRTP == "" {
		return store.TrunkSRTPOff
	}
	return t.SRTP
}

// overTLS says whether a request came or goes over SIP TLS.
func overTLS(transport string) bool {
	return strings.EqualFold(transport, "TLS")
}

// srtpRefusal is the 488, with a Warning that says why, of an offer a call cannot take for
// its SRTP.
func (s *Server) srtpRefusal(why string) *refusal {
	return &refusal{code: sip.StatusNotAcceptableHere, reason: "Not Acceptable Here", why: why,
		hdrs: []sip.Header{sip.NewHeader("Warning", fmt.Sprintf("399 %s %q", s.host, why))}}
}

// checkSRTP decides the SRTP of an inbound call from its offer, its transport and its
// trunk's mode; an offer the call cannot take is refused 488.
func (s *Server) checkSRTP(in *invite, trunk *store.Trunk) *refusal {
	mode, tls := srtpMode(trunk), overTLS(in.req.Transport())
	if in.lateOffer {
		// Our offer goes in the 200: SRTP when the trunk requires it and keys may travel.
		if mode == store.TrunkSRTPRequired {
			if !tls {
				return s.srtpRefusal("SRTP is required on this trunk, and its keys travel only over SIP TLS")
			}
			in.srtp = newSRTPOffer()
		}
		return nil
	}
	switch {
	case in.offer.Secure && !tls:
		return s.srtpRefusal("RTP/SAVP refused: SRTP keys travel only over SIP TLS, never over " + strings.ToUpper(in.req.Transport()))
	case in.offer.Secure:
		sr, err := answerSRTP(in.offer.Crypto)
		if err != nil {
			return s.srtpRefusal("RTP/SAVP offered without a crypto suite we carry (" + string(media.SRTPAES128SHA1_80) + ", " + string(media.SRTPAES128SHA1_32) + ")")
		}
		in.srtp = sr
	case mode == store.TrunkSRTPRequired:
		return s.srtpRefusal("SRTP is required on this trunk: offer RTP/SAVP with a=crypto over SIP TLS")
	}
	return nil
}

// headerValue is the value of a message's header name, "" when it has none.
func headerValue(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}
