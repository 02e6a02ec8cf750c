package media

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// opusTone encodes and decodes frames of a tone and returns the decoded audio.
func opusTone(t testing.TB, cfg OpusConfig, freq float64, frames int) []int16 {
	enc, err := NewOpusEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewOpusDecoder(cfg.Rate)
	if err != nil {
		t.Fatal(err)
	}
	n := SamplesPerFrame(cfg.Rate)
	packet := make([]byte, OpusMaxPacket)
	frame := make([]int16, n)
	out := make([]int16, 0, frames*n)
	for i := range frames {
		size, err := enc.Encode(packet, testTone(freq, cfg.Rate, n, i*n, 10000))
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Decode(frame, packet[:size])
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("decoded %d samples, want %d", got, n)
		}
		out = append(out, frame...)
	}
	return out
}

func TestOpusKeepsToneFrequency(t *testing.T) {
	t.Parallel()
	for _, rate := range []int{Rate8k, Rate16k, Rate48k} {
		for _, complexity := range []int{1, 5, 10} {
			t.Run(fmt.Sprintf("%dHz/c%d", rate, complexity), func(t *testing.T) {
				t.Parallel()
				out := opusTone(t, OpusConfig{Rate: rate, Complexity: complexity}, 1000, 50)
				steady := out[5*SamplesPerFrame(rate):]
				f := zeroCrossFreq(steady, rate)
				snr, amp := fitToneSNR(t, steady, 1000, rate)
				t.Logf("frequency %.1f Hz, SNR %.1f dB, level %.1f dB", f, snr, 20*math.Log10(amp/10000))
				if math.Abs(f-1000) > 5 {
					t.Errorf("tone came back at %.1f Hz, want 1000", f)
				}
				// A perceptual codec is not a waveform codec: at complexity 1 and 8 kHz SILK
				// keeps the tone at about 12 dB over the rest, at 5 and above over 30 dB.
				// Above 10 dB, 90% of the energy is still the tone.
				if snr < 10 {
					t.Errorf("SNR %.1f dB, want > 10", snr)
				}
			})
		}
	}
}

// TestOpusLossConcealment drops packets and checks that the gaps are filled with something
// that still sounds like the tone, by PLC and by FEC from the following packet.
func TestOpusLossConcealment(t *testing.T) {
	t.Parallel()
	const rate = Rate16k
	n := SamplesPerFrame(rate)
	enc, err := NewOpusEncoder(OpusConfig{Rate: rate, FEC: true, PacketLossPercent: 20, Bitrate: 32000})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewOpusDecoder(rate)
	if err != nil {
		t.Fatal(err)
	}
	packets := make([][]byte, 40)
	for i := range packets {
		buf := make([]byte, OpusMaxPacket)
		size, err := enc.Encode(buf, testTone(600, rate, n, i*n, 10000))
		if err != nil {
			t.Fatal(err)
		}
		packets[i] = buf[:size]
	}
	out := make([]int16, 0, len(packets)*n)
	frame := make([]int16, 2*n) // larger than a frame: concealment must still write one frame
	for i, p := range packets {
		var got int
		switch {
		case i%10 == 5: // lost; the next packet's FEC recovers it
			got, err = dec.DecodeFEC(frame, packets[i+1])
		case i%10 == 8: // lost; nothing to recover from
			got, err = dec.Decode(frame, nil)
		default:
			got, err = dec.Decode(frame, p)
		}
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got != n {
			t.Fatalf("packet %d: %d samples, want %d", i, got, n)
		}
		out = append(out, frame[:got]...)
	}
	for _, lost := range []int{15, 25, 35, 18, 28} {
		gap := out[lost*n : (lost+1)*n]
		if f := zeroCrossFreq(gap, rate); math.Abs(f-600) > 30 {
			t.Errorf("concealed frame %d at %.1f Hz, want 600", lost, f)
		}
		if r := rms(gap); r < 10000/math.Sqrt2/4 {
			t.Errorf("concealed frame %d nearly silent: rms %.0f", lost, r)
		}
	}
}

