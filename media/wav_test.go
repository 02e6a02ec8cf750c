package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// memFile is an in-memory io.WriteSeeker, so tests need not touch the disk.
type memFile struct {
	b   []byte
	pos int
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.pos + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[m.pos:], p)
	m.pos += len(p)
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		m.pos = int(off)
	case io.SeekCurrent:
		m.pos += int(off)
	case io.SeekEnd:
		m.pos = len(m.b) + int(off)
	}
	return int64(m.pos), nil
}

func TestWAVMonoRoundTrip(t *testing.T) {
	t.Parallel()
	var f memFile
	w, err := NewWAVWriter(&f, Rate16k, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A second of 440 Hz, written as the media path would: frame by frame.
	for i := range 50 {
		if err := w.Write(testTone(440, Rate16k, 320, i*320, 8000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Write(make([]int16, 1)); !errors.Is(err, ErrWAVClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	got, err := ReadWAV(bytes.NewReader(f.b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Rate != Rate16k || got.Channels != 1 || len(got.Samples) != 16000 {
		t.Fatalf("read %d Hz, %d channels, %d samples", got.Rate, got.Channels, len(got.Samples))
	}
	if freq := zeroCrossFreq(got.Samples, got.Rate); math.Abs(freq-440) > 1 {
		t.Errorf("tone read back at %.1f Hz, want 440", freq)
	}
	if snr, _ := fitToneSNR(t, got.Samples, 440, got.Rate); snr < 60 {
		t.Errorf("tone read back with SNR %.1f dB", snr)
	}
}

// TestWAVStereoCall records a call the way its owner would: caller left, agent right,
// the agent silent for the first half second.
func TestWAVStereoCall(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "call.wav")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWAVWriter(file, Rate8k, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		caller := testTone(400, Rate8k, 160, i*160, 8000)
		var agent []int16
		if i >= 25 {
			agent = testTone(1000, Rate8k, 160, i*160, 8000)
		}
		if err := w.WriteStereo(caller, agent); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(make([]int16, 160)); err == nil {
		t.Error("mono write to a stereo file succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	file, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	got, err := ReadWAV(file)
	if err != nil {
		t.Fatal(err)
	}
	if got.Channels != 2 || got.Rate != Rate8k {
		t.Fatalf("read %d channels at %d Hz", got.Channels, got.Rate)
	}
	left, right := got.Channel(0), got.Channel(1)
	if len(left) != 8000 || len(right) != 8000 {
		t.Fatalf("%d and %d samples, want 8000 each", len(left), len(right))
	}
	if f := zeroCrossFreq(left, Rate8k); math.Abs(f-400) > 2 {
		t.Errorf("caller (left) at %.1f Hz, want 400", f)
	}
	if r := rms(right[:4000]); r != 0 {
		t.Errorf("agent (right) not silent before it spoke: rms %.1f", r)
	}
	if f := zeroCrossFreq(right[4000:], Rate8k); math.Abs(f-1000) > 2 {
		t.Errorf("agent (right) at %.1f Hz, want 1000", f)
	}
}

func TestReadWAVRejects(t *testing.T) {
	t.Parallel()
	valid := wavBytes(t, 1, Rate8k, testTone(1000, Rate8k, 160, 0, 1000))
	cases := map[string][]byte{
		"empty":     nil,
		"not riff":  append([]byte("RIFX"), valid[4:]...),
		"truncated": valid[:30],
		"8 bit":     patch(valid, 34, 8),
		"3 channel": patch(valid, 22, 3),
		"float":     patch(valid, 20, 3),
		"no data":   valid[:36],
	}
	for name, b := range cases {
		if _, err := ReadWAV(bytes.NewReader(b)); !errors.Is(err, ErrInvalidWAV) {
			t.Errorf("%s: %v, want ErrInvalidWAV", name, err)
		}
	}
}

func TestReadWAVStreamingSize(t *testing.T) {
	t.Parallel()
	// A writer killed before Close leaves a zero data size; what was written still reads.
	b := wavBytes(t, 1, Rate8k, testTone(1000, Rate8k, 800, 0, 5000))
	binary.LittleEndian.PutUint32(b[40:], 0)
	got, err := ReadWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f := zeroCrossFreq(got.Samples, Rate8k); math.Abs(f-1000) > 2 {
		t.Errorf("tone at %.1f Hz", f)
	}
}

func wavBytes(t testing.TB, channels, rate int, samples []int16) []byte {
	t.Helper()
	var f memFile
	w, err := NewWAVWriter(&f, rate, channels)
	if err != nil {
		t.Fatal(err)
	}
	if channels == 1 {
		err = w.Write(samples)
	} else {
		err = w.WriteStereo(samples, samples)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.b
}

func patch(b []byte, off int, v uint16) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint16(c[off:], v)
	return c
}

func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes(f, 1, Rate8k, testTone(1000, Rate8k, 160, 0, 1000)))
	f.Add(wavBytes(f, 2, Rate48k, testTone(1000, Rate48k, 96, 0, 1000)))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\xff\xff\xff\xff\x01\x02\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrInvalidWAV) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		if w.Channels != 1 && w.Channels != 2 {
			t.Fatalf("%d channels accepted", w.Channels)
		}
		if len(w.Samples)%w.Channels != 0 {
			t.Fatalf("%d samples for %d channels", len(w.Samples), w.Channels)
		}
		if 2*len(w.Samples) > len(b) {
			t.Fatalf("%d samples from %d bytes", len(w.Samples), len(b))
		}
	})
}

func BenchmarkWAVWriteStereo(b *testing.B) {
	f := &memFile{}
	w, err := NewWAVWriter(f, Rate8k, 2)
	if err != nil {
		b.Fatal(err)
	}
	frame := testTone(1000, Rate8k, 160, 0, 1000)
	b.ReportAllocs()
	for b.Loop() {
		f.pos = wavHeaderLen // keep the in-memory file one frame long
		if err := w.WriteStereo(frame, frame); err != nil {
			b.Fatal(err)
		}
	}
}

// EncodeWAV writes, at once, the file the streaming writer writes.
func TestEncodeWAV(t *testing.T) {
	t.Parallel()
	tone := testTone(440, Rate8k, 1234, 0, 8000)
	var f memFile
	w, err := NewWAVWriter(&f, Rate8k, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(tone); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := EncodeWAV(tone, Rate8k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, f.b) {
		t.Fatalf("EncodeWAV wrote %d bytes unlike the writer's %d", len(b), len(f.b))
	}
	if _, err := EncodeWAV(tone, 0); !errors.Is(err, ErrUnsupportedRate) {
		t.Fatalf("rate 0: %v", err)
	}
}
