package api

import (
	"encoding/json"
	"reflect"
	"slices"

	"github.com/switchboard-go/switchboard/store"
)

// What the schemas of the OpenAPI document say beyond the Go types' shapes: which fields the
// server alone sets (readOnly), which a create refuses without (required), the values a field
// takes (enum) and what a create starts from (default). The reflected schemas read this
// table, so that a client generated from the document knows what it may send.

// fieldNote annotates one property of a schema.
type fieldNote struct {
	// readOnly: the server sets the field; a body's value is ignored.
	readOnly bool
	// writeOnly: the field is taken but never shown (a password).
	writeOnly bool
	// required: a create without the field is a 422 naming it (a PATCH never requires).
	required bool
	enum     []string
	// description says what the field is when its name does not.
	description string
}

// typeNote annotates the schema of one Go type.
type typeNote struct {
	fields map[string]fieldNote
	// defaults returns a value holding what a create starts from (the type's constructor):
	// its non-zero fields become the properties' defaults.
	defaults func() any
}

// rowFields are the fields of store.Row: every tenant-owned model's identity and times,
// which only the server sets.
var rowFields = []string{"id", "tenant_id", "created_at", "updated_at"}

// identityFields are the names of identity and time fields of schemas that only answers
// carry.
var identityFields = []string{"id", "tenant_id", "created_at", "updated_at", "createdAt", "updatedAt"}

var rowType = reflect.TypeFor[store.Row]()

var (
	ro       = fieldNote{readOnly: true}
	required = fieldNote{required: true}
)

func oneOf(values ...string) fieldNote { return fieldNote{enum: values} }

// endedReasons are the values of a call's ended_reason ("" while it is live).
var endedReasons = []string{"", store.EndedCallerHangup, store.EndedCalleeHangup, store.EndedAgentHangup, store.EndedAPIHangup,
	store.EndedTransferred, store.EndedMediaTimeout, store.EndedRejected, store.EndedBusy, store.EndedNoAnswer, store.EndedCanceled,
	store.EndedError, store.EndedShutdown, store.EndedRestart, store.EndedNodeLost, store.EndedCredentialRevoked,
	store.EndedSessionExpired, store.EndedNoAck, store.EndedIdleTimeout, store.EndedMaxDuration, store.EndedAgentError,
	store.EndedICEFailed, store.EndedPeerDisconnected, store.EndedVoicemail}

