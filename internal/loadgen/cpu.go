package loadgen

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on
// every architecture Go supports.
const clockTicks = 100

// processCPU is the user plus system CPU time pid has used, from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoCPU, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces or parentheses:
	// fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: /proc/%d/stat unreadable", ErrNoCPU, pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc/%d/stat too short", ErrNoCPU, pid)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: /proc/%d/stat fields", ErrNoCPU, pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuUse is the CPU a process used over a run, in percent of one core.
type cpuUse struct {
	Mean float64 `json:"mean_percent"`
	// Peak is the highest of the one-second windows.
	Peak float64 `json:"peak_percent"`
	// Full is the mean over the one-second windows in which all Calls were up (0 when
	// none was): the cost of that many calls, without the ramp-up and the tail.
	Full float64 `json:"full_percent"`
	// Seconds is the CPU time used over the run.
	Seconds float64 `json:"seconds"`
}

func (c *cpuUse) String() string {
	s := fmt.Sprintf("mean %.1f%%, peak %.1f%%", c.Mean, c.Peak)
	if c.Full > 0 {
		s += fmt.Sprintf(", with all calls up %.1f%%", c.Full)
	}
	return s
}

// monitor samples the server's and our CPU time every second, and logs progress.
type monitor struct {
	pid  int
	log  *slog.Logger
	g    *generator
	done chan struct{}
	wg   sync.WaitGroup

	start, last       time.Time
	srv0, srvLast     time.Duration
	self0, selfLast   time.Duration
	srvPeak, selfPeak float64 // highest one-second windows
	srvNow, selfNow   float64 // the last window
	// CPU time and wall time of the windows in which all calls were up.
	srvFull, selfFull time.Duration
	fullWall          time.Duration
	srvErr            error
	fullBefore        bool // all calls were up at the last sample
}

func startMonitor(pid int, log *slog.Logger, g *generator) (*monitor, error) {
	m := &monitor{pid: pid, log: log, g: g, done: make(chan struct{}), start: time.Now()}
	m.last = m.start
	if pid != 0 {
		var err error
		if m.srv0, err = processCPU(pid); err != nil {
			return nil, fmt.Errorf("server PID %d: %w", pid, err)
		}
		m.srvLast = m.srv0
	}
	m.self0 = selfCPU()
	m.selfLast = m.self0
	m.wg.Add(1)
	go m.run()
	return m, nil
}

func (m *monitor) run() {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-m.done:
			return
		case now := <-t.C:
			m.sample(now, true)
			if n%5 == 0 {
				m.log.Info("load", "active", m.g.active.Load(), "answered", m.g.answered.Load(), "failed", m.g.failed.Load(),
					"server_cpu_percent", round1(m.srvNow), "load_cpu_percent", round1(m.selfNow))
			}
		}
	}
}

// sample measures the window since the last sample; a short one (the end of the run) is
// too coarse for the peak, with CPU time counted in 10 ms ticks.
func (m *monitor) sample(now time.Time, peak bool) {
	wall := now.Sub(m.last).Seconds()
	if wall <= 0 {
		return
	}
	peak = peak && wall >= 0.5
	// Full for the whole window when full at both ends: calls end and start within it, and
	// a window is only a second.
	allUp := m.g.active.Load() == int64(m.g.cfg.Calls)
	full := peak && allUp && m.fullBefore
	m.fullBefore = allUp
	if full {
		m.fullWall += now.Sub(m.last)
	}
	if m.pid != 0 && m.srvErr == nil {
		cpu, err := processCPU(m.pid)
		if err != nil {
			m.srvErr = err // the server exited: keep what was measured until then
		} else {
			m.srvNow = 100 * (cpu - m.srvLast).Seconds() / wall
			if full {
				m.srvFull += cpu - m.srvLast
			}
			if peak {
				m.srvPeak = max(m.srvPeak, m.srvNow)
			}
			m.srvLast = cpu
		}
	}
	self := selfCPU()
	m.selfNow = 100 * (self - m.selfLast).Seconds() / wall
	if full {
		m.selfFull += self - m.selfLast
	}
	if peak {
		m.selfPeak = max(m.selfPeak, m.selfNow)
	}
	m.selfLast, m.last = self, now
}

// stop ends the sampling and returns the server's CPU use (nil without a PID) and ours.
func (m *monitor) stop() (server, self *cpuUse) {
	close(m.done)
	m.wg.Wait()
	now := time.Now()
	m.sample(now, false)
	wall := now.Sub(m.start).Seconds()
	if wall <= 0 {
		wall = 1
	}
	if m.pid != 0 {
		s := (m.srvLast - m.srv0).Seconds()
		server = &cpuUse{Mean: round1(100 * s / wall), Peak: round1(m.srvPeak), Full: m.fullPercent(m.srvFull), Seconds: round3(s)}
	}
	s := (m.selfLast - m.self0).Seconds()
	self = &cpuUse{Mean: round1(100 * s / wall), Peak: round1(m.selfPeak), Full: m.fullPercent(m.selfFull), Seconds: round3(s)}
	return server, self
}

func (m *monitor) fullPercent(cpu time.Duration) float64 {
	if m.fullWall <= 0 {
		return 0
	}
	return round1(100 * cpu.Seconds() / m.fullWall.Seconds())
}
