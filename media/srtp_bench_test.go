//go:build linux

package media

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU is the CPU time the calling OS thread has used (CLOCK_THREAD_CPUTIME_ID).
func threadCPU(tb testing.TB) time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		tb.Fatal(errno)
	}
	return time.Duration(ts.Nano())
}

// BenchmarkRTPSessionPathSRTP is the cost of SRTP on an echo call's media, per frame: a
// frame encoded, packetized and encrypted on one session, then authenticated, decrypted,
// taken in and played out on the other (BenchmarkRTPSessionPath's path, which is what a
// call's media costs beyond its sockets), over three pairs of sessions, plain RTP and each
// suite. The pairs take turns in batches of 50 frames within one run, so that a machine
// whose load changes meanwhile weighs on all three alike, and each batch is timed by the
// CPU time of the benchmark's own thread (CLOCK_THREAD_CPUTIME_ID), so that the time other
// processes take the core from it is not counted. Each reports its CPU ns/frame and
// SRTP's extra over plain RTP:
//
//	go test -run '^$' -bench 'RTPSessionPathSRTP' -benchtime 20000x ./media/
func BenchmarkRTPSessionPathSRTP(b *testing.B) {
	const batch = 50
	suites := []SRTPSuite{"", SRTPAES128SHA1_80, SRTPAES128SHA1_32}
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
	}{{specPCMU, Rate8k}, {specOpus, Rate16k}} {
		b.Run(tc.codec.Name+"/"+itoa(tc.rate), func(b *testing.B) {
			pairs := make([]*pathPair, len(suites))
			for i, suite := range suites {
				pairs[i] = newSRTPPathPair(b, tc.codec, tc.rate, suite)
			}
			runtime.LockOSThread() // the thread's CPU clock is the benchmark's alone
			defer runtime.UnlockOSThread()
			spent := make([]time.Duration, len(suites))
			now := time.Now()
			frames := 0
			b.ReportAllocs()
			for b.Loop() {
				if frames%batch == 0 {
					// The three pairs take their turn at each batch: time one batch of each.
					for i, p := range pairs {
						start := threadCPU(b)
						for k := range batch {
							p.frame(b, now.Add(time.Duration(frames+k)*FrameDuration))
						}
						spent[i] += threadCPU(b) - start
					}
				}
				frames++
			}
			n := float64((frames + batch - 1) / batch * batch)
			for i, suite := range suites {
				name := "rtp"
				if suite != "" {
					name = "srtp" + string(suite)[len(suite)-2:]
				}
				b.ReportMetric(float64(spent[i].Nanoseconds())/n, name+"-ns/frame")
			}
			b.ReportMetric(float64((spent[1]-spent[0]).Nanoseconds())/n, "srtp80-extra-ns/frame")
			b.ReportMetric(float64((spent[2]-spent[0]).Nanoseconds())/n, "srtp32-extra-ns/frame")
		})
	}
}
