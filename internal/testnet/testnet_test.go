package testnet

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestListenPair: UDP and TCP on one port, even when the kernel keeps offering numbers
// whose TCP half is taken.
func TestListenPair(t *testing.T) {
	// Hold the TCP side of many kernel-chosen ports so some UDP choices collide.
	for range 200 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	for range 20 {
		pc, l, err := listenPair()
		if err != nil {
			t.Fatal(err)
		}
		if u, tc := pc.LocalAddr().(*net.UDPAddr).Port, l.Addr().(*net.TCPAddr).Port; u != tc {
			t.Fatalf("UDP %d, TCP %d", u, tc)
		}
		_ = pc.Close()
		_ = l.Close()
	}
}

// TestPorts: distinct runs of free ports below the ephemeral range, starting even.
func TestPorts(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		base := Ports(t, 4)
		if base%2 != 0 || base < lowest || base+4 > ephemeralLow() {
			t.Fatalf("base %d: want an even port in %d-%d", base, lowest, ephemeralLow())
		}
		for p := base; p < base+4; p++ {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: base + 3})
		if err != nil {
			t.Fatalf("port %d not free: %v", base+3, err)
		}
		_ = u.Close()
	}
	if _, err := Reserve(0); err == nil {
		t.Error("0 ports: no error")
	}
}

func TestAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = net.Listen("tcp4", l.Addr().String())
	if !AddrInUse(err) {
		t.Errorf("%v: not seen as a taken port", err)
	}
	if !AddrInUse(nil, "bind: Address already in use") {
		t.Error("a program's message not seen")
	}
	if AddrInUse(errors.New("x"), "fine") || AddrInUse(&os.SyscallError{Syscall: "bind", Err: syscall.EACCES}) {
		t.Error("another error seen as a taken port")
	}
}
