package llm_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

func asUpstream(t *testing.T, err error) *llm.UpstreamError {
	t.Helper()
	var ue *llm.UpstreamError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) is not an *UpstreamError", err, err)
	}
	return ue
}

func TestUpstreamStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		reply    llmtest.Reply
		openai   string
		anthropc string
	}{
		{llmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "messages.0: bad content"}, "invalid_request_error", "invalid_request_error"},
		{llmtest.Reply{Status: http.StatusTooManyRequests, ErrorMessage: "Rate limit reached"}, "rate_limit_exceeded", "rate_limit_error"},
		{llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "The server had an error"}, "server_error", "api_error"},
		{llmtest.Reply{Status: 529, ErrorType: "overloaded_error", ErrorMessage: "Overloaded"}, "overloaded_error", "overloaded_error"},
	}
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		for _, c := range cases {
			wantType := c.openai
			if d.kind == llm.KindAnthropic {
				wantType = c.anthropc
			}
			check := func(how string, err error) {
				t.Helper()
				ue := asUpstream(t, err)
				if ue.Status != c.reply.Status || ue.Message != c.reply.ErrorMessage || ue.Type != wantType || ue.Provider != "standin-"+d.name {
					t.Errorf("%s: %+v, want status %d type %s message %q", how, ue, c.reply.Status, wantType, c.reply.ErrorMessage)
				}
				if !strings.Contains(ue.Error(), c.reply.ErrorMessage) {
					t.Errorf("%s: error text %q lacks the upstream's message", how, ue.Error())
				}
			}
			srv.Enqueue(c.reply, c.reply)
			_, err := p.Complete(testCtx(t), hello())
			check("complete", err)
			// A failure before the answer starts comes from Stream itself, where the caller
			// can still fall back to another model.
			_, err = p.Stream(testCtx(t), hello())
			check("stream", err)
		}
	})
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			_, p := d.setup(t, func(c *llm.ProviderConfig) { c.APIKey = "stolen" })
			_, err := p.Complete(testCtx(t), hello())
			ue := asUpstream(t, err)
			if ue.Status != http.StatusUnauthorized || ue.Message == "" {
				t.Errorf("%+v", ue)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := llm.New(llm.ProviderConfig{Name: "gone", Kind: llm.KindOpenAI, BaseURL: "http://" + addr + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Stream(testCtx(t), hello())
	if ue := asUpstream(t, err); ue.Type != "connection_error" || ue.Status != 0 {
		t.Errorf("%+v", ue)
	}
}

// streamUntilError streams and returns the deltas before the error that ended the stream,
// failing if it ended well.
func streamUntilError(t *testing.T, p llm.Provider) ([]llm.Delta, error) {
	t.Helper()
	s, err := p.Stream(testCtx(t), hello())
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	ds, err := drain(t, s)
	if err == nil {
		t.Fatalf("the stream ended well after %+v", ds)
	}
	return ds, err
}

func TestStreamErrorEvent(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		// After the answer started, the error ends the stream.
		srv.Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStreamError, FaultAfter: 2,
			ErrorType: "overloaded_error", ErrorMessage: "Overloaded"})
		ds, err := streamUntilError(t, p)
		if ue := asUpstream(t, err); ue.Type != "overloaded_error" || ue.Message != "Overloaded" {
			t.Errorf("%+v", ue)
		}
		if len(ds) == 0 || ds[0].Kind != llm.DeltaStart {
			t.Errorf("deltas before the error: %+v", ds)
		}
		// First thing in the stream, it comes from Stream.
		srv.Enqueue(llmtest.Reply{Fault: llmtest.FaultStreamError, FaultAfter: 0, ErrorType: "overloaded_error", ErrorMessage: "Overloaded"})
		_, err = p.Stream(testCtx(t), hello())
		if ue := asUpstream(t, err); ue.Message != "Overloaded" {
			t.Errorf("%+v", ue)
		}
	})
}

