package api

import (
	"encoding/json"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// A session's stored messages as the AI SDK's UIMessage ({id, role, parts, metadata}), the
// shape Alumia's requests get from the session routes (shapeOf): what useChat builds from
// the stream is what the history gives back, so a page reloaded from the history shows the
// same conversation. The parts are exactly those of the ai package's uiMessagesSchema
// (testdata/sdk/alumia.mjs checks pages with validateUIMessages).

// UIMessage is a stored message as the AI SDK holds it.
type UIMessage struct {
	ID       string      `json:"id"`
	Role     string      `json:"role"`
	Metadata *UIMetadata `json:"metadata,omitempty"`
	Parts    []any       `json:"parts"`
}

// UIMetadata is what Switchboard keeps of a message besides its parts.
type UIMetadata struct {
	SessionID string    `json:"sessionId"`
	CreatedAt time.Time `json:"createdAt"`
	// Status is completed, failed or canceled; Error says why an answer failed.
	Status       string   `json:"status"`
	Error        string   `json:"error,omitempty"`
	FinishReason string   `json:"finishReason,omitempty"`
	Model        string   `json:"model,omitempty"`
	Usage        *uiUsage `json:"usage,omitempty"`
	CostUSD      float64  `json:"costUsd,omitempty"`
}

// The parts of a UIMessage.
type (
	uiTextPart struct {
		Type  string `json:"type"`
		Text  string `json:"text"`
		State string `json:"state,omitempty"`
	}
	uiFilePart struct {
		Type      string `json:"type"`
		MediaType string `json:"mediaType"`
		Filename  string `json:"filename,omitempty"`
		URL       string `json:"url"`
	}
	uiStepStartPart struct {
		Type string `json:"type"`
	}
	// uiToolPart is a call of a server tool: "tool-<name>", with its input, and its output
	// (state output-available) or failure (output-error); input-available when no result
	// was stored (the answer stopped while the tool ran).
	uiToolPart struct {
		Type       string          `json:"type"`
		ToolCallID string          `json:"toolCallId"`
		State      string          `json:"state"`
		Input      json.RawMessage `json:"input"`
		Output     json.RawMessage `json:"output,omitempty"`
		ErrorText  string          `json:"errorText,omitempty"`
	}
)

// uiMessageOf renders a stored message. UIMessages have no tool role: a tool message renders
// as the assistant's, whose tool parts its results complete.
func uiMessageOf(m *store.SessionMessage) UIMessage {
	role := m.Role
	if role == store.RoleTool {
		role = store.RoleAssistant
	}
	out := UIMessage{ID: m.ID, Role: role, Parts: []any{}, Metadata: &UIMetadata{SessionID: m.SessionID, CreatedAt: m.CreatedAt, Status: m.Status}}
	if role != store.RoleAssistant {
		for _, p := range m.Parts {
			switch p.Type {
			case store.PartText:
				out.Parts = append(out.Parts, uiTextPart{Type: "text", Text: p.Text})
			case store.PartFile:
				out.Parts = append(out.Parts, uiFilePart{Type: "file", MediaType: p.MediaType, Filename: p.Filename, URL: p.URL})
			}
		}
		if len(out.Parts) == 0 {
			// The AI SDK refuses a message without parts.
			out.Parts = append(out.Parts, uiTextPart{Type: "text", Text: ""})
		}
		return out
	}
	md := out.Metadata
	md.Error, md.FinishReason, md.Model, md.CostUSD = m.Error, m.FinishReason, m.Model, m.CostUSD
	md.Usage = &uiUsage{InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, TotalTokens: m.InputTokens + m.OutputTokens}

	results := map[string]*store.MessagePart{}
	for i := range m.Parts {
		if p := &m.Parts[i]; p.Type == store.PartToolResult {
			results[p.ToolCallID] = p
		}
	}
	// Steps as the stream had them: one to start, and a new one after a tool's result.
	out.Parts = append(out.Parts, uiStepStartPart{Type: "step-start"})
	afterResult := false
	for _, p := range m.Parts {
		if afterResult && p.Type != store.PartToolResult {
			out.Parts = append(out.Parts, uiStepStartPart{Type: "step-start"})
			afterResult = false
		}
		switch p.Type {
		case store.PartText:
			if p.Text != "" {
				out.Parts = append(out.Parts, uiTextPart{Type: "text", Text: p.Text, State: "done"})
			}
		case store.PartFile:
			out.Parts = append(out.Parts, uiFilePart{Type: "file", MediaType: p.MediaType, Filename: p.Filename, URL: p.URL})
		case store.PartToolCall:
			tp := uiToolPart{Type: "tool-" + p.ToolName, ToolCallID: p.ToolCallID, State: "input-available", Input: uiJSON(orEmptyObject(p.Arguments))}
			if res := results[p.ToolCallID]; res != nil {
				if res.IsError {
					tp.State, tp.ErrorText = "output-error", res.Result
					if tp.ErrorText == "" {
						tp.ErrorText = "the tool failed"
					}
				} else {
					tp.State, tp.Output = "output-available", uiJSON(res.Result)
				}
			}
			out.Parts = append(out.Parts, tp)
		case store.PartToolResult:
			afterResult = true
		}
	}
	return out
}

func orEmptyObject(args string) string {
	if args == "" || !json.Valid([]byte(args)) {
		return "{}"
	}
	return args
}
