package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// What one gateway request may hold, and what all of them together may. A model request
// with images is large (a 20 MB image is 27 MB of base64), and while it is decoded the node
// holds its body and what was decoded from it, and after, until the answer is complete,
// what was decoded. Without a bound, ten concurrent 30 MB requests took a node to 1.7 GB.
// So a gateway body is at most MaxGatewayBody (413 past it), and the bodies that requests
// hold at once, large and small alike, are at most the node's budget
// (Config.GatewayBodyBudget): a request that would go past it is answered 503 with
// Retry-After at once, before its body is read. Small bodies are counted too, or a thousand
// concurrent requests of a megabyte each would hold a gigabyte outside the budget; bodies
// larger than pooledGatewayBody leave smallBodyReserve of the budget to the small ones, so
// that chat turns (a few kilobytes each: the default budget holds thousands) go on while
// large requests fill the rest.
const (
	// MaxGatewayBody bounds one request body of /v1/chat/completions and /v1/messages.
	MaxGatewayBody = 32 << 20
	// DefaultGatewayBodyBudget is the budget of a node whose configuration sets none.
	DefaultGatewayBodyBudget = 64 << 20
	// pooledGatewayBody is the size above which a body is large: its buffer comes from the
	// node's free list, and it may not take the small bodies' reserve.
	pooledGatewayBody = 1 << 20
	// maxSmallBodyReserve bounds the part of the budget only bodies of pooledGatewayBody or
	// less may take (a sixteenth of the budget when that is less).
	maxSmallBodyReserve = 4 << 20
	// chunkedBodyStep is what a chunked body is first counted as, before its first byte.
	chunkedBodyStep = 64 << 10
	// budgetRetryAfter is the Retry-After, in seconds, of a request refused for the budget.
	budgetRetryAfter = 1
)

// bodyBudget counts the bytes of gateway bodies that requests hold.
type bodyBudget struct {
	mu          sync.Mutex
	used, limit int64
}

// take reserves n bytes of a body, or reports that they would go past the limit; a large
// body (its total, with what it holds already, over pooledGatewayBody) may not take the
// small bodies' reserve.
func (b *bodyBudget) take(n, total int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.limit
	if total > pooledGatewayBody {
		limit -= min(b.limit/16, maxSmallBodyReserve)
	}
	if b.used+n > limit {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inUse reports the bytes reserved.
func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func errBodyTooLarge() *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
		Message: "Request body is larger than " + strconv.Itoa(MaxGatewayBody) + " bytes, the most a model request may be"}
}

func errBodyBudget(w http.ResponseWriter) *Error {
	w.Header().Set("Retry-After", strconv.Itoa(budgetRetryAfter))
	return budgetError()
}

// budgetError is the 503 of a request refused for the budget (every dialect sends its
// RetryAfter as Retry-After).
func budgetError() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: budgetRetryAfter,
		Message: "The server is holding as many request bodies as it may; retry shortly"}
}

