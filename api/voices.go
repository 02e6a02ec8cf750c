package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/store"
)

// speechSetup says where a speech provider is configured, for the 422s of an agent's voice
// and transcriber.
const speechSetup = "configure its provider (environment: OPENAI_API_KEY, DEEPGRAM_API_KEY, ELEVENLABS_API_KEY, CARTESIA_API_KEY or their _BASE_URL; " +
	"SWITCHBOARD_PROVIDERS_FILE; or /api/v1/providers)"

// checkAgentSpeech refuses an agent that names a voice or a transcriber this node cannot
// use: a provider not configured, one without its key, or one of a kind that cannot do the
// job (an anthropic voice, an elevenlabs transcriber). Only what the request sets or
// changes is checked, so that an agent keeps working with the defaults on a node with no
// keys (its default transcriber, openai, then hears keys only) and a stored agent whose
// provider went away can still be edited.
func checkAgentSpeech(ctx context.Context, s *Server, tenantID string, a, before *store.Agent) error {
	voiceSet := a.Voice.Provider != before.Voice.Provider
	earSet := a.Transcriber.Provider != before.Transcriber.Provider
	// A server built without any provider (some tests and tools) has nothing to check
	// against, as checkAgentModel; switchboard serve always has the environment's.
	if (!voiceSet && !earSet) || len(s.providers.Node().Names()) == 0 {
		return nil
	}
	sp, err := s.providers.Speech(ctx, tenantID)
	if err != nil {
		return err
	}
	why := func(err error) string {
		return strings.TrimPrefix(err.Error(), speech.ErrNotConfigured.Error()+": ")
	}
	if voiceSet {
		if err := sp.CheckVoice(a.Voice.Provider); err != nil {
			return errValidation("voice.provider", "cannot speak: %s; %s, or use espeak, the built-in voice", why(err), speechSetup)
		}
	}
	if earSet {
		if err := sp.CheckTranscriber(a.Transcriber.Provider); err != nil {
			return errValidation("transcriber.provider", "cannot transcribe: %s; %s", why(err), speechSetup)
		}
	}
	return nil
}

// voiceList is the answer of GET /api/v1/voices: the voices of every speech provider the
// tenant may use, and the providers whose list could not be read.
type voiceList struct {
	Data   []speech.VoiceInfo `json:"data"`
	Errors []voiceListError   `json:"errors"`
}

type voiceListError struct {
	Provider string `json:"provider"`
	Message  string `json:"message"`
}

// voiceListTTL is how long a provider's list of voices is kept: voices change rarely, and
// a studio page lists them on every open. voiceFailTTL is how long a provider's failure to
// list them is: pages opened meanwhile are told the same, rather than each asking a
// provider that is down (or refusing the key) again.
const (
	voiceListTTL = 5 * time.Minute
	voiceFailTTL = 30 * time.Second
)

type voiceListing struct {
	voices []speech.VoiceInfo
	err    error
	at     time.Time
}

// fresh says whether the listing may still be given.
func (l voiceListing) fresh() bool {
	if l.err != nil {
		return time.Since(l.at) < voiceFailTTL
	}
	return time.Since(l.at) < voiceListTTL
}

func (s *Server) voiceRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/api/v1/voices", Tag: "Model providers", Scope: store.ScopeRead, Status: http.StatusOK,
			Summary:  "List the voices of the speech providers an agent may use (espeak, OpenAI, ElevenLabs, Cartesia)",
			Query:    []param{{Name: "provider", Description: "Only this provider's voices (a name the agent's voice.provider takes)"}},
			Response: voiceList{}, Handle: s.listVoices},
	}
}

// listVoices answers GET /api/v1/voices. Each provider is asked at once (its list kept for
// voiceListTTL per tenant, its failure for voiceFailTTL); one that fails is named in
// errors, and the others are listed.
func (s *Server) listVoices(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sp, err := s.providers.Speech(r.Context(), p.TenantID)
	if err != nil {
		return err
	}
	var names []string
	for _, name := range sp.Names() {
		if sp.CheckVoice(name) == nil { // a live transcriber has no voices to list
			names = append(names, name)
		}
	}
	if want := r.URL.Query().Get("provider"); want != "" {
		if err := sp.CheckVoice(want); err != nil {
			return errValidation("provider", "has no voices here: %s", strings.TrimPrefix(err.Error(), speech.ErrNotConfigured.Error()+": "))
		}
		name, _, _ := strings.Cut(want, "/")
		names = []string{name}
	}
	lists := make([][]speech.VoiceInfo, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		key := p.TenantID + "\x00" + name
		if v, ok := s.voiceLists.Load(key); ok && v.(voiceListing).fresh() {
			lists[i], errs[i] = v.(voiceListing).voices, v.(voiceListing).err
			continue
		}
		wg.Add(1)
		go func(ctx context.Context) {
			defer wg.Done()
			lists[i], errs[i] = sp.Voices(ctx, name)
			if errs[i] == nil || ctx.Err() == nil {
				// A failure of the request's own (the client went away) is not the provider's.
				s.voiceLists.Store(key, voiceListing{voices: lists[i], err: errs[i], at: time.Now()})
			}
		}(r.Context())
	}
	wg.Wait()
	out := voiceList{Data: []speech.VoiceInfo{}, Errors: []voiceListError{}}
	for i, name := range names {
		if errs[i] != nil {
			if errors.Is(errs[i], context.Canceled) {
				return errs[i]
			}
			out.Errors = append(out.Errors, voiceListError{Provider: name, Message: errs[i].Error()})
			continue
		}
		out.Data = append(out.Data, lists[i]...)
	}
	slices.SortStableFunc(out.Data, func(a, b speech.VoiceInfo) int { return strings.Compare(a.Provider, b.Provider) })
	writeJSON(w, http.StatusOK, out)
	return nil
}
