package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"
)

// TestPprofSetting: SWITCHBOARD_PPROF reaches the node's HTTP server: with it, the operator's
// key (keys create makes an admin key of the default tenant) gets a heap profile; without
// it, the path is not found.
func TestPprofSetting(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir()}
		if on {
			env = append(env, "SWITCHBOARD_PPROF=true")
		}
		key := createKey(t, env, "--name", "operator")
		n := startServe(t, env)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+n.addr+"/debug/pprof/heap", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := n.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !on {
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("profiles off: GET /debug/pprof/heap answered %d: %.200q", resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("profiles on: GET /debug/pprof/heap answered %d: %.200q", resp.StatusCode, body)
		}
		if _, err := gzip.NewReader(bytes.NewReader(body)); err != nil {
			t.Fatalf("profiles on: the heap profile is not gzipped protobuf: %v", err)
		}
	}
}
