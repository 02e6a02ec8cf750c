package media

// G.711 (ITU-T G.711, 1988) carries telephone audio as one byte a sample at 8 kHz: PCMU
// (μ-law, North America and Japan, RTP payload type 0) and PCMA (A-law, elsewhere, payload
// type 8). Both are stateless, so a frame is encoded or decoded with table look-ups alone:
// 256-entry decode tables, and encode tables indexed by the bits of the sample the law keeps
// (14 for μ-law, 13 for A-law), which are built once from the segment computation of the
// reference implementation so the two never disagree.

// RTP static payload types and clock rate of G.711 (RFC 3551, table 4).
const (
	PayloadTypePCMU = 0
	PayloadTypePCMA = 8
	// ClockRateG711 is the RTP clock and sample rate of both laws.
	ClockRateG711 = Rate8k
)

var (
	ulawDecode [256]int16
	alawDecode [256]int16
	// ulawEncode is indexed by the sample shifted right by 2 (μ-law keeps 14 bits).
	ulawEncode [1 << 14]byte
	// alawEncode is indexed by the sample shifted right by 3 (A-law keeps 13 bits).
	alawEncode [1 << 13]byte
)

func init() {
	for i := range 256 {
		ulawDecode[i] = ulawToLinear(byte(i))
		alawDecode[i] = alawToLinear(byte(i))
	}
	for i := range ulawEncode {
		ulawEncode[i] = linearToULaw(int16(uint16(i) << 2))
	}
	for i := range alawEncode {
		alawEncode[i] = linearToALaw(int16(uint16(i) << 3))
	}
}

// EncodePCMU writes μ-law bytes for src into dst and returns how many it wrote:
// min(len(dst), len(src)).
func EncodePCMU(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, s := range src {
		dst[i] = ulawEncode[uint16(s)>>2]
	}
	return n
}

// DecodePCMU writes linear samples for the μ-law bytes of src into dst and returns how many
// it wrote: min(len(dst), len(src)).
func DecodePCMU(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, b := range src {
		dst[i] = ulawDecode[b]
	}
	return n
}

// EncodePCMA writes A-law bytes for src into dst and returns how many it wrote:
// min(len(dst), len(src)).
func EncodePCMA(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, s := range src {
		dst[i] = alawEncode[uint16(s)>>3]
	}
	return n
}

// DecodePCMA writes linear samples for the A-law bytes of src into dst and returns how many
// it wrote: min(len(dst), len(src)).
func DecodePCMA(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, b := range src {
		dst[i] = alawDecode[b]
	}
	return n
}

// Codec is a stateless audio codec the RTP layer can put in a payload: one encoded byte
// slice per frame, written into buffers the caller owns.
type Codec interface {
	// Name is the SDP encoding name (rtpmap), e.g. "PCMU".
	Name() string
	// PayloadType is the RTP payload type.
	PayloadType() uint8
	// ClockRate is the RTP clock rate, which for G.711 is also the sample rate.
	ClockRate() int
	// Encode writes the payload for src into dst and returns its length.
	Encode(dst []byte, src []int16) int
	// Decode writes the samples of payload src into dst and returns how many.
	Decode(dst []int16, src []byte) int
}

// PCMU is the μ-law Codec.
type PCMU struct{}

// Name implements Codec.
func (PCMU) Name() string { return "PCMU" }

// PayloadType implements Codec.
func (PCMU) PayloadType() uint8 { return PayloadTypePCMU }

// ClockRate implements Codec.
func (PCMU) ClockRate() int { return ClockRateG711 }

// Encode implements Codec.
func (PCMU) Encode(dst []byte, src []int16) int { return EncodePCMU(dst, src) }

// Decode implements Codec.
func (PCMU) Decode(dst []int16, src []byte) int { return DecodePCMU(dst, src) }

// PCMA is the A-law Codec.
type PCMA struct{}

// Name implements Codec.
func (PCMA) Name() string { return "PCMA" }

// PayloadType implements Codec.
func (PCMA) PayloadType() uint8 { return PayloadTypePCMA }

// ClockRate implements Codec.
func (PCMA) ClockRate() int { return ClockRateG711 }

// Encode implements Codec.
func (PCMA) Encode(dst []byte, src []int16) int { return EncodePCMA(dst, src) }

// Decode implements Codec.
func (PCMA) Decode(dst []int16, src []byte) int { return DecodePCMA(dst, src) }

// The four functions below follow the public-domain reference (Sun Microsystems' g711.c),
// which carriers and every softphone reproduce; they run only at init to fill the tables.

// ulawSegEnd holds the top of each μ-law segment, in the 14-bit biased domain.
var ulawSegEnd = [8]int{0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF}

// alawSegEnd holds the top of each A-law segment, in the 13-bit domain.
var alawSegEnd = [8]int{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}

func segment(v int, ends *[8]int) int {
	for i, e := range ends {
		if v <= e {
			return i
		}
	}
	return 8
}

func linearToULaw(s int16) byte {
	const bias, clip = 0x84 >> 2, 8159
	v := int(s) >> 2
	mask := byte(0xFF)
	if v < 0 {
		v = -v
		mask = 0x7F
	}
	v = min(v, clip) + bias
	seg := segment(v, &ulawSegEnd)
	if seg >= 8 {
		return 0x7F ^ mask
	}
	return byte(seg<<4|(v>>(seg+1))&0x0F) ^ mask
}

func ulawToLinear(u byte) int16 {
	u = ^u
	t := (int(u&0x0F) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func linearToALaw(s int16) byte {
	v := int(s) >> 3
	mask := byte(0xD5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := segment(v, &alawSegEnd)
	if seg >= 8 {
		return 0x7F ^ mask
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0x0F
	} else {
		a |= (v >> seg) & 0x0F
	}
	return byte(a) ^ mask
}

func alawToLinear(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	switch seg := int(a&0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
