package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
)

// Agent is what answers a call or a chat: its instructions, its voice and ears, its model,
// the tools and knowledge it may use, an optional workflow, and how it takes turns.
type Agent struct {
	bun.BaseModel `bun:"table:agents"`
	Row

	Name             string      `bun:"name,notnull" json:"name"`
	Instructions     string      `bun:"instructions,notnull" json:"instructions"`
	FirstMessage     string      `bun:"first_message,notnull" json:"first_message"`
	Language         string      `bun:"language,notnull" json:"language"`
	Model            string      `bun:"model,notnull" json:"model"`
	Temperature      float64     `bun:"temperature,notnull" json:"temperature"`
	Voice            Voice       `bun:"voice,type:json" json:"voice"`
	Transcriber      Transcriber `bun:"transcriber,type:json" json:"transcriber"`
	ToolIDs          []string    `bun:"tool_ids,type:json" json:"tool_ids"`
	KnowledgeBaseIDs []string    `bun:"knowledge_base_ids,type:json" json:"knowledge_base_ids"`
	// Knowledge says how the agent's model uses its knowledge bases.
	Knowledge  KnowledgeSettings `bun:"knowledge,type:json" json:"knowledge"`
	WorkflowID *string           `bun:"workflow_id" json:"workflow_id"`
	// TransferTargets are the numbers (E.164) and SIP URIs the agent's model may hand a
	// caller to with transfer_call; with none it is not offered the tool at all, so that no
	// caller can talk an agent into dialling where its operator did not mean it to.
	TransferTargets []string       `bun:"transfer_targets,type:json" json:"transfer_targets"`
	Limits          CallLimits     `bun:"limits,type:json" json:"limits"`
	Turn            TurnSettings   `bun:"turn,type:json" json:"turn"`
	Metadata        map[string]any `bun:"-" json:"metadata"`
	// Config is Agent Studio's configuration of the agent, kept as its clients sent it, so
	// that they read back what they wrote; its prompt.system is always the agent's
	// Instructions (Validate sets it). An agent that never had one answers
	// {"prompt":{"system":instructions}}.
	Config map[string]any `bun:"-" json:"config"`
	// MetadataColumn is what the metadata column holds: Metadata, and the rest of Config
	// (without prompt.system, which is the instructions column) under agentConfigMeta. It
	// is made before each write and split after each read; nothing else uses it.
	MetadataColumn map[string]any `bun:"metadata,type:json" json:"-"`

	// Server is where the agent's calls' events are posted (call webhooks); nil: nowhere.
	Server *CallServer `bun:"server,type:json" json:"server"`
	// Recording asks for the agent's calls to be recorded, whatever carries them.
	Recording RecordingSettings `bun:"recording,type:json" json:"recording"`
}

// agentConfigMeta is the key of the metadata column that holds an agent's Config.
const agentConfigMeta = "agent_studio_config"

// BeforeAppendModel makes the metadata column of Metadata and Config.
func (a *Agent) BeforeAppendModel(context.Context, bun.Query) error {
	col := make(map[string]any, len(a.Metadata)+1)
	for k, v := range a.Metadata {
		col[k] = v
	}
	delete(col, agentConfigMeta)
	if rest := configRest(a.Config); len(rest) > 0 {
		col[agentConfigMeta] = rest
	}
	a.MetadataColumn = col
	return nil
}

// AfterScanRow splits the metadata column into Metadata and Config.
func (a *Agent) AfterScanRow(context.Context) error {
	a.Metadata = make(map[string]any, len(a.MetadataColumn))
	var rest map[string]any
	for k, v := range a.MetadataColumn {
		if k == agentConfigMeta {
			rest, _ = v.(map[string]any)
			continue
		}
		a.Metadata[k] = v
	}
	a.Config = withSystemPrompt(rest, a.Instructions)
	return nil
}

// AgentConfigSystem is the system prompt of an Agent Studio config (config.prompt.system):
// set reports whether it is there at all, ok whether it is a string.
func AgentConfigSystem(config map[string]any) (system string, set, ok bool) {
	prompt, _ := config["prompt"].(map[string]any)
	v, set := prompt["system"]
	system, ok = v.(string)
	return system, set, ok
}