var schemaNotes = map[reflect.Type]typeNote{
	reflect.TypeFor[store.Agent](): {defaults: func() any { return store.NewAgent() }, fields: map[string]fieldNote{
		"name":   required,
		"model":  {description: "provider/model, such as openai/gpt-4o-mini; the provider must be configured (422 otherwise)"},
		"config": {description: "Agent Studio's configuration as its clients sent it; config.prompt.system is always the instructions"},
		"server": {description: "Where the agent's calls' events are posted (call webhooks); null: nowhere"},
	}},
	reflect.TypeFor[store.Voice](): {fields: map[string]fieldNote{
		"provider": {description: "A configured text-to-speech provider (espeak is built in)"},
	}},
	reflect.TypeFor[store.Transcriber](): {fields: map[string]fieldNote{
		"provider": {description: "A configured speech-to-text provider"},
	}},
	reflect.TypeFor[store.KnowledgeSettings](): {defaults: func() any { return store.KnowledgeSettings{}.WithDefaults() }, fields: map[string]fieldNote{
		"mode": oneOf(store.KnowledgeAuto, store.KnowledgeTool, store.KnowledgeOff),
	}},
	reflect.TypeFor[store.RecordingSettings](): {defaults: func() any { return store.RecordingSettings{}.WithDefaults() }, fields: map[string]fieldNote{
		"channels": oneOf(store.RecordStereo, store.RecordMono),
	}},
	reflect.TypeFor[store.CallServer](): {fields: map[string]fieldNote{
		"url":        {description: "The http(s) URL events are posted to; required"},
		"secret":     {writeOnly: true, description: "Signs each post (HMAC-SHA256); generated when left out, shown to its creator once"},
		"secret_set": ro,
	}},
	reflect.TypeFor[store.Workflow](): {fields: map[string]fieldNote{"name": required, "graph": required}},
	reflect.TypeFor[store.Node](): {fields: map[string]fieldNote{
		"id":   required,
		"type": {required: true, enum: store.NodeTypes()},
	}},
	reflect.TypeFor[store.Tool](): {defaults: func() any { return store.NewTool() }, fields: map[string]fieldNote{
		"name": required, "webhook": required,
		"parameters": {description: "A JSON Schema of type object: the arguments the model passes"},
	}},
	// A nested object is decoded over what it replaces, so what its create needs is the
	// top-level field's to say (a tool without webhook.url is a 422 naming it).
	reflect.TypeFor[store.Webhook](): {fields: map[string]fieldNote{
		"url":    {description: "The http(s) URL Switchboard calls with the model's arguments; required"},
		"method": oneOf("GET", "POST", "PUT", "PATCH", "DELETE"),
	}},
	reflect.TypeFor[store.PhoneNumber](): {fields: map[string]fieldNote{
		"number":       {required: true, description: "An E.164 number such as +14155550100, or a SIP user"},
		"destination":  oneOf(append([]string{""}, store.BuiltinDestinations...)...),
		"routable":     ro,
		"not_routable": ro,
	}},
	reflect.TypeFor[store.Trunk](): {defaults: func() any { return store.NewTrunk() }, fields: map[string]fieldNote{
		"name":         required,
		"direction":    oneOf("inbound", "outbound", "both"),
		"srtp":         oneOf(store.TrunkSRTPOff, store.TrunkSRTPOffer, store.TrunkSRTPRequired),
		"registration": ro,
	}},
	reflect.TypeFor[store.TrunkInbound](): {fields: map[string]fieldNote{
		"password": {writeOnly: true}, "has_password": ro,
	}},
	reflect.TypeFor[store.TrunkOutbound](): {fields: map[string]fieldNote{
		"password": {writeOnly: true}, "has_password": ro,
		"transport": oneOf("udp", "tcp", "tls"),
	}},
	reflect.TypeFor[store.ModelProvider](): {defaults: func() any { return store.NewModelProvider() }, fields: map[string]fieldNote{
		"name": required, "base_url": required,
		"kind":        oneOf("openai", "anthropic"),
		"api_key":     {writeOnly: true},
		"has_api_key": ro,
	}},
	reflect.TypeFor[store.User](): {fields: map[string]fieldNote{
		"email":         required,
		"password":      {required: true, writeOnly: true},
		"last_login_at": ro,
		"scopes":        {description: "Any of read, write and admin"},
	}},
	reflect.TypeFor[store.Tenant]():  {fields: map[string]fieldNote{"id": ro, "created_at": ro, "updated_at": ro}},
	reflect.TypeFor[TenantRequest](): {fields: map[string]fieldNote{"name": required}},
	reflect.TypeFor[store.APIKey](): {fields: map[string]fieldNote{
		"kind": ro, "display": ro, "last_used_at": ro, "revoked_at": ro, "parent_id": ro,
	}},
	reflect.TypeFor[CreatedKey](): {fields: map[string]fieldNote{"key": {readOnly: true, description: "The key itself: in this answer only"}}},
	reflect.TypeFor[KeyCreateRequest](): {fields: map[string]fieldNote{
		"name": required,
		"kind": oneOf("agent_studio", "alumia"),
		"env":  oneOf("live", "test"),
	}},
	reflect.TypeFor[store.KnowledgeBase](): {defaults: func() any { return store.NewKnowledgeBase() }, fields: map[string]fieldNote{
		"name": required,
	}},
	reflect.TypeFor[store.KnowledgeDocument](): {fields: map[string]fieldNote{
		"status": oneOf(store.DocumentProcessing, store.DocumentReady, store.DocumentFailed),
	}},
	reflect.TypeFor[store.Call](): {fields: map[string]fieldNote{
		"status":       oneOf(store.CallStatuses...),
		"direction":    oneOf(store.CallInbound, store.CallOutbound, store.CallWeb),
		"ended_reason": oneOf(endedReasons...),
		// How a SIP call's media was carried; "" before the answer and on other transports.
		"media_security": oneOf("", "srtp", "none"),
	}},
	reflect.TypeFor[store.CallAMD](): {fields: map[string]fieldNote{
		"mode":   oneOf(store.AMDDetect, store.AMDDetectThenMessage),
		"result": oneOf("", store.AMDHuman, store.AMDMachine, store.AMDUnknown),
	}},
	reflect.TypeFor[CallRequest](): {fields: map[string]fieldNote{
		"to":          required,
		"destination": oneOf(append([]string{""}, store.BuiltinDestinations...)...),
	}},
	reflect.TypeFor[AMDRequest]():      {fields: map[string]fieldNote{"mode": oneOf(store.AMDDetect, store.AMDDetectThenMessage)}},
	reflect.TypeFor[TransferRequest](): {fields: map[string]fieldNote{"to": required}},
	reflect.TypeFor[LoginRequest]():    {fields: map[string]fieldNote{"email": required, "password": {required: true, writeOnly: true}}},
	reflect.TypeFor[RefreshRequest]():  {fields: map[string]fieldNote{"refresh_token": required}},
	reflect.TypeFor[SessionOut]():      {fields: map[string]fieldNote{"status": oneOf(store.SessionActive, store.SessionClosed)}},
	reflect.TypeFor[SessionRequest]():  {fields: map[string]fieldNote{"status": oneOf(store.SessionActive, store.SessionClosed)}},
	reflect.TypeFor[MessageOut](): {fields: map[string]fieldNote{
		"role":   oneOf(store.RoleUser, store.RoleAssistant, store.RoleTool, store.RoleSystem),
		"status": oneOf(store.MessageCompleted, store.MessageFailed, store.MessageCanceled),
	}},
	reflect.TypeFor[store.MessagePart](): {fields: map[string]fieldNote{
		"type": {required: true, enum: []string{store.PartText, store.PartToolCall, store.PartToolResult, store.PartFile}},
	}},
	reflect.TypeFor[SearchRequest]():        {fields: map[string]fieldNote{"query": required}},
	reflect.TypeFor[WebRTCSessionRequest](): {fields: map[string]fieldNote{"sdp": required}},
	reflect.TypeFor[Probe]():                {fields: map[string]fieldNote{"status": oneOf("live", "ready", "not_ready")}},
	reflect.TypeFor[Health]():               {fields: map[string]fieldNote{"status": oneOf("healthy", "unhealthy")}},
	reflect.TypeFor[store.TrunkRegistration](): {fields: map[string]fieldNote{
		"status": oneOf(store.RegistrationPending, store.RegistrationRegistered, store.RegistrationFailed),
	}},
	reflect.TypeFor[store.ErrorLogEntry](): {fields: map[string]fieldNote{
		"kind": {description: "What failed: call_failed, provider_error, tool_failure, gateway_error…"},
	}},
	reflect.TypeFor[store.UsageTotal](): {fields: map[string]fieldNote{"source": oneOf("", store.UsageGateway, store.UsageCall, store.UsageSession)}},
	reflect.TypeFor[store.WebhookDelivery](): {fields: map[string]fieldNote{
		"status": oneOf(store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed),
	}},
	reflect.TypeFor[AmplifierConfigRequest]():  {fields: map[string]fieldNote{"name": required, "yaml_content": required}},
	reflect.TypeFor[AmplifierSessionRequest](): {fields: map[string]fieldNote{"config_id": required}},
	reflect.TypeFor[AmplifierMessageRequest](): {fields: map[string]fieldNote{"message": required}},
	reflect.TypeFor[AmplifierAppRequest]():     {fields: map[string]fieldNote{"app_id": required, "app_name": required}},
	reflect.TypeFor[amaKeyRequest]():           {fields: map[string]fieldNote{"name": required}},
	reflect.TypeFor[amaKnowledgeRequest]():     {fields: map[string]fieldNote{"name": required}},
	reflect.TypeFor[amaMessageRequest]():       {fields: map[string]fieldNote{"content": required, "role": oneOf(store.RoleUser)}},
	reflect.TypeFor[amaSessionRequest]():       {fields: map[string]fieldNote{"agentId": required}},
	reflect.TypeFor[RunnerRequest]():           {fields: map[string]fieldNote{"content": required}},
	reflect.TypeFor[RunnerPart]():              {fields: map[string]fieldNote{"type": {required: true, enum: []string{"text", "image", "video", "audio", "url"}}}},
	reflect.TypeFor[oaiRequest]():              {fields: map[string]fieldNote{"model": required, "messages": required}},
	reflect.TypeFor[antRequest]():              {fields: map[string]fieldNote{"model": required, "messages": required, "max_tokens": required}},
	reflect.TypeFor[alumiaChatRequest]():       {fields: map[string]fieldNote{"messages": required}},
}

