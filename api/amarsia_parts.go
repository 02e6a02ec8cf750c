package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// The content parts of Amarsia's runner, and what each becomes for the agent's model: text
// as text; an image, fetched by the node, as image input (inline, so the provider needs no
// access to where it lives); audio transcribed by the agent's speech-to-text; a document's
// text extracted (PDF, plain text, Markdown, HTML, DOCX). Video no provider kind of
// Switchboard carries, so a video part is refused by name; so is any part the model cannot
// take: nothing a client sends is silently dropped.

// Kinds of a runner's content parts.
const (
	runnerText  = "text"
	runnerImage = "image"
	runnerVideo = "video"
	runnerAudio = "audio"
	runnerURL   = "url"
)

// maxRunnerParts bounds the parts of one run; maxDocumentChars the text a document part may
// give the model (a longer one is refused rather than cut).
const (
	maxRunnerParts   = 16
	maxDocumentChars = 100_000
)

// imageTypes are the image types both model dialects (OpenAI, Anthropic) take inline.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// RunnerRequest is Amarsia's run: content parts, in order.
type RunnerRequest struct {
	Content []RunnerPart `json:"content"`
}

// RunnerPart is one content part: {"type":"text","text"} or {"type":"image"|"video"|"audio"|
// "url","mime_type","file_uri"}.
type RunnerPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	MimeType string `json:"mime_type,omitempty"`
	FileURI  string `json:"file_uri,omitempty"`
}

// RunnerAnswer is Amarsia's standard answer, with the session the run is stored in.
type RunnerAnswer struct {
	Content      string `json:"content"`
	Model        string `json:"model"`
	InputTokens  int    `json:"input_tokens"`
	OutputTokens int    `json:"output_tokens"`
	SessionID    string `json:"session_id"`
}

// errPart is a 422 naming a part's field.
func errPart(i int, field, format string, args ...any) *Error {
	name := fmt.Sprintf("content[%d]", i)
	if field != "" {
		name += "." + field
	}
	return errValidation(name, format, args...)
}

// checkRunnerParts validates the parts before anything is fetched: each kind has what it
// needs, and no part is of a kind the model cannot take (textOnly: the operator says the
// model takes no images).
func checkRunnerParts(parts []RunnerPart, model string, textOnly bool) error {
	if len(parts) == 0 {
		return errValidation("content", "is required: at least one part, such as {\"type\":\"text\",\"text\":\"…\"}")
	}
	if len(parts) > maxRunnerParts {
		return errValidation("content", "has %d parts; at most %d", len(parts), maxRunnerParts)
	}
	for i, p := range parts {
		switch p.Type {
		case runnerText:
			if strings.TrimSpace(p.Text) == "" {
				return errPart(i, "text", "is required: the part's text")
			}
			if p.FileURI != "" {
				return errPart(i, "file_uri", "is not taken by a text part")
			}
			continue
		case runnerVideo:
			return errPart(i, "", "is a video, which the agent's model %s cannot take: no model provider Switchboard speaks carries video input; send frames as image parts or the sound as an audio part", model)
		case runnerImage:
			if textOnly {
				return errPart(i, "", "is an image, which the agent's model %s does not take: it takes text alone", model)
			}
		case runnerAudio, runnerURL:
		case "":
			return errPart(i, "type", "is required: one of text, image, video, audio, url")
		default:
			return errPart(i, "type", "must be one of text, image, video, audio, url, not %q", p.Type)
		}
		if p.Text != "" {
			return errPart(i, "text", "is taken by text parts only; a %s part is its file_uri", p.Type)
		}
		if strings.TrimSpace(p.FileURI) == "" {
			return errPart(i, "file_uri", "is required: the http(s) URL of the %s", p.Type)
		}
		if !strings.HasPrefix(p.FileURI, "https://") && !strings.HasPrefix(p.FileURI, "http://") {
			return errPart(i, "file_uri", "must be an http or https URL")
		}
		if p.MimeType != "" {
			mt, _, err := mime.ParseMediaType(p.MimeType)
			if err != nil {
				return errPart(i, "mime_type", "is not a media type")
			}
			if err := checkPartType(p.Type, mt); err != "" {
				return errPart(i, "mime_type", "%s", err)
			}
		}
	}
	return nil
}

// checkPartType says what is wrong with a media type for a part's kind ("" when nothing).
func checkPartType(kind, mt string) string {
	switch kind {
	case runnerImage:
		if !imageTypes[mt] {
			return fmt.Sprintf("%s is not an image type the model takes: one of image/jpeg, image/png, image/gif, image/webp", mt)
		}
	case runnerAudio:
		if !strings.HasPrefix(mt, "audio/") {
			return fmt.Sprintf("%s is not an audio type", mt)
		}
	case runnerURL:
		if strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/") {
			return fmt.Sprintf("%s is not a document; send it as a part of type %s", mt, strings.SplitN(mt, "/", 2)[0])
		}
	}
	return ""
}