func TestOpusMaxBandwidth(t *testing.T) {
	t.Parallel()
	// Capped at wideband, a 48 kHz encoder still carries speech-band tones, and drops what
	// lies above 8 kHz.
	for _, tc := range []struct {
		freq float64
		want bool
	}{{1000, true}, {12000, false}} {
		got := opusTone(t, OpusConfig{Rate: Rate48k, Complexity: 1, MaxBandwidth: 8000}, tc.freq, 40)
		level := rms(got[20*960:])
		if heard := level > 2000; heard != tc.want {
			t.Errorf("%.0f Hz: level %.0f after the cap", tc.freq, level)
		}
	}
}

func TestOpusDTX(t *testing.T) {
	t.Parallel()
	enc, err := NewOpusEncoder(OpusConfig{Rate: Rate16k, DTX: true})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, OpusMaxPacket)
	silence := make([]int16, SamplesPerFrame(Rate16k))
	var last int
	for range 50 {
		if last, err = enc.Encode(buf, silence); err != nil {
			t.Fatal(err)
		}
	}
	if last > 3 {
		t.Errorf("silence with DTX encodes to %d bytes, want a DTX packet (≤ 3)", last)
	}
}

func TestOpusErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewOpusEncoder(OpusConfig{Rate: 44100}); !errors.Is(err, ErrUnsupportedRate) {
		t.Errorf("44.1 kHz encoder: %v", err)
	}
	if _, err := NewOpusEncoder(OpusConfig{Rate: Rate8k, Complexity: 11}); err == nil {
		t.Error("complexity 11 accepted")
	}
	if _, err := NewOpusEncoder(OpusConfig{Rate: Rate48k, MaxBandwidth: 7000}); err == nil {
		t.Error("a bandwidth of 7 kHz accepted")
	}
	enc, _ := NewOpusEncoder(OpusConfig{Rate: Rate8k})
	if _, err := enc.Encode(make([]byte, OpusMaxPacket), make([]int16, 100)); err == nil {
		t.Error("encoded a partial frame")
	}
	dec, _ := NewOpusDecoder(Rate8k)
	if _, err := dec.Decode(make([]int16, 160), []byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("decoded garbage without error")
	}
	if _, err := dec.Decode(make([]int16, 10), nil); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("PLC into 10 samples: %v", err)
	}
}

func TestOpusNoAllocs(t *testing.T) {
	enc, _ := NewOpusEncoder(OpusConfig{Rate: Rate16k})
	dec, _ := NewOpusDecoder(Rate16k)
	pcm := testTone(1000, Rate16k, 320, 0, 10000)
	packet := make([]byte, OpusMaxPacket)
	out := make([]int16, 320)
	allocs := testing.AllocsPerRun(100, func() {
		n, err := enc.Encode(packet, pcm)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Decode(out, packet[:n]); err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Decode(out, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Opus frame: %.1f allocations, want 0", allocs)
	}
}

func BenchmarkOpusEncode(b *testing.B) {
	for _, rate := range []int{Rate8k, Rate16k, Rate48k} {
		b.Run(fmt.Sprintf("%dk", rate/1000), func(b *testing.B) {
			enc, err := NewOpusEncoder(OpusConfig{Rate: rate})
			if err != nil {
				b.Fatal(err)
			}
			n := SamplesPerFrame(rate)
			frames := [][]int16{testTone(440, rate, n, 0, 8000), testTone(440, rate, n, n, 8000)}
			packet := make([]byte, OpusMaxPacket)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := enc.Encode(packet, frames[i&1]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkOpusDecode(b *testing.B) {
	for _, rate := range []int{Rate8k, Rate16k, Rate48k} {
		b.Run(fmt.Sprintf("%dk", rate/1000), func(b *testing.B) {
			enc, _ := NewOpusEncoder(OpusConfig{Rate: rate})
			dec, err := NewOpusDecoder(rate)
			if err != nil {
				b.Fatal(err)
			}
			n := SamplesPerFrame(rate)
			packets := make([][]byte, 50)
			for i := range packets {
				buf := make([]byte, OpusMaxPacket)
				size, err := enc.Encode(buf, testTone(440, rate, n, i*n, 8000))
				if err != nil {
					b.Fatal(err)
				}
				packets[i] = buf[:size]
			}
			out := make([]int16, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := dec.Decode(out, packets[i%len(packets)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
