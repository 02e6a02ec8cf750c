package speech

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// VoiceInfo is one voice a provider offers, as an agent's voice.voice names it.
type VoiceInfo struct {
	Provider   string `json:"provider"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	Language   string `json:"language,omitempty"`
	PreviewURL string `json:"preview_url,omitempty"`
}

// openAIVoices are the voices OpenAI documents for /v1/audio/speech; an OpenAI-compatible
// server of another make may name others, which the agent's voice.voice may still use.
var openAIVoices = []string{"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}

// Voices lists the voices of provider (a name Names lists): espeak-ng's installed
// languages, OpenAI's documented voices for the openai kind, and for ElevenLabs and
// Cartesia their own list (GET /v1/voices, GET /voices). A provider that cannot be used
// fails as TTS does.
func (r *Registry) Voices(ctx context.Context, provider string) ([]VoiceInfo, error) {
	name, _, _ := strings.Cut(provider, "/")
	if name == EspeakProvider {
		t, err := r.TTS(EspeakProvider)
		if err != nil {
			return nil, err
		}
		var out []VoiceInfo
		for _, lang := range t.(*Espeak).Voices() {
			out = append(out, VoiceInfo{Provider: name, ID: lang, Name: "espeak-ng " + lang, Language: lang})
		}
		return out, nil
	}
	c, err := r.voice(name)
	if err != nil {
		return nil, err
	}
	var out []VoiceInfo
	switch c.Kind {
	case "elevenlabs":
		out, err = elevenLabsVoices(ctx, r.client(name), c.BaseURL, c.APIKey)
	case "cartesia":
		out, err = cartesiaVoices(ctx, r.client(name), c.BaseURL, c.APIKey)
	default:
		for _, v := range openAIVoices {
			out = append(out, VoiceInfo{ID: v, Name: v})
		}
	}
	if err != nil {
		if r.tenants[name] {
			err = opaqueError("voices", err)
		}
		return nil, err
	}
	for i := range out {
		out[i].Provider = name
	}
	return out, nil
}

// getJSON reads a provider's JSON answer of a GET, at most 4 MiB of it.
func getJSON(ctx context.Context, client *http.Client, url string, header http.Header, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header = header
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return &ProviderError{Op: "voices", Err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &ProviderError{Op: "voices", Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return &ProviderError{Op: "voices", Status: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &ProviderError{Op: "voices", Status: resp.StatusCode, Message: "the answer is not the JSON expected", Err: err}
	}
	return nil
}

func elevenLabsVoices(ctx context.Context, client *http.Client, base, key string) ([]VoiceInfo, error) {
	var body struct {
		Voices []struct {
			VoiceID    string            `json:"voice_id"`
			Name       string            `json:"name"`
			PreviewURL string            `json:"preview_url"`
			Labels     map[string]string `json:"labels"`
			Verified   []struct {
				Language string `json:"language"`
			} `json:"verified_languages"`
		} `json:"voices"`
	}
	if err := getJSON(ctx, client, strings.TrimRight(base, "/")+"/v1/voices", http.Header{"Xi-Api-Key": {key}}, &body); err != nil {
		return nil, err
	}
	out := make([]VoiceInfo, 0, len(body.Voices))
	for _, v := range body.Voices {
		lang := v.Labels["language"]
		if lang == "" && len(v.Verified) > 0 {
			lang = v.Verified[0].Language
		}
		out = append(out, VoiceInfo{ID: v.VoiceID, Name: v.Name, Language: lang, PreviewURL: v.PreviewURL})
	}
	return out, nil
}

// cartesiaVoices reads GET /voices: a page {"data":[…]} in Cartesia's current API, an
// array in its older versions.
func cartesiaVoices(ctx context.Context, client *http.Client, base, key string) ([]VoiceInfo, error) {
	type voice struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Language string `json:"language"`
	}
	var raw json.RawMessage
	h := http.Header{"X-Api-Key": {key}, "Cartesia-Version": {CartesiaVersion}}
	if err := getJSON(ctx, client, strings.TrimRight(base, "/")+"/voices?limit=100", h, &raw); err != nil {
		return nil, err
	}
	var list []voice
	if err := json.Unmarshal(raw, &list); err != nil {
		var page struct {
			Data []voice `json:"data"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return nil, &ProviderError{Op: "voices", Status: http.StatusOK, Message: "the answer is not a list of voices", Err: err}
		}
		list = page.Data
	}
	out := make([]VoiceInfo, 0, len(list))
	for _, v := range list {
		out = append(out, VoiceInfo{ID: v.ID, Name: v.Name, Language: v.Language})
	}
	return out, nil
}

// Voices are the voices of the installed espeak-ng data: its language tags.
func (e *Espeak) Voices() []string {
	out := make([]string, 0, len(libLanguages))
	for l := range libLanguages {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}
