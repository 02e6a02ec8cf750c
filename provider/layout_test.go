package provider_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestProviderLayout holds the cut that lets the API and the agents' runtime share one
// provider registry built before either: provider knows no HTTP routing, no transport and
// no agent runtime, and the agent packages know neither the API nor main nor any
// transport. An import that breaks it fails here, naming it.
func TestProviderLayout(t *testing.T) {
	const mod = "github.com/switchboard-go/switchboard/"
	transports := []string{"api", "cmd", "sip", "rtc", "mediastream", "realtime"}
	forbidden := map[string][]string{
		"provider":     append([]string{"agent/voice", "session"}, transports...),
		"agent":        transports,
		"agent/voice":  transports,
		"agent/llm":    append([]string{"provider"}, transports...),
		"agent/speech": append([]string{"provider"}, transports...),
		"knowledge":    append([]string{"provider", "agent"}, transports...),
	}
	for dir, deny := range forbidden {
		pkg, err := build.ImportDir(filepath.Join("..", dir), 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			for _, d := range deny {
				if full := mod + d; imp == full || strings.HasPrefix(imp, full+"/") {
					t.Errorf("%s imports %s, which the layout forbids it", dir, imp)
				}
			}
		}
	}
}
