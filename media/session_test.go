package media

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// udpPair opens an RTP socket and, when withRTCP, an RTCP socket on the next port of
// 127.0.0.1.
func udpPair(t testing.TB, withRTCP bool) (rtpConn, rtcpConn *net.UDPConn) {
	t.Helper()
	for range 50 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if !withRTCP {
			return c, nil
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if port < 65535 {
			r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
			if err == nil {
				return c, r
			}
		}
		_ = c.Close()
	}
	t.Fatal("no pair of adjacent UDP ports")
	return nil, nil
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return unmapAddrPort(c.LocalAddr().(*net.UDPAddr).AddrPort())
}

// sessionPair returns two sessions talking to each other on loopback; tweak adjusts each
// configuration before the session starts.
func sessionPair(t testing.TB, codec CodecSpec, rate int, withRTCP bool, tweak func(i int, cfg *RTPConfig)) (a, b *RTPSession) {
	t.Helper()
	ca, ra := udpPair(t, withRTCP)
	cb, rb := udpPair(t, withRTCP)
	cfgA := RTPConfig{Conn: ca, RTCP: ra, Remote: addrOf(cb), Codec: codec, EventPT: 101, Rate: rate}
	cfgB := RTPConfig{Conn: cb, RTCP: rb, Remote: addrOf(ca), Codec: codec, EventPT: 101, Rate: rate}
	if tweak != nil {
		tweak(0, &cfgA)
		tweak(1, &cfgB)
	}
	var err error
	if a, err = NewRTPSession(cfgA); err != nil {
		t.Fatal(err)
	}
	if b, err = NewRTPSession(cfgB); err != nil {
		_ = a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a, b
}

var (
	specPCMU = CodecSpec{Name: "PCMU", PayloadType: 0, ClockRate: 8000, Channels: 1}
	specPCMA = CodecSpec{Name: "PCMA", PayloadType: 8, ClockRate: 8000, Channels: 1}
	specOpus = CodecSpec{Name: "opus", PayloadType: 111, ClockRate: 48000, Channels: 2}
)

func TestRTPSessionTone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
	}{
		{specPCMU, Rate8k}, {specPCMU, Rate16k}, {specPCMU, Rate48k},
		{specPCMA, Rate8k}, {specPCMA, Rate16k}, {specPCMA, Rate48k},
		{specOpus, Rate8k}, {specOpus, Rate16k}, {specOpus, Rate48k},
	} {
		t.Run(tc.codec.Name+"/"+itoa(tc.rate), func(t *testing.T) {
			t.Parallel()
			a, b := sessionPair(t, tc.codec, tc.rate, false, nil)
			got := exchangeTone(t, a, b, 1000, 50)
			// The tail, past the jitter buffer's start and the codec's warm-up.
			tail := got[len(got)-20*SamplesPerFrame(tc.rate):]
			if f := zeroCrossFreq(tail, tc.rate); f < 980 || f > 1020 {
				t.Fatalf("heard %.1f Hz, want 1000", f)
			}
			if snr, amp := fitToneSNR(t, tail, 1000, tc.rate); snr < 15 || amp < 3000 {
				t.Fatalf("tone SNR %.1f dB, amplitude %.0f", snr, amp)
			}
		})
	}
}

// exchangeTone sends frames of a tone from a while b reads, and returns what b heard.
func exchangeTone(t *testing.T, a, b *RTPSession, freq float64, frames int) []int16 {
	t.Helper()
	rate := a.SampleRate()
	done := make(chan error, 1)
	go func() {
		tone := NewTone(freq, rate, 8000)
		f := Frame{Rate: rate, Samples: make([]int16, SamplesPerFrame(rate))}
		for range frames + 10 {
			tone.Fill(f.Samples)
			if err := a.WriteFrame(&f); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var out []int16
	f := Frame{}
	for range frames {
		if err := b.ReadFrame(&f); err != nil {
			t.Fatal(err)
		}
		out = append(out, f.Samples...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n/1000) + "k" }
