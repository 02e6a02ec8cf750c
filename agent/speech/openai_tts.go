package speech

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// OpenAIPCMRate is the rate of OpenAI's "pcm" response format: raw 16-bit little-endian
// mono at 24 kHz.
const OpenAIPCMRate = 24000

// OpenAITTS is a voice over any OpenAI-compatible POST {base}/audio/speech. It asks for
// "pcm" and streams the body out as it arrives; a server that answers audio/wav instead is
// read through its header. Safe for concurrent use.
type OpenAITTS struct {
	c openAIClient
}

// NewOpenAITTS speaks through baseURL (https://api.openai.com/v1 when empty) with model
// (DefaultTTSModel when empty); apiKey is sent as a Bearer token when not empty; client
// nil is http.DefaultClient. Deadlines come from the context of each request.
func NewOpenAITTS(baseURL, apiKey, model string, client *http.Client) *OpenAITTS {
	return &OpenAITTS{c: newOpenAIClient(baseURL, apiKey, model, DefaultTTSModel, client)}
}

// Model is the model asked for.
func (t *OpenAITTS) Model() string { return t.c.model }

type speechRequest struct {
	Model          string  `json:"model"`
	Input          string  `json:"input"`
	Voice          string  `json:"voice"`
	ResponseFormat string  `json:"response_format"`
	Speed          float64 `json:"speed"`
}

// Synthesize asks for text spoken by voice (DefaultOpenAIVoice when empty) at speed (0
// means 1). It returns when the audio has started: the first bytes have arrived or, for
// WAV, the header has been read. An error status, or a stream that ends before any audio,
// is tried once more for 429 and 5xx; the error names the status and the provider's
// message.
func (t *OpenAITTS) Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error) {
	if voice == "" {
		voice = DefaultOpenAIVoice
	}
	if speed <= 0 {
		speed = 1
	}
	body, err := json.Marshal(speechRequest{Model: t.c.model, Input: text, Voice: voice, ResponseFormat: "pcm", Speed: speed})
	if err != nil {
		return nil, err
	}
	var a *httpAudio
	_, err = t.c.do(ctx, "synthesize", func() (*http.Request, error) { //nolint:bodyclose // the body becomes the audio, closed by its Close
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.c.base+"/audio/speech", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "audio/pcm, audio/wav;q=0.9")
		return req, nil
	}, func(resp *http.Response) error {
		var err error
		a, err = openHTTPAudio(resp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// httpAudio streams PCM16 from a response body as it arrives.
type httpAudio struct {
	body   io.ReadCloser
	r      *bufio.Reader
	rate   int
	remain int64 // bytes left in a WAV data chunk; -1 to the end of the body
	buf    []byte
	odd    []byte // a byte of a sample split between reads (0 or 1 long, backed by oddb)
	oddb   [1]byte
	err    error
	closed bool
}

// openHTTPAudio reads the start of an audio answer: the WAV header, or the first bytes of
// raw PCM, so that a stream cut before any audio can be retried.
func openHTTPAudio(resp *http.Response) (*httpAudio, error) {
	a := &httpAudio{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 4096), rate: OpenAIPCMRate, remain: -1, buf: make([]byte, 4096)}
	ct, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	head, err := a.r.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &ProviderError{Op: "synthesize", Status: 0, Err: fmt.Errorf("audio stream cut before any audio: %w", err)}
	}
	switch {
	case strings.HasSuffix(ct, "/wav") || strings.HasSuffix(ct, "/x-wav") || strings.HasSuffix(ct, "/wave") || string(head) == "RIFF":
		if err := a.readWAVHeader(); err != nil {
			return nil, err
		}
	case ct == "audio/l16" || ct == "audio/pcm":
		if r := params["rate"]; r != "" {
			if _, err := fmt.Sscan(r, &a.rate); err != nil || a.rate <= 0 {
				return nil, fmt.Errorf("%w: content type %q", ErrBadAudio, resp.Header.Get("Content-Type"))
			}
		}
	case strings.HasPrefix(ct, "audio/mpeg") || strings.HasPrefix(ct, "audio/ogg") || strings.HasPrefix(ct, "audio/aac") ||
		strings.HasPrefix(ct, "audio/flac") || strings.HasPrefix(ct, "audio/opus"):
		return nil, fmt.Errorf("%w: the server sent %s, not the pcm asked for", ErrBadAudio, ct)
	}
	return a, nil
}

// readWAVHeader reads up to the start of the data chunk.
func (a *httpAudio) readWAVHeader() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: WAV: %s", ErrBadAudio, fmt.Sprintf(format, args...))
	}
	var hdr [12]byte
	if _, err := io.ReadFull(a.r, hdr[:]); err != nil {
		return bad("header: %v", err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return bad("not RIFF/WAVE")
	}
	gotFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(a.r, ch[:]); err != nil {
			return bad("no data chunk: %v", err)
		}
		id, size := string(ch[0:4]), int64(binary.LittleEndian.Uint32(ch[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return bad("fmt chunk of %d bytes", size)
			}
			f := make([]byte, size+size%2)
			if _, err := io.ReadFull(a.r, f); err != nil {
				return bad("fmt chunk: %v", err)
			}
			format, channels := binary.LittleEndian.Uint16(f[0:]), binary.LittleEndian.Uint16(f[2:])
			rate, bits := int(binary.LittleEndian.Uint32(f[4:])), binary.LittleEndian.Uint16(f[14:])
			if (format != 1 && format != 0xFFFE) || bits != 16 || channels != 1 {
				return bad("format %d, %d bits, %d channels; want PCM16 mono", format, bits, channels)
			}
			if rate <= 0 || rate > 384000 {
				return bad("rate %d", rate)
			}
			a.rate, gotFmt = rate, true
		case "data":
			if !gotFmt {
				return bad("data before fmt")
			}
			// Streaming servers cannot know the size and write 0 or 0xFFFFFFFF.
			if size != 0 && size != 0xFFFFFFFF {
				a.remain = size
			}
			return nil
		default:
			if _, err := io.CopyN(io.Discard, a.r, size+size%2); err != nil {
				return bad("chunk %q: %v", id, err)
			}
		}
	}
}

func (a *httpAudio) SampleRate() int { return a.rate }

// Read returns the samples that have arrived, waiting for at least one.
func (a *httpAudio) Read(p []int16) (int, error) {
	if a.closed {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for a.err == nil {
		want := min(2*len(p), len(a.buf))
		copy(a.buf, a.odd)
		have := len(a.odd)
		if a.remain == 0 {
			a.err = io.EOF
			break
		}
		if a.remain > 0 {
			want = int(min(int64(want), int64(have)+a.remain))
		}
		n, err := a.r.Read(a.buf[have:want])
		if a.remain > 0 {
			a.remain -= int64(n)
		}
		have += n
		samples := have / 2
		for i := range samples {
			p[i] = int16(binary.LittleEndian.Uint16(a.buf[2*i:]))
		}
		a.odd = a.oddb[:have%2]
		copy(a.odd, a.buf[2*samples:have])
		if err != nil {
			if errors.Is(err, io.EOF) {
				a.err = io.EOF
			} else {
				a.err = &ProviderError{Op: "synthesize", Err: fmt.Errorf("audio stream cut: %w", err)}
			}
		}
		if samples > 0 {
			return samples, nil
		}
	}
	return 0, a.err
}

func (a *httpAudio) Close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	return a.body.Close()
}
