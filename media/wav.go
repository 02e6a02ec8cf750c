package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// WAV files here are RIFF/WAVE with one PCM16 fmt chunk and one data chunk: what call
// recordings are written as and what test fixtures are read from. The writer streams
// frames as they come and patches the two size fields on Close, so a recording of any
// length never sits in memory.

var (
	// ErrInvalidWAV is a file that is not a PCM16 RIFF/WAVE file the reader handles.
	ErrInvalidWAV = errors.New("media: invalid WAV file")
	// ErrWAVClosed is a write to a WAVWriter after Close.
	ErrWAVClosed = errors.New("media: WAV writer closed")
)

const (
	wavHeaderLen = 44
	// wavMaxData is the largest data chunk a RIFF size field (uint32) can describe once the
	// rest of the header is counted.
	wavMaxData = math.MaxUint32 - (wavHeaderLen - 8)
)

// WAVWriter writes PCM16 audio, mono or stereo, to an io.WriteSeeker. It is not safe for
// concurrent use; a call's recorder is fed by the call's owner.
type WAVWriter struct {
	w        io.WriteSeeker
	rate     int
	channels int
	data     int64 // bytes of samples written
	buf      []byte
	closed   bool
	err      error
}

// NewWAVWriter writes a header for rate and channels (1, or 2 for a call recording) to w
// and returns a writer for the samples. The sizes in the header are fixed by Close.
func NewWAVWriter(w io.WriteSeeker, rate, channels int) (*WAVWriter, error) {
	if !wavRate(rate) {
		return nil, fmt.Errorf("%w: %d Hz", ErrUnsupportedRate, rate)
	}
	if channels != 1 && channels != 2 {
		return nil, fmt.Errorf("media: WAV writer: %d channels, want 1 or 2", channels)
	}
	ww := &WAVWriter{
		w:        w,
		rate:     rate,
		channels: channels,
		// Room for a 20 ms stereo frame at 48 kHz; larger writes go in pieces.
		buf: make([]byte, 2*2*SamplesPerFrame(Rate48k)),
	}
	if _, err := w.Write(ww.header(0)); err != nil {
		return nil, fmt.Errorf("media: write WAV header: %w", err)
	}
	return ww, nil
}

// maxRate bounds the sample rates media takes anywhere (WAV files, the resampler).
const maxRate = 384000

func wavRate(rate int) bool { return rate > 0 && rate <= maxRate }

// EncodeWAV is mono samples at rate as a whole WAV file in memory, for audio that is sent
// or stored at once (an utterance to transcribe, a voicemail).
func EncodeWAV(samples []int16, rate int) ([]byte, error) {
	if !wavRate(rate) {
		return nil, fmt.Errorf("%w: %d Hz", ErrUnsupportedRate, rate)
	}
	ww := WAVWriter{rate: rate, channels: 1}
	b := append(make([]byte, 0, wavHeaderLen+2*len(samples)), ww.header(uint32(2*len(samples)))...)
	for _, s := range samples {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b, nil
}

func (ww *WAVWriter) header(data uint32) []byte {
	h := make([]byte, wavHeaderLen)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], data+wavHeaderLen-8)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], uint16(ww.channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(ww.rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(ww.rate*ww.channels*2))
	binary.LittleEndian.PutUint16(h[32:], uint16(ww.channels*2))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], data)
	return h
}

// Write writes mono samples; the writer must have one channel.
func (ww *WAVWriter) Write(samples []int16) error {
	if ww.channels != 1 {
		return fmt.Errorf("media: WAV writer: mono write to a %d-channel file", ww.channels)
	}
	for len(samples) > 0 {
		n := min(len(samples), len(ww.buf)/2)
		for i, s := range samples[:n] {
			binary.LittleEndian.PutUint16(ww.buf[2*i:], uint16(s))
		}
		if err := ww.put(ww.buf[:2*n]); err != nil {
			return err
		}
		samples = samples[n:]
	}
	return nil
}

