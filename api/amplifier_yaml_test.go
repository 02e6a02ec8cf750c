package api

import (
	"strings"
	"testing"
	"time"
)

// FuzzDecodeBundleYAML: whatever a tenant sends as a config's YAML is decoded or refused with
// an error, never a panic, and nothing it decodes passes the bounds.
func FuzzDecodeBundleYAML(f *testing.F) {
	for _, seed := range []string{
		"bundle:\n  name: dev\nproviders:\n  - module: provider-openai\n    config:\n      api_key: ${OPENAI_API_KEY}\n",
		"a: &a [x, x]\nb: [*a, *a]\n",
		"- - - x\n",
		"{a: [1, {b: 'it''s'}], c: \"q\\\"\"}\n",
		"# c\nk: |\n  text [\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		start := time.Now()
		doc, err := decodeBundleYAML(text)
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%d bytes took %v: %q", len(text), took, text)
		}
		if err != nil {
			return
		}
		if n := countValues(doc); n > maxYAMLValues+1 {
			t.Fatalf("decoded %d values past the bound: %q", n, text)
		}
	})
}

func countValues(v any) int {
	switch t := v.(type) {
	case map[string]any:
		n := 1
		for _, e := range t {
			n += 1 + countValues(e)
		}
		return n
	case []any:
		n := 1
		for _, e := range t {
			n += countValues(e)
		}
		return n
	}
	return 1
}

func TestLexicalDepth(t *testing.T) {
	for text, want := range map[string]int{
		"a: [1, [2, [3]]]\n":                 3,
		"a: '[[[['\nb: \"{{{\"\n":            0,
		"instructions: it's [fine]\n":        1,
		"# [[[[\nk: v\n":                     0,
		"- - - x\n- y\n":                     3,
		"tools:\n  - module: x\n  - a: -1\n": 1,
		strings.Repeat("[", 70):              70,
	} {
		if got := lexicalDepth(text); got != want {
			t.Errorf("lexicalDepth(%q) = %d, want %d", text, got, want)
		}
	}
}
