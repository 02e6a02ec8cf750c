package media

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrDTMF is a telephone-event payload or SIP INFO DTMF body that does not parse.
var ErrDTMF = errors.New("media: malformed DTMF")

// TelephoneEvent is the payload of an RFC 4733 telephone-event packet.
type TelephoneEvent struct {
	// Event is the event code: 0-9, 10 '*', 11 '#', 12-15 'A'-'D', 16 flash.
	Event uint8
	End   bool
	// Volume is the power level in -dBm0 (0-63).
	Volume uint8
	// Duration is in RTP timestamp units since the event's timestamp.
	Duration uint16
}

// TelephoneEventSize is the length of a telephone-event payload.
const TelephoneEventSize = 4

// Unmarshal parses the first four bytes of b.
func (e *TelephoneEvent) Unmarshal(b []byte) error {
	if len(b) < TelephoneEventSize {
		return ErrDTMF
	}
	e.Event = b[0]
	e.End = b[1]&0x80 != 0
	e.Volume = b[1] & 0x3f
	e.Duration = uint16(b[2])<<8 | uint16(b[3])
	return nil
}

// MarshalTo writes the payload into b, which needs TelephoneEventSize bytes.
func (e TelephoneEvent) MarshalTo(b []byte) (int, error) {
	if len(b) < TelephoneEventSize {
		return 0, ErrDTMF
	}
	b[0] = e.Event
	b[1] = e.Volume & 0x3f
	if e.End {
		b[1] |= 0x80
	}
	b[2], b[3] = byte(e.Duration>>8), byte(e.Duration)
	return TelephoneEventSize, nil
}

const dtmfDigits = "0123456789*#ABCD"

// EventDigit is the key of a DTMF event code; ok is false for other events.
func EventDigit(code uint8) (digit rune, ok bool) {
	if int(code) >= len(dtmfDigits) {
		return 0, false
	}
	return rune(dtmfDigits[code]), true
}

// DigitEvent is the event code of a key (0-9, *, #, A-D; a-d accepted).
func DigitEvent(digit rune) (code uint8, ok bool) {
	if digit >= 'a' && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	i := strings.IndexRune(dtmfDigits, digit)
	if i < 0 {
		return 0, false
	}
	return uint8(i), true
}

// DTMFDetector turns the telephone-event packets of one stream into one Event per key
// press: every packet of an event carries the same RTP timestamp, the end packet is sent
// three times and updates may be repeated, so a digit is reported once, on the first end
// packet, or, when all the end packets were lost, when the next event begins (or on Flush).
type DTMFDetector struct {
	clockRate int
	cur       uint32 // timestamp of the event in progress
	curEvent  TelephoneEvent
	active    bool // cur holds an event not yet reported
	done      uint32
	haveDone  bool // done holds the timestamp of the last reported event
	// Completed events not yet returned: a packet can complete two (the previous event whose
	// end was lost, and its own), so Push returns one and keeps the other for the next call.
	queue [4]Event
	head  int
	n     int
}

// NewDTMFDetector returns a detector for a telephone-event stream at clockRate (8000
// unless the SDP says otherwise).
func NewDTMFDetector(clockRate int) *DTMFDetector {
	if clockRate <= 0 {
		clockRate = Rate8k
	}
	return &DTMFDetector{clockRate: clockRate}
}

// Push handles one telephone-event packet's payload with its RTP timestamp and returns a
// completed key press, if any. Events other than keys (flash, tones) are ignored.
func (d *DTMFDetector) Push(timestamp uint32, payload []byte) (Event, bool, error) {
	var e TelephoneEvent
	if err := e.Unmarshal(payload); err != nil {
		ev, ok := d.pop()
		return ev, ok, err
	}
	_, isDigit := EventDigit(e.Event)
	repeat := d.haveDone && timestamp == d.done // a repeat of the end of a reported event
	if isDigit && !repeat {
		if d.active && timestamp != d.cur {
			d.complete()
		}
		if !d.active {
			d.active, d.cur, d.curEvent = true, timestamp, e
		} else if e.Duration >= d.curEvent.Duration || e.End {
			d.curEvent = e
		}
		if e.End {
			d.complete()
		}
	}
	ev, ok := d.pop()
	return ev, ok, nil
}

// Flush reports the event in progress as complete, and any completed event not yet
// returned; the caller calls it until it returns false when no telephone-event packet
// came for a while, to recover from lost end packets.
func (d *DTMFDetector) Flush() (Event, bool) {
	d.complete()
	return d.pop()
}

