package media

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every RTP session a
// test starts must have stopped its readers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