func TestMalformedStream(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		for _, fault := range []llmtest.Fault{llmtest.FaultMalformed, llmtest.FaultTruncate} {
			srv.Enqueue(llmtest.Reply{Text: "one two three", Fault: fault, FaultAfter: 2})
			_, err := streamUntilError(t, p)
			if !errors.Is(err, llm.ErrMalformedStream) {
				t.Errorf("fault %d: %v, want ErrMalformedStream", fault, err)
			}
			_ = asUpstream(t, err)
		}
		// Malformed from the first byte: Stream says so.
		srv.Enqueue(llmtest.Reply{Text: "x", Fault: llmtest.FaultMalformed, FaultAfter: 0})
		if _, err := p.Stream(testCtx(t), hello()); !errors.Is(err, llm.ErrMalformedStream) {
			t.Errorf("Stream: %v", err)
		}
		// A complete answer that is not JSON.
		srv.Enqueue(llmtest.Reply{Text: "x", Fault: llmtest.FaultMalformed})
		if _, err := p.Complete(testCtx(t), hello()); !errors.Is(err, llm.ErrMalformedStream) {
			t.Errorf("Complete: %v", err)
		}
	})
}

// waitAborted waits for the stand-in to see its client leave.
func waitAborted(t *testing.T, srv *llmtest.Server) {
	t.Helper()
	select {
	case <-srv.Aborted():
	case <-time.After(5 * time.Second):
		t.Fatal("the stand-in never saw its client leave")
	}
}

// stall is the stall timeout of TestStall. A steady stream's chunks come a tenth of it
// apart, so a busy machine that holds the client up for most of a second does not make
// the steady stream look stalled.
const stall = time.Second

func TestStall(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			srv, p := d.setup(t, func(c *llm.ProviderConfig) { c.StallTimeout = stall; c.Timeout = stall })

			// Slow but steady is not a stall.
			srv.Enqueue(llmtest.Reply{Chunks: []string{"a", "b", "c", "d", "e"}, Delay: stall / 10})
			s, err := p.Stream(testCtx(t), hello())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := drain(t, s); err != nil {
				t.Fatalf("a steady stream failed: %v", err)
			}

			// A caller slower than the stall timeout is not a stalled upstream.
			srv.Enqueue(llmtest.Reply{Text: "one two three"})
			s, err = p.Stream(testCtx(t), hello())
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * stall)
			if _, err := drain(t, s); err != nil {
				t.Fatalf("a slow reader failed: %v", err)
			}

			// Silent mid-answer.
			srv.Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStall, FaultAfter: 4})
			begun := time.Now()
			ds, err := streamUntilError(t, p)
			if !errors.Is(err, llm.ErrStalled) {
				t.Fatalf("%v, want ErrStalled", err)
			}
			if ue := asUpstream(t, err); ue.Type != "stalled" {
				t.Errorf("%+v", ue)
			}
			if len(ds) < 2 {
				t.Errorf("deltas before the stall: %+v", ds)
			}
			if took := time.Since(begun); took > stall+2*time.Second {
				t.Errorf("took %v to notice a stall of %v", took, stall)
			}
			waitAborted(t, srv)

			// Silent before any header.
			srv.Enqueue(llmtest.Reply{Fault: llmtest.FaultStallHeaders})
			if _, err := p.Stream(testCtx(t), hello()); !errors.Is(err, llm.ErrStalled) {
				t.Errorf("Stream: %v, want ErrStalled", err)
			}
			waitAborted(t, srv)

			// A complete request past its timeout.
			srv.Enqueue(llmtest.Reply{Fault: llmtest.FaultStall})
			if _, err := p.Complete(testCtx(t), hello()); !errors.Is(err, llm.ErrStalled) {
				t.Errorf("Complete: %v, want ErrStalled", err)
			}
			waitAborted(t, srv)
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		// Mid-answer: the caller hangs up while the upstream is still writing.
		srv.Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStall, FaultAfter: 3})
		ctx, cancel := context.WithCancel(testCtx(t))
		s, err := p.Stream(ctx, hello())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		begun := time.Now()
		_, err = drain(t, s)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Next after cancel: %v, want context.Canceled", err)
		}
		if took := time.Since(begun); took > time.Second {
			t.Errorf("cancel took %v", took)
		}
		waitAborted(t, srv)

		// Before the headers.
		srv.Enqueue(llmtest.Reply{Fault: llmtest.FaultStallHeaders})
		ctx, cancel = context.WithCancel(testCtx(t))
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := p.Stream(ctx, hello()); !errors.Is(err, context.Canceled) {
			t.Errorf("Stream after cancel: %v, want context.Canceled", err)
		}
		waitAborted(t, srv)

		// Close from another goroutine ends the request too.
		srv.Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStall, FaultAfter: 3})
		s, err = p.Stream(testCtx(t), hello())
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, func() { s.Close() })
		if _, err := drain(t, s); !errors.Is(err, llm.ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
		waitAborted(t, srv)
	})
}
