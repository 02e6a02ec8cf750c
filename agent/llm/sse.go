package llm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxSSELine bounds one line of an upstream event stream; a longer line is malformed data,
// not a reason to grow without limit.
const maxSSELine = 4 << 20

// sseEvent is one server-sent event. Data is valid until the next call to next.
type sseEvent struct {
	Name string
	Data []byte
}

// sseReader splits a text/event-stream into events: "event:" names one, "data:" lines are
// joined with newlines, ":" lines are comments, a blank line ends the event.
type sseReader struct {
	sc   *bufio.Scanner
	name string
	data []byte
	has  bool
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSSELine)
	return &sseReader{sc: sc}
}

// errSSELineTooLong is returned for a line over maxSSELine.
var errSSELineTooLong = errors.New("event stream line too long")

// next returns the next event, or io.EOF after the last. An event the stream ends in the
// middle of is still returned: some servers end on "data: [DONE]" without a blank line.
func (r *sseReader) next() (sseEvent, error) {
	r.name, r.data, r.has = "", r.data[:0], false
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if len(line) == 0 {
			if r.has {
				return sseEvent{Name: r.name, Data: r.data}, nil
			}
			r.name = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte{':'})
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			r.name = string(value)
		case "data":
			if r.has {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			r.has = true
		}
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return sseEvent{}, errSSELineTooLong
		}
		return sseEvent{}, err
	}
	if r.has {
		r.has = false
		return sseEvent{Name: r.name, Data: r.data}, nil
	}
	return sseEvent{}, io.EOF
}
