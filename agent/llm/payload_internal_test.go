package llm

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// TestStashedPayloadIsTheSameJSON: a request whose large strings are stashed and spliced
// back as it is sent is, as JSON, the request encoding/json writes, in both dialects;
// its length is the length announced; and it can be read again (a redirect).
func TestStashedPayloadIsTheSameJSON(t *testing.T) {
	t.Parallel()
	tricky := strings.Repeat("quote \" back \\ nl \n cr \r tab \t ctl \x01 \x1f del \x7f é 中 \u2028 <&> bad \xff\xfe end. ", 2000)
	image := strings.Repeat("iVBORw0KGgoAAAANSUhEUg+/=", 4000)
	req := &Request{
		Model:  "m",
		System: strings.Repeat("Be brief. ", 10_000),
		Messages: []Message{
			{Role: RoleUser, Content: []Part{TextPart("short"), TextPart(tricky), {Type: PartImage, MediaType: "image/png", Data: image}}},
			{Role: RoleAssistant, Content: []Part{TextPart(tricky)}},
		},
	}
	for _, kind := range []Kind{KindOpenAI, KindAnthropic} {
		p, err := New(ProviderConfig{Name: "x", Kind: kind, BaseURL: "https://example.com"})
		if err != nil {
			t.Fatal(err)
		}
		build := func(r *Request) any {
			switch p := p.(type) {
			case *openAI:
				w, err := p.request(r, true)
				if err != nil {
					t.Fatal(err)
				}
				return w
			case *anthropic:
				w, err := p.request(r, true)
				if err != nil {
					t.Fatal(err)
				}
				return w
			}
			t.Fatalf("provider %T", p)
			return nil
		}
		want, err := json.Marshal(build(req))
		if err != nil {
			t.Fatal(err)
		}
		sreq, st := stashed(req)
		if st == nil || len(st.strings) != 4 {
			t.Fatalf("%s: stash %v", kind, st)
		}
		open, n, stop, err := payload{wire: build(sreq), stash: st}.body()
		if err != nil {
			t.Fatal(err)
		}
		defer func(open func() io.Reader) {
			r := open()
			stop()
			if n, err := r.Read(make([]byte, 16)); n != 0 || err == nil {
				t.Errorf("%s: a stopped body read %d bytes, %v", kind, n, err)
			}
		}(open)
		for try := 0; try < 2; try++ {
			got, err := io.ReadAll(open())
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != n {
				t.Errorf("%s: %d bytes, announced %d", kind, len(got), n)
			}
			if strings.Contains(string(got), st.token) {
				t.Errorf("%s: a placeholder was sent", kind)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("%s: not JSON: %v", kind, err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: the spliced body is not the request", kind)
			}
		}
	}
	if r, st := stashed(&Request{Messages: []Message{TextMessage(RoleUser, "hi")}}); st != nil || r.Messages[0].Content[0].Text != "hi" {
		t.Error("a small request was stashed")
	}
}

// BenchmarkLargeRequestBody: what building the body of a request with a 20 MB image costs.
func BenchmarkLargeRequestBody(b *testing.B) {
	req := &Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: []Part{TextPart("What is it?"),
		{Type: PartImage, MediaType: "image/png", Data: strings.Repeat("A", 20<<20)}}}}}
	p := newOpenAI(ProviderConfig{Name: "x", Kind: KindOpenAI, BaseURL: "https://example.com"}, buildOptions(nil))
	b.ReportAllocs()
	for b.Loop() {
		sreq, st := stashed(req)
		w, _ := p.request(sreq, false)
		open, _, _, err := payload{wire: w, stash: st}.body()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, open()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLargeRequestBodyMarshal is the same body encoded whole by json.Marshal, as it
// was before large strings were stashed, for comparison.
func BenchmarkLargeRequestBodyMarshal(b *testing.B) {
	req := &Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: []Part{TextPart("What is it?"),
		{Type: PartImage, MediaType: "image/png", Data: strings.Repeat("A", 20<<20)}}}}}
	p := newOpenAI(ProviderConfig{Name: "x", Kind: KindOpenAI, BaseURL: "https://example.com"}, buildOptions(nil))
	b.ReportAllocs()
	for b.Loop() {
		w, _ := p.request(req, false)
		enc, err := json.Marshal(w)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, bytes.NewReader(enc)); err != nil {
			b.Fatal(err)
		}
	}
}
