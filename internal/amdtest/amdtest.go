// Package amdtest makes the answers an outbound call's answering-machine detection is
// tested on: greetings spoken by espeak-ng (Debian espeak-ng) in several voices and speeds,
// beeps made by sox (Debian sox), both at telephone rate, and pcap files of them as PCMU
// RTP for SIPp to play as the far end (play_pcap_audio).
package amdtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/media"
)

// Rate is the rate of every clip: telephone audio.
const Rate = 8000

// Humans are what people say when they pick up: short, then they wait.
var Humans = []string{
	"Hello?",
	"Hi, who's this?",
	"Yes, hello?",
	"Hello, Sam speaking.",
	"Speaking.",
}

// Machines are voicemail greetings: long and uninterrupted.
var Machines = []string{
	"Hi, you've reached Sam Taylor. I can't take your call right now, so please leave a message after the tone.",
	"The person you are calling is not available. Please record your message at the tone.",
	"Hello, this is Maria. Sorry I missed you. Leave your name and number and I will get back to you soon.",
	"You have reached the office of Doctor Green. We are closed for the day. Please leave a message.",
	"Thanks for calling Acme Plumbing. Nobody can take your call at the moment, but we will call you back.",
}

// Voice is one way espeak-ng speaks: its voice (-v) and words per minute (-s).
type Voice struct {
	Name  string
	Speed int
}

// Voices are the variants every greeting is spoken in.
var Voices = []Voice{
	{"en-us", 140}, {"en-us", 175}, {"en-gb", 150}, {"en-gb-scotland", 165}, {"en-us+f3", 155}, {"en-gb-x-rp", 185},
}

// Tools skips the test unless espeak-ng and sox are installed (`make deps`).
func Tools(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (Debian %s, installed by `make deps`)", bin, bin)
		}
	}
}

// Speak is text spoken by espeak-ng in v, at Rate, as the line carries it: through PCMU.
func Speak(t testing.TB, v Voice, text string) []int16 {
	t.Helper()
	dir := t.TempDir()
	raw, tel := filepath.Join(dir, "say.wav"), filepath.Join(dir, "say8k.wav")
	run(t, "espeak-ng", "-v", v.Name, "-s", strconv.Itoa(v.Speed), "-w", raw, text)
	run(t, "sox", raw, "-r", strconv.Itoa(Rate), "-c", "1", "-b", "16", tel)
	return throughPCMU(readWAV(t, tel))
}

// Beep is a voicemail beep made by sox: a sine of freq Hz for seconds.
func Beep(t testing.TB, freq int, seconds float64) []int16 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "beep.wav")
	run(t, "sox", "-n", "-r", strconv.Itoa(Rate), "-c", "1", "-b", "16", out,
		"synth", strconv.FormatFloat(seconds, 'f', 3, 64), "sine", strconv.Itoa(freq), "vol", "0.5")
	return throughPCMU(readWAV(t, out))
}

// Silence is seconds of silence.
func Silence(seconds float64) []int16 { return make([]int16, int(seconds*Rate)) }

// Join puts clips one after another.
func Join(clips ...[]int16) []int16 {
	var out []int16
	for _, c := range clips {
		out = append(out, c...)
	}
	return out
}

// toolTimeout bounds one run of espeak-ng or sox; each takes well under a second.
const toolTimeout = 30 * time.Second

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func readWAV(t testing.TB, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := media.ReadWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return w.Channel(0)
}

func throughPCMU(s []int16) []int16 {
	enc := make([]byte, len(s))
	media.EncodePCMU(enc, s)
	media.DecodePCMU(s, enc)
	return s
}

// WritePCAP writes audio as the PCMU RTP stream a phone would send, 20 ms a packet, to a
// pcap file (Ethernet, IPv4, UDP) that SIPp plays with play_pcap_audio, and returns its path.
// SIPp sends each packet's UDP payload at the packet's time to the call's media address.
func WritePCAP(t testing.TB, audio []int16) string {
	t.Helper()
	const n = Rate / 50
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1) // LINKTYPE_ETHERNET
	b.Write(hdr)
	for i := 0; i*n < len(audio); i++ {
		frame := make([]int16, n)
		copy(frame, audio[i*n:])
		pkt := packet(uint16(i), uint32(i*n), frame)
		rec := make([]byte, 16)
		usec := i * 20000
		le.PutUint32(rec[0:], uint32(1_700_000_000+usec/1_000_000))
		le.PutUint32(rec[4:], uint32(usec%1_000_000))
		le.PutUint32(rec[8:], uint32(len(pkt)))
		le.PutUint32(rec[12:], uint32(len(pkt)))
		b.Write(rec)
		b.Write(pkt)
	}
	path := filepath.Join(t.TempDir(), "answer.pcap")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// packet is one Ethernet frame carrying an RTP packet of PCMU.
func packet(seq uint16, ts uint32, frame []int16) []byte {
	be := binary.BigEndian
	rtp := make([]byte, 12+len(frame))
	rtp[0], rtp[1] = 0x80, media.PayloadTypePCMU
	be.PutUint16(rtp[2:], seq)
	be.PutUint32(rtp[4:], ts)
	be.PutUint32(rtp[8:], 0x5eed)
	media.EncodePCMU(rtp[12:], frame)
	udp := make([]byte, 8, 8+len(rtp))
	be.PutUint16(udp[0:], 6000)
	be.PutUint16(udp[2:], 6002)
	be.PutUint16(udp[4:], uint16(8+len(rtp)))
	udp = append(udp, rtp...)
	ip := make([]byte, 20, 20+len(udp))
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	be.PutUint16(ip[2:], uint16(20+len(udp)))
	copy(ip[12:], []byte{127, 0, 0, 1})
	copy(ip[16:], []byte{127, 0, 0, 1})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(be.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	be.PutUint16(ip[10:], ^uint16(sum))
	ip = append(ip, udp...)
	eth := make([]byte, 14, 14+len(ip))
	be.PutUint16(eth[12:], 0x0800)
	return append(eth, ip...)
}

// String names the voice for test and benchmark output.
func (v Voice) String() string { return fmt.Sprintf("%s@%d", v.Name, v.Speed) }