func (d *DTMFDetector) complete() {
	if !d.active {
		return
	}
	d.active = false
	d.done, d.haveDone = d.cur, true
	digit, _ := EventDigit(d.curEvent.Event)
	ev := Event{
		Kind:     EventDTMF,
		Digit:    digit,
		Duration: time.Duration(d.curEvent.Duration) * time.Second / time.Duration(d.clockRate),
	}
	if d.n == len(d.queue) { // never in practice: drop the oldest
		d.head = (d.head + 1) % len(d.queue)
		d.n--
	}
	d.queue[(d.head+d.n)%len(d.queue)] = ev
	d.n++
}

func (d *DTMFDetector) pop() (Event, bool) {
	if d.n == 0 {
		return Event{}, false
	}
	ev := d.queue[d.head]
	d.head = (d.head + 1) % len(d.queue)
	d.n--
	return ev, true
}

// DTMFPacket is one packet of an outbound telephone event: the caller sends it At after
// the event began, with the event's timestamp (all packets of an event share it) through
// Packetizer.PacketizeEvent.
type DTMFPacket struct {
	At      time.Duration
	Marker  bool
	Payload [TelephoneEventSize]byte
}

// dtmfUpdateInterval is how often an event in progress is refreshed (RFC 4733 §2.5.1.2
// leaves it to the sender; 50 ms is customary).
const dtmfUpdateInterval = 50 * time.Millisecond

// AppendDTMFPackets appends the packets of one key press lasting d to dst: a first packet
// with the marker bit, an update every 50 ms with a growing duration, and the end packet
// three times (RFC 4733 §2.5.1.4), 20 ms apart. volume is in -dBm0 (10 is customary).
// It does not allocate when dst has room for d/50ms+4 packets.
func AppendDTMFPackets(dst []DTMFPacket, digit rune, d time.Duration, clockRate int, volume uint8) ([]DTMFPacket, error) {
	code, ok := DigitEvent(digit)
	if !ok || clockRate <= 0 {
		return dst, ErrDTMF
	}
	maxD := time.Duration(0xffff) * time.Second / time.Duration(clockRate)
	d = max(min(d, maxD), dtmfUpdateInterval)
	units := func(t time.Duration) uint16 { return uint16(int64(t) * int64(clockRate) / int64(time.Second)) }
	add := func(at time.Duration, marker, end bool, dur uint16) {
		p := DTMFPacket{At: at, Marker: marker}
		_, _ = TelephoneEvent{Event: code, End: end, Volume: volume, Duration: dur}.MarshalTo(p.Payload[:])
		dst = append(dst, p)
	}
	add(0, true, false, 0)
	for at := dtmfUpdateInterval; at < d; at += dtmfUpdateInterval {
		add(at, false, false, units(at))
	}
	for i := range 3 {
		add(d+time.Duration(i)*FrameDuration, false, true, units(d))
	}
	return dst, nil
}

// ParseDTMFInfo parses the body of a SIP INFO carrying a key press: contentType
// application/dtmf-relay ("Signal=5\r\nDuration=160", duration in ms) or application/dtmf
// ("5"). A Signal of 10 or 11 is taken as * or # as some gateways send them.
func ParseDTMFInfo(contentType string, body []byte) (Event, error) {
	ct, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(ct)) {
	case "application/dtmf-relay":
		return ParseDTMFRelay(body)
	case "application/dtmf":
		digit, err := parseSignal(bytes.TrimSpace(body))
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: EventDTMF, Digit: digit}, nil
	default:
		return Event{}, ErrDTMF
	}
}

// ParseDTMFRelay parses an application/dtmf-relay body.
func ParseDTMFRelay(body []byte) (Event, error) {
	ev := Event{Kind: EventDTMF}
	for len(body) > 0 {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			continue
		}
		key, val = bytes.TrimSpace(key), bytes.TrimSpace(val)
		switch {
		case asciiEqualFold(key, "signal"):
			digit, err := parseSignal(val)
			if err != nil {
				return Event{}, err
			}
			ev.Digit = digit
		case asciiEqualFold(key, "duration"):
			ms, err := strconv.ParseUint(string(val), 10, 32)
			if err != nil {
				return Event{}, ErrDTMF
			}
			ev.Duration = time.Duration(ms) * time.Millisecond
		}
	}
	if ev.Digit == 0 {
		return Event{}, ErrDTMF
	}
	return ev, nil
}

func parseSignal(v []byte) (rune, error) {
	switch {
	case len(v) == 1:
		if _, ok := DigitEvent(rune(v[0])); ok {
			if v[0] >= 'a' && v[0] <= 'd' {
				return rune(v[0] - ('a' - 'A')), nil
			}
			return rune(v[0]), nil
		}
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		digit, _ := EventDigit(10 + v[1] - '0')
		return digit, nil
	}
	return 0, ErrDTMF
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