// WriteStereo writes left and right interleaved; the writer must have two channels. The
// shorter side is padded with silence, so the call's owner can write both sides of each
// 20 ms tick even when one side sent nothing (caller on the left, agent on the right).
func (ww *WAVWriter) WriteStereo(left, right []int16) error {
	if ww.channels != 2 {
		return fmt.Errorf("media: WAV writer: stereo write to a %d-channel file", ww.channels)
	}
	total := max(len(left), len(right))
	for off := 0; off < total; {
		n := min(total-off, len(ww.buf)/4)
		for i := range n {
			var l, r int16
			if off+i < len(left) {
				l = left[off+i]
			}
			if off+i < len(right) {
				r = right[off+i]
			}
			binary.LittleEndian.PutUint16(ww.buf[4*i:], uint16(l))
			binary.LittleEndian.PutUint16(ww.buf[4*i+2:], uint16(r))
		}
		if err := ww.put(ww.buf[:4*n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (ww *WAVWriter) put(b []byte) error {
	if ww.closed {
		return ErrWAVClosed
	}
	if ww.err != nil {
		return ww.err
	}
	if ww.data+int64(len(b)) > wavMaxData {
		ww.err = fmt.Errorf("media: WAV writer: recording exceeds the 4 GiB RIFF limit")
		return ww.err
	}
	n, err := ww.w.Write(b)
	ww.data += int64(n)
	if err != nil {
		// A partial sample would shift every later one, so the writer stops for good.
		ww.err = fmt.Errorf("media: write WAV samples: %w", err)
		return ww.err
	}
	return nil
}

// Close fixes the sizes in the header and leaves w positioned at its end. It does not
// close w. It is idempotent.
func (ww *WAVWriter) Close() error {
	if ww.closed {
		return nil
	}
	ww.closed = true
	// Only whole sample frames count, in case a write failed part-way.
	data := ww.data - ww.data%int64(2*ww.channels)
	if _, err := ww.w.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("media: seek WAV header: %w", err)
	}
	if _, err := ww.w.Write(ww.header(uint32(data))); err != nil {
		return fmt.Errorf("media: rewrite WAV header: %w", err)
	}
	if _, err := ww.w.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("media: seek WAV end: %w", err)
	}
	return ww.err
}

// WAV is a decoded PCM16 file. Samples are interleaved when Channels is 2.
type WAV struct {
	Rate     int
	Channels int
	Samples  []int16
}

// Channel returns the samples of channel c (0 = left) as a new slice.
func (w *WAV) Channel(c int) []int16 {
	if c < 0 || c >= w.Channels {
		return nil
	}
	out := make([]int16, 0, len(w.Samples)/w.Channels)
	for i := c; i < len(w.Samples); i += w.Channels {
		out = append(out, w.Samples[i])
	}
	return out
}

// wavMaxRead bounds what ReadWAV accepts, so a hostile size field cannot make it allocate
// without limit: an hour of 48 kHz stereo.
const wavMaxRead = 48000 * 2 * 2 * 3600

// ReadWAV reads a PCM16 RIFF/WAVE file (1 or 2 channels), skipping chunks other than fmt
// and data. A data size of 0 or 0xFFFFFFFF, which streaming writers leave behind, or one
// larger than the file, is read to the end of the input.
func ReadWAV(r io.Reader) (*WAV, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrInvalidWAV, err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: not RIFF/WAVE", ErrInvalidWAV)
	}
	var out *WAV
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return nil, fmt.Errorf("%w: no data chunk: %w", ErrInvalidWAV, err)
		}
		id, size := string(ch[0:4]), int64(binary.LittleEndian.Uint32(ch[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrInvalidWAV, size)
			}
			f := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, f); err != nil {
				return nil, fmt.Errorf("%w: fmt chunk: %w", ErrInvalidWAV, err)
			}
			format := binary.LittleEndian.Uint16(f[0:])
			channels := int(binary.LittleEndian.Uint16(f[2:]))
			rate := int(binary.LittleEndian.Uint32(f[4:]))
			bits := binary.LittleEndian.Uint16(f[14:])
			// 0xFFFE is WAVE_FORMAT_EXTENSIBLE; with 16 bits and 1–2 channels it is PCM in
			// practice.
			if (format != 1 && format != 0xFFFE) || bits != 16 {
				return nil, fmt.Errorf("%w: format %d with %d bits, want PCM16", ErrInvalidWAV, format, bits)
			}
			if channels != 1 && channels != 2 {
				return nil, fmt.Errorf("%w: %d channels", ErrInvalidWAV, channels)
			}
			if !wavRate(rate) {
				return nil, fmt.Errorf("%w: rate %d", ErrInvalidWAV, rate)
			}
			out = &WAV{Rate: rate, Channels: channels}
		case "data":
			if out == nil {
				return nil, fmt.Errorf("%w: data before fmt", ErrInvalidWAV)
			}
			lr := io.Reader(r)
			if size != 0 && size != math.MaxUint32 {
				lr = io.LimitReader(r, size)
			}
			// Read without trusting size for the allocation; a bound stops runaway input.
			b, err := io.ReadAll(io.LimitReader(lr, wavMaxRead+1))
			if err != nil {
				return nil, fmt.Errorf("%w: data: %w", ErrInvalidWAV, err)
			}
			if len(b) > wavMaxRead {
				return nil, fmt.Errorf("%w: data larger than %d bytes", ErrInvalidWAV, wavMaxRead)
			}
			frame := 2 * out.Channels
			b = b[:len(b)-len(b)%frame]
			out.Samples = make([]int16, len(b)/2)
			for i := range out.Samples {
				out.Samples[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
			}
			return out, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size%2); err != nil {
				return nil, fmt.Errorf("%w: chunk %q: %w", ErrInvalidWAV, id, err)
			}
		}
	}
}
