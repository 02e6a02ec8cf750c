package realtime_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestTransportLayout holds the cut between the hub and the transports: realtime carries
// events and knows no transport; the WebRTC and media-stream transports know neither SIP
// nor each other nor the hub; media, the seam they all adapt to, knows none of them and
// not the database. An import that breaks this fails here, naming it.
func TestTransportLayout(t *testing.T) {
	const mod = "github.com/switchboard-go/switchboard/"
	forbidden := map[string][]string{
		"realtime":    {"rtc", "mediastream", "sip", "media", "store", "github.com/pion/"},
		"rtc":         {"store", "sip", "realtime", "mediastream", "api"},
		"mediastream": {"sip", "realtime", "rtc", "api"},
		"media":       {"store", "sip", "realtime", "rtc", "mediastream", "api"},
	}
	for dir, deny := range forbidden {
		pkg, err := build.ImportDir(filepath.Join("..", dir), 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			for _, d := range deny {
				full := d
				if !strings.Contains(d, ".") {
					full = mod + d
				}
				if imp == full || strings.HasPrefix(imp, strings.TrimSuffix(full, "/")+"/") {
					t.Errorf("%s imports %s, which the layout forbids it", dir, imp)
				}
			}
		}
	}
}
