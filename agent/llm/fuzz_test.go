package llm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// readAll plays an upstream body through a decoder and checks the promises of Stream: a
// start first, tool calls opened before their arguments, a done last, then io.EOF; or an
// error, and no hang.
func readAll(t *testing.T, body []byte, dec decoder) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := &httpStream{t: &transport{provider: "fuzz"}, parent: context.Background(), ctx: ctx, cancel: cancel,
		body: io.NopCloser(bytes.NewReader(body)), dec: dec}
	s.sse = newSSEReader(s.body)
	defer s.Close()
	opened := map[int]bool{}
	for i := 0; ; i++ {
		if i > 4*len(body)+8 {
			t.Fatalf("more deltas than the body can hold")
		}
		d, err := s.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			var ue *UpstreamError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not an *UpstreamError", err)
			}
			return
		}
		if (i == 0) != (d.Kind == DeltaStart) {
			t.Fatalf("delta %d is %v", i, d.Kind)
		}
		switch d.Kind {
		case DeltaToolCall:
			if opened[d.Index] || d.Index != len(opened) {
				t.Fatalf("tool call %d opened out of order", d.Index)
			}
			opened[d.Index] = true
		case DeltaToolArgs:
			if !opened[d.Index] {
				t.Fatalf("arguments of tool call %d before it opened", d.Index)
			}
		case DeltaDone:
			if _, err := s.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after done: %v", err)
			}
			return
		}
	}
}

func FuzzOpenAIStream(f *testing.F) {
	f.Add([]byte("data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n" +
		"data: [DONE]\n\n"))
	f.Add([]byte("data:{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"x\"}}]}}]}\n\n"))
	f.Add([]byte("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"))
	f.Add([]byte(": ping\n\ndata: [DONE]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		readAll(t, body, &oaiDecoder{provider: "fuzz"})
	})
}

func FuzzAnthropicStream(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"))
	f.Add([]byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":7}\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		readAll(t, body, &antDecoder{provider: "fuzz", blocks: map[int]int{}})
	})
}
