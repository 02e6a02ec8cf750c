package sip

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// logBuffer keeps the server's log for the test to inspect, and echoes it to the test output.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(string(p))
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestSIPpEcho has SIPp, a real third-party UA, call the echo destination with PCMA audio
// from a pcap and an RFC 4733 "1", and hang up.
func TestSIPpEcho(t *testing.T) {
	verifyNoLeaks(t)
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not found (Debian sip-tester, installed by `make deps`)")
	}
	scenario, err := filepath.Abs("../testdata/sipp/uac_echo.xml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{t: t}
	addr := startServer(t, Config{Log: slog.New(slog.NewTextHandler(logs, nil))})

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	// -mp is the base of SIPp's media ports (it uses it and the next ones).
	mediaPort := freeUDPPort(t)
	cmd := exec.CommandContext(ctx, sipp, addr,
		"-sf", scenario, "-s", "echo", "-i", "127.0.0.1",
		"-p", strconv.Itoa(freeUDPPort(t)), "-mp", strconv.Itoa(mediaPort),
		"-m", "1", "-l", "1", "-nostdin", "-timeout", "30s", "-trace_err")
	cmd.Dir = t.TempDir() // SIPp writes its error trace to the working directory
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sipp: %v\n%s", err, lastBytes(out, 4000))
	}

	// The server logs the end of the call's media after answering the BYE; wait for it.
	var log string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if log = logs.String(); regexp.MustCompile(`call ended`).MatchString(log) {
			break
		}
	}
	for _, want := range []string{`msg="call answered".*codec=PCMA`, `msg=dtmf.*digit=1`, `reason=caller-hangup`} {
		if !regexp.MustCompile(want).MatchString(log) {
			t.Errorf("server log lacks %s", want)
		}
	}
	m := regexp.MustCompile(`call ended.*rx_packets=(\d+) tx_packets=(\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatal("no end-of-call media counts in the log")
	}
	rx, _ := strconv.Atoi(m[1])
	tx, _ := strconv.Atoi(m[2])
	// g711a.pcap is 30 ms packets; SIPp plays it for the 4 s until the DTMF pcap replaces it
	// (about 134 packets). The echo sends the same audio back as 20 ms frames: half as many
	// packets again.
	if rx < 100 || tx < rx*3/2-10 {
		t.Errorf("rx %d, tx %d packets; want at least 100 received and all of it echoed as 20 ms frames", rx, tx)
	}
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
