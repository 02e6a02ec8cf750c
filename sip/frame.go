package sip

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// maxMessage is the largest SIP message we take, headers and body: sipgo's parser limit.
const maxMessage = 65535

// errFraming is a message whose end cannot be found: a Content-Length that is missing on a
// stream, not a number, negative, larger than a message may be, or larger than the
// datagram that carried it.
var errFraming = errors.New("bad Content-Length")

// contentLength reads the Content-Length of a message's header section (the bytes up to
// and including the empty line). found is false when there is none. Several that
// disagree, or one that is not a non-negative number within maxMessage, is errFraming.
func contentLength(head []byte) (n int, found bool, err error) {
	n = -1
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			i = len(head) - 1
		}
		line := head[:i+1]
		head = head[i+1:]
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		v, perr := strconv.Atoi(string(bytes.TrimSpace(value)))
		if perr != nil || v < 0 || v > maxMessage || (n >= 0 && v != n) {
			return 0, true, errFraming
		}
		n, found = v, true
	}
	if !found {
		return 0, false, nil
	}
	return n, true, nil
}

// headerEnd is the length of the header section of msg (through its empty line), or -1
// while it is incomplete.
func headerEnd(msg []byte) int {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// badRequest is a 400 answering the request whose header section is head, or nil when
// head is not a request or has not what a response needs (RFC 3261 §8.2.6: Via, From,
// To, Call-ID and CSeq), or is an ACK, which is never answered. The Content-Length that
// made the request unreadable is left out, so that the rest parses.
func badRequest(head []byte, reason, source string) []byte {
	var clean bytes.Buffer
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			i = len(head) - 1
		}
		line := head[:i+1]
		head = head[i+1:]
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			name = bytes.TrimSpace(name)
			if bytes.EqualFold(name, []byte("content-length")) || bytes.EqualFold(name, []byte("l")) {
				continue
			}
		}
		if bytes.Equal(line, []byte("\r\n")) {
			break
		}
		clean.Write(line)
	}
	clean.WriteString("Content-Length: 0\r\n\r\n")
	msg, err := sip.ParseMessage(clean.Bytes())
	if err != nil {
		return nil
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.IsAck() || req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return nil
	}
	req.SetSource(source) // for rport and received (RFC 3581)
	res := sip.NewResponseFromRequest(req, sip.StatusBadRequest, reason, nil)
	res.SipVersion = "SIP/2.0"
	return []byte(res.String())
}
