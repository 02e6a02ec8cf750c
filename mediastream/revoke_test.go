package mediastream_test

import (
	"testing"

	"github.com/switchboard-go/switchboard/mediastream"
	"github.com/switchboard-go/switchboard/realtime"
)

// A client reads one close code for a revoked credential, whichever socket it holds.
func TestCloseRevokedIsTheEventsSockets(t *testing.T) {
	if mediastream.CloseRevoked != realtime.CloseRevoked {
		t.Fatalf("media-stream sockets close with %d on revocation, the events socket with %d", mediastream.CloseRevoked, realtime.CloseRevoked)
	}
}
