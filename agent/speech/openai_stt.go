package speech

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/switchboard-go/switchboard/media"
)

// maxTranscript bounds the answer of a transcription.
const maxTranscript = 1 << 20

// OpenAISTT transcribes through any OpenAI-compatible POST {base}/audio/transcriptions
// (OpenAI, Groq, faster-whisper and whisper.cpp servers…). Safe for concurrent use.
type OpenAISTT struct {
	c openAIClient
}

// NewOpenAISTT transcribes through baseURL (https://api.openai.com/v1 when empty) with
// model (DefaultSTTModel when empty); apiKey is sent as a Bearer token when not empty;
// client nil is http.DefaultClient. Deadlines come from the context of each request.
func NewOpenAISTT(baseURL, apiKey, model string, client *http.Client) *OpenAISTT {
	return &OpenAISTT{c: newOpenAIClient(baseURL, apiKey, model, DefaultSTTModel, client)}
}

// Model is the model asked for.
func (s *OpenAISTT) Model() string { return s.c.model }

// Transcribe sends pcm as a WAV file ("audio.wav") with the model, the language when
// given, and response_format json, and returns the text. A 429, a 5xx or a failure to
// reach the server is tried once more: the request changes nothing.
func (s *OpenAISTT) Transcribe(ctx context.Context, pcm []int16, rate int, language string) (string, error) {
	body, ctype, err := transcriptionBody(pcm, rate, s.c.model, language)
	if err != nil {
		return "", err
	}
	resp, err := s.c.do(ctx, "transcribe", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.c.base+"/audio/transcriptions", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Accept", "application/json")
		return req, nil
	}, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxTranscript))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &ProviderError{Op: "transcribe", Err: err}
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "text/plain" {
		return strings.TrimSpace(string(b)), nil
	}
	var out struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Text == nil {
		return "", &ProviderError{Op: "transcribe", Status: resp.StatusCode,
			Message: fmt.Sprintf("answer is not {\"text\": …}: %.200s", b)}
	}
	return strings.TrimSpace(*out.Text), nil
}

// transcriptionBody is the multipart form of a transcription request.
func transcriptionBody(pcm []int16, rate int, model, language string) ([]byte, string, error) {
	wav, err := media.EncodeWAV(pcm, rate)
	if err != nil {
		return nil, "", err
	}
	var body bytes.Buffer
	body.Grow(len(wav) + 1024)
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="audio.wav"`)
	h.Set("Content-Type", "audio/wav")
	part, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(wav); err != nil {
		return nil, "", err
	}
	fields := [][2]string{{"model", model}, {"response_format", "json"}}
	if language != "" {
		fields = append(fields, [2]string{"language", language})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return body.Bytes(), mw.FormDataContentType(), nil
}