// annotate adds what note says to the schema s of a property.
func annotate(s map[string]any, note fieldNote) {
	if note.readOnly {
		s["readOnly"] = true
	}
	if note.writeOnly {
		s["writeOnly"] = true
	}
	if note.description != "" {
		s["description"] = note.description
	}
	if note.enum != nil {
		enum := make([]any, len(note.enum))
		for i, v := range note.enum {
			enum[i] = v
		}
		// A nullable field keeps null beside its values.
		if alts, ok := s["anyOf"].([]any); ok && len(alts) == 2 {
			alts[0].(map[string]any)["enum"] = enum
		} else {
			s["enum"] = enum
		}
	}
}

// defaultsOf is what a value holds in JSON, field by field: a created resource's defaults.
// Zero values (false, 0, "", empty lists and objects, null) are not defaults worth stating.
func defaultsOf(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case bool:
			if !x {
				delete(m, k)
			}
		case float64:
			if x == 0 {
				delete(m, k)
			}
		case string:
			if x == "" {
				delete(m, k)
			}
		case []any:
			if len(x) == 0 {
				delete(m, k)
			}
		case map[string]any:
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
	return m
}

// embedsRow reports whether t is a tenant-owned model: a struct embedding store.Row.
func embedsRow(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.Anonymous && f.Type == rowType {
			return true
		}
	}
	return false
}

