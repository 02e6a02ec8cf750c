// Package testnet gives Switchboard's tests loopback ports that hold on a busy machine.
//
// A port found free, closed, and bound again later (by SIPp, PostgreSQL, a server given an
// address) can be taken in between: the kernel hands the same number to the next socket
// bound to port 0 or to the next outgoing connection. Tests that can bind themselves use
// ListenPair or port 0 and read the port back. For a program that binds its port itself,
// Ports hands out numbers below the kernel's ephemeral range, which the kernel never gives
// to anyone unasked, so only another program that names the same number can take it; the
// caller starts that program again with new ports when it still finds one taken
// (AddrInUse tells).
package testnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// ListenPair binds UDP and TCP on one loopback port that the kernel chose, as a SIP
// server listens: when the TCP port of the number the kernel gave for UDP is taken, it
// tries again with another. The sockets are closed when the test ends.
func ListenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	pc, l, err := listenPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pc.Close()
		_ = l.Close()
	})
	return pc, l
}

func listenPair() (net.PacketConn, net.Listener, error) {
	var err error
	for range 50 {
		var lc net.ListenConfig
		var pc net.PacketConn
		if pc, err = lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("testnet: listen udp: %w", err)
		}
		var l net.Listener
		if l, err = lc.Listen(context.Background(), "tcp4", pc.LocalAddr().String()); err == nil {
			return pc, l, nil
		}
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("testnet: no port free for both UDP and TCP: %w", err)
}

// Port returns a port free for UDP and TCP on every address at the time, outside the
// kernel's ephemeral range, for a program that binds it itself.
func Port(t testing.TB) int {
	t.Helper()
	return Ports(t, 1)
}

// Ports returns the first of n consecutive ports, the first even (RTP and RTCP pairs
// start on an even port), each free for UDP and TCP on every address at the time and
// outside the kernel's ephemeral range. No port is handed out twice by one test binary.
func Ports(t testing.TB, n int) int {
	t.Helper()
	p, err := Reserve(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// lowest is the lowest port handed out: below it live well-known services' ports.
const lowest = 10000

// Reserve is Ports for a helper without a test at hand: it returns the first of n
// consecutive free ports, or why there are none.
func Reserve(n int) (int, error) {
	if n < 1 || n > 1000 {
		return 0, fmt.Errorf("testnet: %d ports asked for", n)
	}
	hi := ephemeralLow() - n
	if hi-lowest < 2*n {
		return 0, fmt.Errorf("testnet: no room below the ephemeral range for %d ports", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		base := lowest + rand.IntN(hi-lowest)&^1
		if taken(base, n) {
			continue
		}
		if free(base, n) {
			for p := base; p < base+n; p++ {
				handed[p] = true
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("testnet: found no %d free ports in a row", n)
}

func taken(base, n int) bool {
	for p := base; p < base+n; p++ {
		if handed[p] {
			return true
		}
	}
	return false
}

// free tries each port on the wildcard address, which conflicts with a socket of any
// address on it.
func free(base, n int) bool {
	for p := base; p < base+n; p++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{Port: p})
		if err != nil {
			return false
		}
		l, err := net.ListenTCP("tcp", &net.TCPAddr{Port: p})
		_ = u.Close()
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 unless
// configured otherwise).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > lowest {
				return lo
			}
		}
	}
	return 32768
}

// AddrInUse reports whether err, or a program's output, says a port was taken.
func AddrInUse(err error, output ...string) bool {
	if errors.Is(err, syscall.EADDRINUSE) {
		return true
	}
	for _, o := range output {
		if strings.Contains(strings.ToLower(o), "address already in use") {
			return true
		}
	}
	return false
}
