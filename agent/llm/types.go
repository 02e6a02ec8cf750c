package llm

import (
	"encoding/json"
	"strings"
)

// Role says who speaks a Message.
type Role string

const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	// RoleTool carries the result of one tool call, named by Message.ToolCallID.
	RoleTool Role = "tool"
)

// PartType says what a Part holds.
type PartType string

const (
	PartText  PartType = "text"
	PartImage PartType = "image"
)

// Request is one turn asked of a model, in neither dialect.
type Request struct {
	// Model is the upstream model name (after the registry resolved "provider/model").
	Model string
	// System is the system prompt. System messages inside Messages are kept too: the OpenAI
	// dialect sends them in place, the Anthropic dialect appends them to System.
	System   string
	Messages []Message
	Tools    []Tool
	// ToolChoice is nil for the upstream's default (auto when there are tools).
	ToolChoice *ToolChoice
	// ParallelToolCalls, when set, allows or forbids several tool calls in one answer.
	ParallelToolCalls *bool
	// MaxTokens caps the answer; 0 leaves it to the upstream (Anthropic, which requires it,
	// gets the provider's default).
	MaxTokens   int
	Temperature *float64
	TopP        *float64
	Stop        []string
	// User identifies the end user to the upstream for abuse monitoring (OpenAI user,
	// Anthropic metadata.user_id).
	User string
}

// Message is one turn of the conversation.
type Message struct {
	Role    Role
	Content []Part
	// ToolCalls are the calls an assistant message makes.
	ToolCalls []ToolCall
	// ToolCallID names the call a RoleTool message answers.
	ToolCallID string
	// IsError marks a tool result that reports a failure.
	IsError bool
}

// Text joins the message's text parts.
func (m Message) Text() string { return joinText(m.Content) }

// Part is a piece of message content: text, or an image given either by URL or inline.
type Part struct {
	Type PartType
	Text string
	// ImageURL is an http(s) URL. Inline images use MediaType and Data instead; ImagePart
	// splits a data: URL into those.
	ImageURL  string
	MediaType string
	// Data is the image, base64-encoded.
	Data string
	// Detail is OpenAI's image detail (low, high, auto); other dialects ignore it.
	Detail string
}

// TextPart is a text Part.
func TextPart(s string) Part { return Part{Type: PartText, Text: s} }

// ImagePart is an image Part from a URL; a data: URL with base64 content becomes an inline
// image so that dialects that want the bytes apart (Anthropic) get them.
func ImagePart(url string) Part {
	if mt, data, ok := splitDataURL(url); ok {
		return Part{Type: PartImage, MediaType: mt, Data: data}
	}
	return Part{Type: PartImage, ImageURL: url}
}

// URL is the image as one URL: ImageURL, or a data: URL of the inline bytes.
func (p Part) URL() string {
	if p.ImageURL != "" || p.Data == "" {
		return p.ImageURL
	}
	return "data:" + p.MediaType + ";base64," + p.Data
}

// splitDataURL splits "data:image/png;base64,AAAA" into its media type and base64 data.
func splitDataURL(u string) (mediaType, data string, ok bool) {
	rest, found := strings.CutPrefix(u, "data:")
	if !found {
		return "", "", false
	}
	meta, data, found := strings.Cut(rest, ",")
	if !found {
		return "", "", false
	}
	mediaType, found = strings.CutSuffix(meta, ";base64")
	if !found {
		return "", "", false
	}
	return mediaType, data, true
}

// TextMessage is a message of one text part.
func TextMessage(role Role, text string) Message {
	return Message{Role: role, Content: []Part{TextPart(text)}}
}

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Parameters is the JSON Schema of the arguments; empty means an object without
	// properties.
	Parameters json.RawMessage
}

// ToolChoiceMode says whether and which tool the model must call.
type ToolChoiceMode string

const (
	ToolChoiceAuto ToolChoiceMode = "auto"
	ToolChoiceNone ToolChoiceMode = "none"
	// ToolChoiceRequired is OpenAI's "required" and Anthropic's "any".
	ToolChoiceRequired ToolChoiceMode = "required"
	// ToolChoiceTool forces the tool named by ToolChoice.Name.
	ToolChoiceTool ToolChoiceMode = "tool"
)

// ToolChoice constrains tool use.
type ToolChoice struct {
	Mode ToolChoiceMode
	Name string
}

// ToolCall is one call of a tool by the model.
type ToolCall struct {
	ID   string
	Name string
	// Arguments is JSON text, as the model wrote it.
	Arguments string
}

// Response is a complete answer.
type Response struct {
	ID    string
	Model string
	// Content is the answer's text.
	Content    string
	ToolCalls  []ToolCall
	StopReason StopReason
	// StopSequence is the stop sequence that ended the answer, when the upstream says.
	StopSequence string
	Usage        Usage
}

// Usage counts the tokens of one request.
type Usage struct {
	// InputTokens is the whole prompt, cached parts included.
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

func joinText(parts []Part) string {
	n := 0
	for _, p := range parts {
		if p.Type == PartText {
			n++
		}
	}
	if n == 1 {
		for _, p := range parts {
			if p.Type == PartText {
				return p.Text
			}
		}
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