// markAnswerOnly marks the identity and time fields readOnly in every component no request
// body reaches: those schemas describe answers alone, whose ids and times are the server's.
func (g *schemaGen) markAnswerOnly(requestRoots []map[string]any) {
	reached := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name := ref[len("#/components/schemas/"):]
				if !reached[name] {
					reached[name] = true
					walk(g.components[name])
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, r := range requestRoots {
		walk(r)
	}
	for name, c := range g.components {
		if reached[name] {
			continue
		}
		props, _ := c.(map[string]any)["properties"].(map[string]any)
		for p, s := range props {
			if slices.Contains(identityFields, p) {
				s.(map[string]any)["readOnly"] = true
			}
		}
	}
}

// updateSchema returns the schema of a PATCH or PUT body of the type whose create schema is
// s: the same fields, none required, as fields left out keep their values.
func (g *schemaGen) updateSchema(s map[string]any) map[string]any {
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	name := ref[len("#/components/schemas/"):]
	obj, _ := g.components[name].(map[string]any)
	if _, req := obj["required"]; !req {
		return s
	}
	update := name + "Update"
	if _, done := g.components[update]; !done {
		c := make(map[string]any, len(obj))
		for k, v := range obj {
			if k != "required" {
				c[k] = v
			}
		}
		c["description"] = "The fields to change; those left out keep their values"
		g.components[update] = c
	}
	return map[string]any{"$ref": "#/components/schemas/" + update}
}
