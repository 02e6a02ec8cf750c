//go:build unix

package knowledge

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used, user and system, so a benchmark on a
// shared machine can report work per CPU-second, which other load barely moves, beside the
// wall-clock figures, which it does.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