// runnerParts turns the parts into the user message the agent answers: files fetched (with
// the node's guard and limits), audio transcribed, documents' text extracted. A part that
// cannot be made into something the model takes is a 422 naming it. The files, and the
// images as they are sent to the model, are counted in hold, against the node's budget of
// request bodies: the caller holds it until the run is answered.
func (s *Server) runnerParts(ctx context.Context, tenantID string, ag *store.Agent, parts []RunnerPart, hold *bodyHold) ([]store.MessagePart, error) {
	files, err := s.fetchParts(ctx, parts, hold)
	if err != nil {
		return nil, err
	}
	out := make([]store.MessagePart, 0, len(parts))
	for i, p := range parts {
		if p.Type == runnerText {
			out = append(out, store.MessagePart{Type: store.PartText, Text: p.Text})
			continue
		}
		f := files[i]
		mt := strings.ToLower(p.MimeType)
		if mt == "" {
			mt = f.MediaType
		}
		if mt == "" || mt == "application/octet-stream" {
			mt = http.DetectContentType(f.Data)
		}
		mt, _, _ = mime.ParseMediaType(mt)
		if e := checkPartType(p.Type, mt); e != "" {
			return nil, errPart(i, "mime_type", "the file is %s", e)
		}
		switch p.Type {
		case runnerImage:
			if got, _, _ := mime.ParseMediaType(http.DetectContentType(f.Data)); got != mt {
				return nil, errPart(i, "file_uri", "is not a %s image (its bytes read as %s)", mt, got)
			}
			if err := hold.grow(int64(base64.StdEncoding.EncodedLen(len(f.Data)))); err != nil {
				return nil, budgetError()
			}
			out = append(out, store.MessagePart{Type: store.PartFile, MediaType: mt, Filename: p.FileURI,
				URL: "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(f.Data)})
		case runnerAudio:
			text, err := s.transcribe(ctx, tenantID, ag, i, f.Data)
			if err != nil {
				return nil, err
			}
			out = append(out, store.MessagePart{Type: store.PartText, Text: "[audio " + p.FileURI + ", transcribed]\n" + text})
		case runnerURL:
			text, err := extractDocument(ctx, p.FileURI, mt, f.Data)
			if err != nil {
				return nil, errPart(i, "file_uri", "is a document whose text cannot be read: %v", err)
			}
			if n := len([]rune(text)); n > maxDocumentChars {
				return nil, errPart(i, "file_uri", "is a document of %d characters of text, more than the %d a run may give the model", n, maxDocumentChars)
			}
			if strings.TrimSpace(text) == "" {
				return nil, errPart(i, "file_uri", "is a document without text (a scanned PDF needs text recognition first)")
			}
			out = append(out, store.MessagePart{Type: store.PartText, Text: "[document " + p.FileURI + "]\n" + text})
		}
	}
	return out, nil
}

// maxParallelFetches bounds the files of one run fetched at once.
const maxParallelFetches = 4

// fetchParts fetches the files of the parts (by index; nil for text), several at once, so
// that a run of many files waits about as long as its slowest. The error is that of the
// first part, in order, that failed.
func (s *Server) fetchParts(ctx context.Context, parts []RunnerPart, hold *bodyHold) ([]*netguard.File, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	files := make([]*netguard.File, len(parts))
	errs := make([]error, len(parts))
	slots := make(chan struct{}, maxParallelFetches)
	var wg sync.WaitGroup
	for i, p := range parts {
		if p.Type == runnerText {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-slots }()
			files[i], errs[i] = s.files.FetchHeld(ctx, p.FileURI, hold.grow)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fetchError(i, err)
		}
	}
	return files, nil
}

// fetchError names the part whose file could not be fetched, and why.
func fetchError(i int, err error) error {
	switch {
	case errors.Is(err, errBudgetFull):
		return budgetError()
	case netguard.IsPrivateAddress(err):
		return errPart(i, "file_uri", "points at a private or loopback address, which this node does not fetch from (the operator may allow it: --allow-private-files)")
	case errors.Is(err, netguard.ErrFileTooLarge), errors.Is(err, netguard.ErrFileTimeout), errors.Is(err, netguard.ErrFileStatus),
		errors.Is(err, netguard.ErrRedirects), errors.Is(err, netguard.ErrFileURL):
		return errPart(i, "file_uri", "could not be fetched: %s", strings.TrimPrefix(err.Error(), "netguard: "))
	}
	return errPart(i, "file_uri", "could not be fetched: %s", strings.TrimPrefix(err.Error(), "netguard: "))
}

// transcribe turns an audio part (WAV, PCM16) into text with the agent's speech-to-text.
func (s *Server) transcribe(ctx context.Context, tenantID string, ag *store.Agent, i int, data []byte) (string, error) {
	wav, err := media.ReadWAV(bytes.NewReader(data))
	if err != nil {
		return "", errPart(i, "file_uri", "is audio this node cannot decode (%v): send audio/wav, PCM16 mono or stereo", err)
	}
	reg, err := s.providers.Speech(ctx, tenantID)
	if err != nil {
		return "", err
	}
	provider := ag.Transcriber.Provider
	if ag.Transcriber.Model != "" && !strings.Contains(provider, "/") {
		provider += "/" + ag.Transcriber.Model
	}
	stt, err := reg.STT(provider)
	if err != nil {
		return "", errPart(i, "", "is audio, and the agent's speech-to-text (%s) is not available on this node to transcribe it", ag.Transcriber.Provider)
	}
	lang := ag.Transcriber.Language
	if lang == "" {
		lang = ag.Language
	}
	text, err := stt.Transcribe(ctx, wav.Channel(0), wav.Rate, lang)
	if err != nil {
		return "", &Error{Status: http.StatusBadGateway, Code: "upstream_error",
			Message: fmt.Sprintf("Upstream provider error: the agent's speech-to-text could not transcribe content[%d]: %v", i, err)}
	}
	if strings.TrimSpace(text) == "" {
		return "", errPart(i, "file_uri", "is audio in which the agent's speech-to-text heard no speech")
	}
	return text, nil
}