// readGatewayBody reads a gateway request's body within MaxGatewayBody and the node's
// budget. The body is read into one buffer of its exact size when its length is known (no
// copies left behind by growing), and counted against the budget before a byte is read;
// a body of unknown length is counted as it arrives. release gives the reservation back:
// the caller holds it until it no longer holds what it decoded from the body.
func (s *Server) readGatewayBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	var held int64
	release = func() {
		if held > 0 {
			s.bodies.give(held)
			held = 0
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	rd := http.MaxBytesReader(w, r.Body, MaxGatewayBody)
	switch n := r.ContentLength; {
	case n > MaxGatewayBody:
		return nil, release, errBodyTooLarge()
	case n >= 0:
		if !s.bodies.take(n, n) {
			return nil, release, errBodyBudget(w)
		}
		held = n
		if n <= pooledGatewayBody {
			body = make([]byte, n)
		} else {
			// A large body's buffer comes from the free list and goes back with the
			// reservation: what was decoded from it may lie in it (bodyString) until then.
			buf := s.bodyBufs.get(n)
			body = buf
			give := release
			release = func() {
				if buf != nil {
					s.bodyBufs.put(buf)
					buf = nil
				}
				give()
			}
		}
		if _, err := io.ReadFull(rd, body); err != nil {
			return nil, release, errBadRequest("body", "could not be read: it ended before its Content-Length")
		}
	default:
		// Chunked: the length is known only at the end; the buffer is counted before it
		// is made, and again before each time it doubles.
		if !s.bodies.take(chunkedBodyStep, chunkedBodyStep) {
			return nil, release, errBodyBudget(w)
		}
		held = chunkedBodyStep
		body = make([]byte, 0, chunkedBodyStep)
		for {
			if len(body) == cap(body) {
				// Doubled, but never past a byte more than the limit: that byte is
				// enough to tell a body too large (413) from one the budget refuses.
				grow := min(int64(len(body)), MaxGatewayBody+1-int64(len(body)))
				if !s.bodies.take(grow, held+grow) {
					return nil, release, errBodyBudget(w)
				}
				held += grow
				next := make([]byte, len(body), int64(len(body))+grow)
				copy(next, body)
				body = next
			}
			n, err := rd.Read(body[len(body):cap(body)])
			body = body[:len(body)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, release, errBodyTooLarge()
			}
			if err != nil {
				return nil, release, errBadRequest("body", "could not be read")
			}
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, release, errBadRequest("body", "is required: a JSON object")
	}
	return body, release, nil
}

// errBudgetFull is what a request that would hold more than the node's budget gets.
var errBudgetFull = errors.New("api: the node's budget of request bodies is spent")

// bodyHold is one request's share of the node's budget for what is not a gateway body but
// weighs as much: a knowledge upload (a document of up to the upload limit, held until it
// is stored) and the files a run of Amarsia's runner fetches (up to its parts' limits, held
// until it is answered). Without it, concurrent uploads and runs held as much memory as
// clients cared to send them. It grows as what the request holds grows and is given back
// by release; it is safe for concurrent use (a run fetches several files at once).
type bodyHold struct {
	b    *bodyBudget
	mu   sync.Mutex
	held int64
}

func (s *Server) newHold() *bodyHold { return &bodyHold{b: s.bodies} }

// grow reserves n bytes more, or is errBudgetFull.
func (h *bodyHold) grow(n int64) error {
	if n <= 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.b.take(n, h.held+n) {
		return errBudgetFull
	}
	h.held += n
	return nil
}

// release gives back everything held; the hold may grow again after.
func (h *bodyHold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held > 0 {
		h.b.give(h.held)
		h.held = 0
	}
}

// heldReader reads r, each chunkedBodyStep reserved from the hold before it is read: what
// is read of a body whose length is not known ahead.
type heldReader struct {
	r     io.Reader
	h     *bodyHold
	ahead int64 // reserved and not yet read
}

func (hr *heldReader) Read(p []byte) (int, error) {
	if hr.ahead == 0 {
		if err := hr.h.grow(chunkedBodyStep); err != nil {
			return 0, err
		}
		hr.ahead = chunkedBodyStep
	}
	if int64(len(p)) > hr.ahead {
		p = p[:hr.ahead]
	}
	n, err := hr.r.Read(p)
	hr.ahead -= int64(n)
	return n, err
}

// bodyBuffers keep the buffers of large bodies of known length once their requests are
// answered, so that a node under a stream of large requests reuses the same memory rather
// than leaving each body for the collector (which, at the node's GOGC of 400, lets five
// times the live heap pile up before it runs). It keeps at most the budget's worth, so
// the large bodies' memory, in use and kept, is at most twice the budget; and it lets all
// of it go once no large request has come for bodyBuffersIdle.
type bodyBuffers struct {
	mu    sync.Mutex
	free  [][]byte
	bytes int64 // capacity of free
	limit int64
	idle  time.Duration
	used  bool // a buffer was taken or given since the idle timer was set
	timer *time.Timer
}

// bodyBuffersIdle is how long a node keeps the buffers of large bodies when none come.
const bodyBuffersIdle = 30 * time.Second

// get is a buffer of length n whose capacity is n rounded up to a MiB.
func (p *bodyBuffers) get(n int64) []byte {
	size := (n + 1<<20 - 1) &^ (1<<20 - 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = true
	for i, b := range p.free {
		if int64(cap(b)) == size {
			p.free[i] = p.free[len(p.free)-1]
			p.free[len(p.free)-1] = nil
			p.free = p.free[:len(p.free)-1]
			p.bytes -= size
			return b[:n]
		}
	}
	return make([]byte, n, size)
}

// put keeps b for another request, unless that would keep more than the limit. Only the
// gateway's own requests hold what lies in b, and they end before their buffer is given
// back: providers stop reading a request when their exchange ends (llm's transport), and
// nothing else keeps a request's strings.
func (p *bodyBuffers) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used = true
	if p.bytes+int64(cap(b)) > p.limit {
		return
	}
	p.free = append(p.free, b)
	p.bytes += int64(cap(b))
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idle, p.trim)
	}
}

// trim lets the buffers go when none was taken or given since it was last set.
func (p *bodyBuffers) trim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used {
		p.used = false
		p.timer.Reset(p.idle)
		return
	}
	clear(p.free)
	p.free, p.bytes, p.timer = p.free[:0], 0, nil
}

// bodyString is a string of a gateway request where images and long texts are found. One
// of largeBodyString bytes or more, without escapes, is kept where it lies in the body
// rather than copied (a base64 image never has escapes): the request then holds its image
// once, in the body, instead of twice. The body's buffer outlives the request
// (readGatewayBody's release).
type bodyString string

// largeBodyString is the size from which a bodyString is not copied.
const largeBodyString = 64 << 10

func (s *bodyString) UnmarshalJSON(b []byte) error {
	if v, ok := inPlace(b); ok {
		*s = bodyString(v)
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = bodyString(v)
	return nil
}

// inPlace is the JSON string literal b as a string over b's own bytes, when it is large and
// has nothing to unescape or replace.
func inPlace(b []byte) (string, bool) {
	if len(b) < largeBodyString || b[0] != '"' || b[len(b)-1] != '"' || bytes.IndexByte(b, '\\') >= 0 || !utf8.Valid(b) {
		return "", false
	}
	return unsafe.String(&b[1], len(b)-2), true
}

// bodyJSON is a JSON value of a gateway request, kept where it lies in the body instead of
// copied as json.RawMessage copies it: a message's content, which holds its images, would
// otherwise be held twice while it is decoded. The body is never reused, so the value
// stays valid; it is garbage with the body once the request is decoded.
type bodyJSON []byte

// UnmarshalJSON keeps b: encoding/json passes a slice of the document being decoded.
func (j *bodyJSON) UnmarshalJSON(b []byte) error {
	*j = b
	return nil
}

// MarshalJSON writes the value as it came.
func (j bodyJSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}