// withSystemPrompt is config (copied, never changed) with prompt.system set to system.
func withSystemPrompt(config map[string]any, system string) map[string]any {
	out := make(map[string]any, len(config)+1)
	for k, v := range config {
		out[k] = v
	}
	prompt := map[string]any{}
	if p, ok := config["prompt"].(map[string]any); ok {
		for k, v := range p {
			prompt[k] = v
		}
	}
	prompt["system"] = system
	out["prompt"] = prompt
	return out
}

// configRest is what of config the instructions column does not hold: config without
// prompt.system, and without prompt when nothing else is in it. Nil when nothing is left.
func configRest(config map[string]any) map[string]any {
	out := make(map[string]any, len(config))
	for k, v := range config {
		out[k] = v
	}
	if p, ok := config["prompt"].(map[string]any); ok {
		prompt := make(map[string]any, len(p))
		for k, v := range p {
			if k != "system" {
				prompt[k] = v
			}
		}
		if len(prompt) == 0 {
			delete(out, "prompt")
		} else {
			out["prompt"] = prompt
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Voice is how an agent speaks: a text-to-speech provider, its voice, and a speaking rate.
type Voice struct {
	Provider string  `json:"provider"`
	Voice    string  `json:"voice"`
	Speed    float64 `json:"speed"`
}

// Transcriber is how an agent hears: a speech-to-text provider and model.
type Transcriber struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Language string `json:"language"`
}

// Knowledge modes of an agent (KnowledgeSettings.Mode).
const (
	// KnowledgeAuto searches the agent's knowledge with each of the caller's turns and puts
	// the best chunks in the model's context before it is asked: no extra model round trip,
	// which on the phone is most of a second the caller would wait. The default.
	KnowledgeAuto = "auto"
	// KnowledgeTool offers the model a knowledge_search tool to call when it needs to: turns
	// that need no documents cost nothing, turns that do cost a model round trip.
	KnowledgeTool = "tool"
	// KnowledgeOff leaves the bases to the agent's workflow knowledge nodes.
	KnowledgeOff = "off"
)

// Limits of KnowledgeSettings.
const (
	DefaultKnowledgeLimit    = 3
	DefaultKnowledgeMaxChars = 2000
)

// KnowledgeSettings say how an agent's model uses its knowledge bases.
type KnowledgeSettings struct {
	// Mode is KnowledgeAuto (when empty), KnowledgeTool or KnowledgeOff.
	Mode string `json:"mode"`
	// Limit is how many chunks a search returns (1-20; zero: DefaultKnowledgeLimit).
	Limit int `json:"limit"`
	// MaxChars bounds the chunks' text given to the model in one turn or tool result
	// (200-20000; zero: DefaultKnowledgeMaxChars).
	MaxChars int `json:"max_chars"`
}

// WithDefaults is s with its zero fields set to the defaults.
func (s KnowledgeSettings) WithDefaults() KnowledgeSettings {
	if s.Mode == "" {
		s.Mode = KnowledgeAuto
	}
	if s.Limit == 0 {
		s.Limit = DefaultKnowledgeLimit
	}
	if s.MaxChars == 0 {
		s.MaxChars = DefaultKnowledgeMaxChars
	}
	return s
}

// CallLimits end a call that runs too long or goes quiet.
type CallLimits struct {
	MaxDurationS int `json:"max_duration_s"`
	IdleTimeoutS int `json:"idle_timeout_s"`
}

// TurnSettings tune endpointing (when the caller's turn is over) and barge-in.
type TurnSettings struct {
	EndpointingMS     int  `json:"endpointing_ms"`
	Interruptions     bool `json:"interruptions"`
	MinInterruptionMS int  `json:"min_interruption_ms"`
	// FirstMessageInterruptible lets the caller interrupt the agent's first message (the
	// greeting); off, it is always heard whole.
	FirstMessageInterruptible bool `json:"first_message_interruptible"`
	// STTEndpointingMS is the caller's silence after which a streaming transcriber ends an
	// utterance (Deepgram's endpointing, OpenAI's silence_duration_ms); 0 is 300.
	STTEndpointingMS int `json:"stt_endpointing_ms,omitempty"`
	// EarlyStartMS, when not 0, starts the model on a live interim transcript that stood
	// this long with the caller paused; its answer sounds once the turn is over, and is
	// dropped if the caller goes on.
	EarlyStartMS int `json:"early_start_ms,omitempty"`
	// Detection is who ends the caller's turn on a speech-to-speech model's call: the
	// model's VAD ("server_vad", the default when empty), its judgement of a finished
	// thought ("semantic_vad"), or Switchboard's VAD with EndpointingMS ("switchboard").
	Detection string `json:"detection,omitempty"`
}

// NewAgent returns an agent with the defaults a created agent starts from; a request body
// decoded over it sets what the client chose.
func NewAgent() *Agent {
	return &Agent{
		Language:         "en",
		Model:            "openai/gpt-4o-mini",
		Temperature:      0.7,
		Voice:            Voice{Provider: "espeak", Voice: "en-us", Speed: 1.0},
		Transcriber:      Transcriber{Provider: "openai", Model: "whisper-1"},
		ToolIDs:          []string{},
		KnowledgeBaseIDs: []string{},
		Knowledge:        KnowledgeSettings{}.WithDefaults(),
		TransferTargets:  []string{},
		Limits:           CallLimits{MaxDurationS: 1800, IdleTimeoutS: 30},
		Turn:             TurnSettings{EndpointingMS: 600, Interruptions: true, MinInterruptionMS: 250, FirstMessageInterruptible: true},
		Recording:        RecordingSettings{}.WithDefaults(),
		Metadata:         map[string]any{},
	}
}

func (*Agent) idPrefix() string { return prefixAgent }

// Validate checks the agent's own fields.
func (a *Agent) Validate() error {
	var fe fieldErrors
	fe.requireName("name", a.Name)
	fe.maxText("instructions", a.Instructions)
	fe.maxText("first_message", a.FirstMessage)
	if !reLanguage.MatchString(a.Language) {
		fe.add("language", "must be a language tag such as \"en\" or \"en-US\"")
	}
	if !reModel.MatchString(a.Model) {
		fe.add("model", "must be \"provider/model\", such as \"openai/gpt-4o-mini\"")
	}
	fe.rangeFloat("temperature", a.Temperature, 0, 2)
	if strings.TrimSpace(a.Voice.Provider) == "" {
		fe.add("voice.provider", "is required")
	}
	fe.rangeFloat("voice.speed", a.Voice.Speed, 0.25, 4)
	if strings.TrimSpace(a.Transcriber.Provider) == "" {
		fe.add("transcriber.provider", "is required")
	}
	if a.Transcriber.Language != "" && !reLanguage.MatchString(a.Transcriber.Language) {
		fe.add("transcriber.language", "must be a language tag such as \"en\"")
	}
	if a.ToolIDs == nil {
		a.ToolIDs = []string{}
	}
	if a.KnowledgeBaseIDs == nil {
		a.KnowledgeBaseIDs = []string{}
	}
	if a.Metadata == nil {
		a.Metadata = map[string]any{}
	}
	if a.Config != nil {
		if p, present := a.Config["prompt"]; present {
			if _, isObject := p.(map[string]any); !isObject {
				fe.add("config.prompt", "must be an object")
			}
		}
		if b, _ := json.Marshal(configRest(a.Config)); len(b) > maxMetadataLen {
			fe.add("config", "must be at most %d bytes of JSON besides config.prompt.system", maxMetadataLen)
		}
	}
	// The config's system prompt is the instructions, whichever a client set (the API
	// decides which, see its agent resource).
	a.Config = withSystemPrompt(a.Config, a.Instructions)
	if a.TransferTargets == nil {
		a.TransferTargets = []string{}
	}
	if len(a.TransferTargets) > 32 {
		fe.add("transfer_targets", "must list at most 32 destinations")
	}
	for i, to := range a.TransferTargets {
		field := fmt.Sprintf("transfer_targets[%d]", i)
		switch {
		case !ValidDestination(to):
			fe.add(field, "must be an E.164 number (+15551234567) or a SIP URI (sip:desk@pbx.example.com)")
		case slices.Contains(a.TransferTargets[:i], to):
			fe.add(field, "is listed twice")
		}
	}
	seen := map[string]bool{}
	for i, id := range a.ToolIDs {
		field := fmt.Sprintf("tool_ids[%d]", i)
		switch {
		case !validID(prefixTool, id):
			fe.add(field, "is not a tool ID")
		case seen[id]:
			fe.add(field, "is listed twice")
		}
		seen[id] = true
	}
	if len(a.ToolIDs) > 128 {
		fe.add("tool_ids", "must list at most 128 tools")
	}
	for i, id := range a.KnowledgeBaseIDs {
		field := fmt.Sprintf("knowledge_base_ids[%d]", i)
		switch {
		case !validID(prefixKnowledgeBase, id):
			fe.add(field, "is not a knowledge base ID")
		case slices.Contains(a.KnowledgeBaseIDs[:i], id):
			fe.add(field, "is listed twice")
		}
	}
	if len(a.KnowledgeBaseIDs) > 32 {
		fe.add("knowledge_base_ids", "must list at most 32 knowledge bases")
	}
	if a.WorkflowID != nil && !validID(prefixWorkflow, *a.WorkflowID) {
		fe.add("workflow_id", "is not a workflow ID")
	}
	fe.rangeInt("limits.max_duration_s", a.Limits.MaxDurationS, 10, 86400)
	fe.rangeInt("limits.idle_timeout_s", a.Limits.IdleTimeoutS, 0, 3600)
	fe.rangeInt("turn.endpointing_ms", a.Turn.EndpointingMS, 100, 10000)
	fe.rangeInt("turn.min_interruption_ms", a.Turn.MinInterruptionMS, 0, 5000)
	fe.rangeInt("turn.stt_endpointing_ms", a.Turn.STTEndpointingMS, 0, 5000)
	fe.rangeInt("turn.early_start_ms", a.Turn.EarlyStartMS, 0, 5000)
	switch a.Turn.Detection {
	case "", "server_vad", "semantic_vad", "switchboard":
	default:
		fe.add("turn.detection", "must be server_vad, semantic_vad or switchboard")
	}
	a.Knowledge = a.Knowledge.WithDefaults()
	switch a.Knowledge.Mode {
	case KnowledgeAuto, KnowledgeTool, KnowledgeOff:
	default:
		fe.add("knowledge.mode", "must be auto, tool or off")
	}
	fe.rangeInt("knowledge.limit", a.Knowledge.Limit, 1, 20)
	fe.rangeInt("knowledge.max_chars", a.Knowledge.MaxChars, 200, 20000)
	a.Recording = a.Recording.WithDefaults()
	a.Recording.validate(&fe)
	fe.metadata("metadata", a.Metadata)
	return fe.err()
}

func (a *Agent) references() []reference {
	refs := make([]reference, 0, len(a.ToolIDs)+len(a.KnowledgeBaseIDs)+1)
	for i, id := range a.ToolIDs {
		refs = append(refs, reference{field: fmt.Sprintf("tool_ids[%d]", i), table: "tools", id: id})
	}
	// A base the agent searches must be the tenant's (checked on every save, so that an
	// agent never names another tenant's knowledge).
	for i, id := range a.KnowledgeBaseIDs {
		refs = append(refs, reference{field: fmt.Sprintf("knowledge_base_ids[%d]", i), table: "knowledge_bases", id: id})
	}
	if a.WorkflowID != nil {
		refs = append(refs, reference{field: "workflow_id", table: "workflows", id: *a.WorkflowID})
	}
	return refs
}

func (a *Agent) checkDelete(ctx context.Context, tx bun.IDB) error {
	n, err := tx.NewSelect().Table("phone_numbers").Where("agent_id = ?", a.ID).Where("tenant_id = ?", a.TenantID).Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return &ConflictError{Field: "id", Message: fmt.Sprintf("the agent answers %d phone number(s); point them elsewhere first", n)}
	}
	return nil
}
