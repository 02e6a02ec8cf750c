//go:build !unix

package knowledge

import "time"

// processCPU is unknown here; the benchmarks then report wall-clock figures only.
func processCPU() time.Duration { return 0 }
