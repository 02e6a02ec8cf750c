package llm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// A request with images is large, and encoding it as json.Marshal does would hold it
// three more times: the image as a data: URL, the encoder's growing buffer (which its pool
// then keeps), and the copy Marshal returns. So the large strings of a request (texts and
// inline images of largeString bytes or more) are stashed before the dialect's wire form is
// built: the wire form holds a short placeholder for each, is encoded small, and the body
// sent is that encoding with each placeholder replaced, as it is sent, by its string read
// from where it lies.

// largeString is the size from which a string is sent from where it lies.
const largeString = 64 << 10

// stash is the large strings of one request and the token their placeholders begin with.
type stash struct {
	token   string
	strings []string
}

// stashed returns a copy of req whose large strings are placeholders, and the stash; req is
// returned itself, with a nil stash, when it has none. The copy shares what it does not
// change with req.
func stashed(req *Request) (*Request, *stash) {
	large := len(req.System) >= largeString
	for _, m := range req.Messages {
		for _, p := range m.Content {
			large = large || len(p.Text) >= largeString || len(p.Data) >= largeString
		}
	}
	if !large {
		return req, nil
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	st := &stash{token: "sbstash" + hex.EncodeToString(b[:])}
	put := func(s string) string {
		if len(s) < largeString {
			return s
		}
		st.strings = append(st.strings, s)
		return fmt.Sprintf("%s%08x", st.token, len(st.strings)-1)
	}
	r := *req
	r.System = put(r.System)
	r.Messages = make([]Message, len(req.Messages))
	for i, m := range req.Messages {
		m.Content = append([]Part(nil), m.Content...)
		for j := range m.Content {
			m.Content[j].Text = put(m.Content[j].Text)
			m.Content[j].Data = put(m.Content[j].Data)
		}
		r.Messages[i] = m
	}
	return &r, st
}

// payload is a request body: its wire form, and the stash of the request it was built from.
type payload struct {
	wire  any
	stash *stash
}

// body encodes the payload: the reader of a fresh copy of the body for each call (a
// redirect sends it again), its length, and stop, after which no reader reads again. The
// strings of a request may lie in memory its caller reuses once the provider has answered
// (the gateway's request bodies): http.Transport may go on reading a request's body after
// the answer came, so the exchange stops its readers when it ends.
func (pl payload) body() (open func() io.Reader, n int64, stop func(), err error) {
	g := &readGuard{}
	readers, n, err := pl.readers()
	if err != nil {
		return nil, 0, nil, err
	}
	return func() io.Reader { return guardedReader{g: g, r: readers()} }, n, g.stop, nil
}

// errExchangeOver is what a request body's reader says once its exchange has ended.
var errExchangeOver = errors.New("llm: the request is over")

// readGuard stops the readers of a request's body.
type readGuard struct {
	mu      sync.Mutex
	stopped bool
}

func (g *readGuard) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// guardedReader reads r until its guard stops it. The lock is held while r copies from
// memory, so once stop returns nothing reads that memory.
type guardedReader struct {
	g *readGuard
	r io.Reader
}

func (r guardedReader) Read(p []byte) (int, error) {
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.g.stopped {
		return 0, errExchangeOver
	}
	return r.r.Read(p)
}

func (pl payload) readers() (func() io.Reader, int64, error) {
	enc, err := json.Marshal(pl.wire)
	if err != nil {
		return nil, 0, err
	}
	if pl.stash == nil {
		return func() io.Reader { return bytes.NewReader(enc) }, int64(len(enc)), nil
	}
	// Cut the encoding at each placeholder: literal pieces, and the strings between them.
	type piece struct {
		lit []byte
		str string
		esc bool // str needs escaping
	}
	var pieces []piece
	var n int64
	tok := []byte(pl.stash.token)
	rest := enc
	for {
		i := bytes.Index(rest, tok)
		if i < 0 || len(rest) < i+len(tok)+8 {
			pieces = append(pieces, piece{lit: rest})
			n += int64(len(rest))
			break
		}
		var idx uint32
		if _, err := fmt.Sscanf(string(rest[i+len(tok):i+len(tok)+8]), "%08x", &idx); err != nil || int(idx) >= len(pl.stash.strings) {
			return nil, 0, fmt.Errorf("%w: a stashed string was lost", ErrInvalidRequest)
		}
		s := pl.stash.strings[idx]
		size, esc := escapedLen(s)
		pieces = append(pieces, piece{lit: rest[:i]}, piece{str: s, esc: esc})
		n += int64(i) + size
		rest = rest[i+len(tok)+8:]
	}
	return func() io.Reader {
		rs := make([]io.Reader, 0, len(pieces))
		for _, p := range pieces {
			switch {
			case p.lit != nil:
				rs = append(rs, bytes.NewReader(p.lit))
			case p.esc:
				rs = append(rs, &escaper{s: p.str})
			default:
				rs = append(rs, strings.NewReader(p.str))
			}
		}
		return io.MultiReader(rs...)
	}, n, nil
}

// plain reports whether c stands for itself inside a JSON string.
func plain(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf }

// escapedLen is the length of s as the contents of a JSON string, and whether that differs
// from s (base64 never does).
func escapedLen(s string) (int64, bool) {
	var n int64
	esc := false
	for i := 0; i < len(s); {
		c := s[i]
		if plain(c) {
			n++
			i++
			continue
		}
		out, size := escapeAt(s, i)
		n += int64(len(out))
		esc = esc || out != s[i:i+size]
		i += size
	}
	return n, esc
}

// escapeAt is the JSON text of the character of s at i that is not plain, and its size:
// the escapes of encoding/json but for <, > and & (which need none), invalid UTF-8 as
// U+FFFD.
func escapeAt(s string, i int) (string, int) {
	switch c := s[i]; c {
	case '"':
		return `\"`, 1
	case '\\':
		return `\\`, 1
	case '\n':
		return `\n`, 1
	case '\r':
		return `\r`, 1
	case '\t':
		return `\t`, 1
	default:
		if c < 0x20 {
			return fmt.Sprintf(`\u%04x`, c), 1
		}
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size == 1 {
		return `\ufffd`, 1
	}
	return s[i : i+size], size
}

// escaper reads s as the contents of a JSON string.
type escaper struct {
	s   string
	i   int
	out string // what is left of the last escape
}

func (e *escaper) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if e.out != "" {
			c := copy(p[n:], e.out)
			n += c
			e.out = e.out[c:]
			continue
		}
		if e.i >= len(e.s) {
			break
		}
		j := e.i
		for j < len(e.s) && j-e.i < len(p)-n && plain(e.s[j]) {
			j++
		}
		if j > e.i {
			n += copy(p[n:], e.s[e.i:j])
			e.i = j
			continue
		}
		var size int
		e.out, size = escapeAt(e.s, e.i)
		e.i += size
	}
	if n == 0 && e.i >= len(e.s) && e.out == "" {
		return 0, io.EOF
	}
	return n, nil
}
