package sip

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// realm is the digest realm of our challenges.
const realm = "switchboard"

// nonceLife is how long a nonce we issued is accepted; an older one gets a new challenge
// with stale=true, so the caller answers it without asking its user again.
const nonceLife = 5 * time.Minute

// nonces issues and checks digest nonces without keeping state: a nonce is its issue time
// and an HMAC of that time under a key made at start.
type nonces struct{ key [32]byte }

func newNonces() *nonces {
	n := &nonces{}
	_, _ = rand.Read(n.key[:])
	return n
}

func (n *nonces) issue(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// check says whether nonce is ours (valid) and whether it is too old (stale).
func (n *nonces) check(nonce string, now time.Time) (valid, stale bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false, false
	}
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return false, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	return true, now.Sub(issued) > nonceLife
}

// challenge is the WWW-Authenticate value of a 401.
func (n *nonces) challenge(now time.Time, stale bool) string {
	s := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"`, realm, n.issue(now))
	if stale {
		s += ", stale=true"
	}
	return s
}

// credentials are the parameters of a Digest Authorization header (RFC 2617, RFC 3261 §22.4).
type credentials struct {
	Username, Realm, Nonce, URI, Response, Algorithm, QOP, NC, CNonce, Opaque string
}

func parseCredentials(v string) (credentials, error) {
	p, err := digestParams(v)
	if err != nil {
		return credentials{}, err
	}
	c := credentials{Username: p["username"], Realm: p["realm"], Nonce: p["nonce"], URI: p["uri"],
		Response: p["response"], Algorithm: p["algorithm"], QOP: p["qop"], NC: p["nc"], CNonce: p["cnonce"], Opaque: p["opaque"]}
	if c.Username == "" || c.Nonce == "" || c.URI == "" || c.Response == "" {
		return credentials{}, fmt.Errorf("username, nonce, uri and response are required")
	}
	return c, nil
}

// digestParams reads the parameters of a Digest challenge or authorization
// ("Digest k=v, k2=\"v2\"…"), names lower-cased.
func digestParams(v string) (map[string]string, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, fmt.Errorf("%q is not Digest", scheme)
	}
	p := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("malformed parameter %q", rest)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		after = strings.TrimSpace(after)
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted value of %s", k)
			}
			p[k], after = after[1:1+end], after[2+end:]
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			p[k], after = strings.TrimSpace(after[:end]), after[end:]
		}
		rest = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(after), ","))
	}
	return p, nil
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// digestResponse is the response value of RFC 2617 §3.2.2 for MD5, with or without qop=auth.
func digestResponse(method, uri, username, password, realm, nonce, qop, nc, cnonce string) string {
	ha1 := md5hex(username + ":" + realm + ":" + password)
	ha2 := md5hex(method + ":" + uri)
	if qop == "" {
		return md5hex(ha1 + ":" + nonce + ":" + ha2)
	}
	return md5hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
}

// verify checks credentials given for req against password. The digest is computed over
// the uri the caller states, which must name the request's target: the same host and port,
// and the same user or none, whatever parameters (;transport=tcp) either carries. A uri of
// host and port alone is SIPp's default, which RFC 3261 §22.4 allows (the digest covers the
// uri stated) and Asterisk accepts.
func (c credentials) verify(req *sip.Request, password string) bool {
	if c.Algorithm != "" && !strings.EqualFold(c.Algorithm, "MD5") {
		return false
	}
	if c.QOP != "" && c.QOP != "auth" {
		return false
	}
	if !sameTarget(c.URI, &req.Recipient) {
		return false
	}
	want := digestResponse(req.Method.String(), c.URI, c.Username, password, c.Realm, c.Nonce, c.QOP, c.NC, c.CNonce)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(c.Response)), []byte(want)) == 1
}

// sameTarget says whether the digest uri names the request URI r: its host and port, with
// its user or none.
func sameTarget(digestURI string, r *sip.Uri) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil {
		return false
	}
	port := func(p int, enc bool) int {
		switch {
		case p != 0:
			return p
		case enc:
			return 5061
		}
		return 5060
	}
	return (u.User == r.User || u.User == "") && strings.EqualFold(u.Host, r.Host) &&
		port(u.Port, u.IsEncrypted()) == port(r.Port, r.IsEncrypted())
}

// authorization builds the Authorization (or Proxy-Authorization) value that answers the
// challenge of a 401 or 407 to our request req. The digest uri is the request URI exactly
// as sent, port and transport parameter included, as RFC 3261 §22.4 requires.
func authorization(req *sip.Request, challenge, username, password string) (string, error) {
	p, err := parseChallenge(challenge)
	if err != nil {
		return "", err
	}
	if a := p["algorithm"]; a != "" && !strings.EqualFold(a, "MD5") {
		return "", fmt.Errorf("digest algorithm %s is not supported", a)
	}
	uri := req.Recipient.String()
	qop := ""
	for _, q := range strings.Split(p["qop"], ",") {
		if strings.TrimSpace(q) == "auth" {
			qop = "auth"
		}
	}
	var cb [8]byte
	_, _ = rand.Read(cb[:])
	cnonce, nc := hex.EncodeToString(cb[:]), "00000001"
	resp := digestResponse(req.Method.String(), uri, username, password, p["realm"], p["nonce"], qop, nc, cnonce)
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5`,
		username, p["realm"], p["nonce"], uri, resp)
	if qop != "" {
		fmt.Fprintf(&b, `, qop=auth, nc=%s, cnonce="%s"`, nc, cnonce)
	}
	if o, ok := p["opaque"]; ok {
		fmt.Fprintf(&b, `, opaque="%s"`, o)
	}
	return b.String(), nil
}

// parseChallenge reads the parameters of a Digest WWW-Authenticate or Proxy-Authenticate.
func parseChallenge(v string) (map[string]string, error) {
	p, err := digestParams(v)
	if err != nil {
		return nil, err
	}
	if p["nonce"] == "" {
		return nil, fmt.Errorf("challenge without nonce")
	}
	return p, nil
}

// inCIDRs says whether a lies in one of cidrs (malformed entries never match; the store
// refuses them on write).
func inCIDRs(a netip.Addr, cidrs []string) bool {
	a = a.Unmap()
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			if p.Contains(a) {
				return true
			}
			continue
		}
		if b, err := netip.ParseAddr(c); err == nil && b.Unmap() == a {
			return true
		}
	}
	return false
}
