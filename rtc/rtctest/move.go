package rtctest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// movingConn is the client's UDP socket, which Move replaces with a new one on another
// port: the client's address changes as a browser's does when its network does (Wi-Fi to
// mobile data). Reads go on from the new socket; the old one is closed.
type movingConn struct {
	mu     sync.Mutex
	conn   *net.UDPConn
	gen    int
	closed bool
}

func listenUDP() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
}

func (m *movingConn) current() (*net.UDPConn, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conn, m.gen
}

func (m *movingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c, gen := m.current()
		n, addr, err := c.ReadFrom(b)
		if err != nil {
			m.mu.Lock()
			moved := m.gen != gen && !m.closed
			m.mu.Unlock()
			if moved {
				continue
			}
		}
		return n, addr, err
	}
}

func (m *movingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c, _ := m.current()
	return c.WriteTo(b, addr)
}

func (m *movingConn) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.conn.Close()
}

func (m *movingConn) LocalAddr() net.Addr {
	c, _ := m.current()
	return c.LocalAddr()
}

func (m *movingConn) SetDeadline(t time.Time) error {
	c, _ := m.current()
	return c.SetDeadline(t)
}

func (m *movingConn) SetReadDeadline(t time.Time) error {
	c, _ := m.current()
	return c.SetReadDeadline(t)
}

func (m *movingConn) SetWriteDeadline(t time.Time) error {
	c, _ := m.current()
	return c.SetWriteDeadline(t)
}

// move swaps the socket for a new one on another port.
func (m *movingConn) move() error {
	next, err := listenUDP()
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = next.Close()
		return errors.New("rtctest: the client is closed")
	}
	old := m.conn
	m.conn = next
	m.gen++
	m.mu.Unlock()
	return old.Close()
}

// Move changes the client's network: its socket is replaced by one on another port, and
// what the node sends to the old one is lost. The connection recovers only by an ICE
// restart (RestartOffer), as a browser's does.
func (c *Client) Move() error { return c.conn.move() }

// Port is the client's UDP port now.
func (c *Client) Port() int {
	return c.conn.LocalAddr().(*net.UDPAddr).Port
}

// RestartOffer makes an offer that restarts ICE (new ice-ufrag and ice-pwd, candidates
// gathered again on the client's current address), with every candidate in it: what a
// browser sends after pc.restartIce(). Accept takes the node's answer.
func (c *Client) RestartOffer() (string, error) {
	return c.offer(&webrtc.OfferOptions{ICERestart: true})
}

// RestartFragment restarts ICE as a WHIP client does (RFC 9725): it makes an ICE-restart
// offer for itself and returns what it sends the node, an RFC 8840 fragment of the new
// a=ice-ufrag, a=ice-pwd and candidates. AcceptFragment takes the node's answer.
func (c *Client) RestartFragment() (string, error) {
	offer, err := c.RestartOffer()
	if err != nil {
		return "", err
	}
	return iceLines(offer) + "a=end-of-candidates\r\n", nil
}

// AcceptFragment takes the node's fragment answering RestartFragment: the node's
// description as it was, with the fragment's credentials and candidates.
func (c *Client) AcceptFragment(frag string) error {
	rd := c.pc.CurrentRemoteDescription()
	if rd == nil {
		return errors.New("rtctest: no answer to restart")
	}
	var ufrag, pwd string
	var cands []string
	for _, line := range strings.Split(frag, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = line
		case strings.HasPrefix(line, "a=ice-pwd:"):
			pwd = line
		case strings.HasPrefix(line, "a=candidate:"):
			cands = append(cands, line)
		}
	}
	if ufrag == "" || pwd == "" {
		return fmt.Errorf("rtctest: the node's fragment has no ICE credentials: %q", frag)
	}
	var b strings.Builder
	for _, line := range strings.Split(rd.SDP, "\n") {
		text := strings.TrimSpace(line)
		switch {
		case text == "":
		case strings.HasPrefix(text, "a=ice-ufrag:"):
			b.WriteString(ufrag + "\r\n")
		case strings.HasPrefix(text, "a=ice-pwd:"):
			b.WriteString(pwd + "\r\n")
			for _, cand := range cands {
				b.WriteString(cand + "\r\n")
			}
		case strings.HasPrefix(text, "a=candidate:"), text == "a=end-of-candidates":
		default:
			b.WriteString(text + "\r\n")
		}
	}
	return c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: b.String()})
}

// iceLines are the ICE credentials and candidates of sdp, each once, as fragment lines.
func iceLines(sdp string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(sdp, "\n") {
		text := strings.TrimSpace(line)
		if (strings.HasPrefix(text, "a=ice-ufrag:") || strings.HasPrefix(text, "a=ice-pwd:") || strings.HasPrefix(text, "a=candidate:")) && !seen[text] {
			seen[text] = true
			b.WriteString(text + "\r\n")
		}
	}
	return b.String()
}
