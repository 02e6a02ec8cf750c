package llm_test

import (
	"context"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

// BenchmarkStream streams whole answers (start, eight text deltas, done) from a stand-in on
// loopback, in parallel: the provider layer's cost per streamed completion, the stand-in's
// included.
func BenchmarkStream(b *testing.B) {
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			srv := d.start(b)
			srv.Respond(func(llmtest.Request) llmtest.Reply {
				return llmtest.Reply{Text: "one two three four five six seven eight"}
			})
			p, err := llm.New(llm.ProviderConfig{Name: "bench", Kind: d.kind, BaseURL: srv.URL})
			if err != nil {
				b.Fatal(err)
			}
			req := &llm.Request{Model: "m", Messages: []llm.Message{llm.TextMessage(llm.RoleUser, "hi")}}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s, err := p.Stream(ctx, req)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := llm.Collect(s); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
