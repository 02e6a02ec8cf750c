package session

import (
	"slices"
	"strings"
	"sync"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// Defaults of the window of history an answer is made over.
const (
	// DefaultHistoryMessages is how many stored messages are read for an answer.
	DefaultHistoryMessages = 200
	// DefaultHistoryChars bounds the characters of text, tool arguments and tool results sent
	// to the model: about 50,000 tokens, within the window of every current model with room
	// for the answer.
	DefaultHistoryChars = 200_000
)

// window is the history an answer is made over, as the model reads it. The rule: the last
// maxMessages stored messages; of those, the newest whose text fits in maxChars; and the
// window starts at a user message, so that no tool result is cut from its call. Failed and
// canceled answers keep what they said; tool calls that never got a result are left out
// (a model refuses a call without one).
func window(msgs []store.SessionMessage, maxChars int) []llm.Message {
	// Newest first, until the budget is spent; the newest user message always goes.
	start, used := len(msgs), 0
	for start > 0 {
		n := messageChars(&msgs[start-1])
		if used+n > maxChars && start < len(msgs) {
			break
		}
		used += n
		start--
	}
	for start < len(msgs) && msgs[start].Role != store.RoleUser {
		start++
	}
	var out []llm.Message
	for i := start; i < len(msgs); i++ {
		out = append(out, modelMessages(&msgs[i])...)
	}
	return out
}

func messageChars(m *store.SessionMessage) int {
	n := 0
	for _, p := range m.Parts {
		n += len(p.Text) + len(p.Arguments) + len(p.Result) + len(p.URL)
	}
	return n
}

// modelMessages is one stored message as the model reads it: a user's text (with files as
// references), or an answer split into the model's messages and the tools' results.
func modelMessages(m *store.SessionMessage) []llm.Message {
	switch m.Role {
	case store.RoleUser:
		var parts []llm.Part
		for _, p := range m.Parts {
			switch p.Type {
			case store.PartText:
				parts = append(parts, llm.TextPart(p.Text))
			case store.PartFile:
				parts = append(parts, filePart(p))
			}
		}
		if len(parts) == 0 {
			return nil
		}
		return []llm.Message{{Role: llm.RoleUser, Content: parts}}
	case store.RoleAssistant, store.RoleTool:
		return answerMessages(m.Parts)
	}
	return nil // system messages are the agent's instructions' business
}

func filePart(p store.MessagePart) llm.Part {
	if strings.HasPrefix(p.MediaType, "image/") && (strings.HasPrefix(p.URL, "https://") || strings.HasPrefix(p.URL, "http://") || strings.HasPrefix(p.URL, "data:")) {
		return llm.ImagePart(p.URL)
	}
	name := p.Filename
	if name == "" {
		name = p.URL
	}
	return llm.TextPart("[file: " + name + " (" + p.MediaType + ") " + p.URL + "]")
}

// answerMessages splits an answer's parts into the model's messages (text and tool calls)
// and the tools' results, in order.
func answerMessages(parts []store.MessagePart) []llm.Message {
	var out []llm.Message
	var cur *llm.Message
	results := map[string]bool{}
	for _, p := range parts {
		if p.Type == store.PartToolResult {
			results[p.ToolCallID] = true
		}
	}
	flush := func() {
		if cur != nil && (len(cur.Content) > 0 || len(cur.ToolCalls) > 0) {
			out = append(out, *cur)
		}
		cur = nil
	}
	for _, p := range parts {
		switch p.Type {
		case store.PartText:
			if cur == nil || len(cur.ToolCalls) > 0 {
				flush()
				cur = &llm.Message{Role: llm.RoleAssistant}
			}
			if n := len(cur.Content); n > 0 {
				cur.Content[n-1].Text += p.Text
			} else if p.Text != "" {
				cur.Content = append(cur.Content, llm.TextPart(p.Text))
			}
		case store.PartToolCall:
			if !results[p.ToolCallID] {
				continue
			}
			if cur == nil {
				cur = &llm.Message{Role: llm.RoleAssistant}
			}
			cur.ToolCalls = append(cur.ToolCalls, llm.ToolCall{ID: p.ToolCallID, Name: p.ToolName, Arguments: p.Arguments})
		case store.PartToolResult:
			flush()
			text := p.Result
			if text == "" {
				text = "ok"
			}
			out = append(out, llm.Message{Role: llm.RoleTool, ToolCallID: p.ToolCallID, Content: []llm.Part{llm.TextPart(text)}, IsError: p.IsError})
		}
	}
	flush()
	return out
}

// maxCachedHistories bounds how many sessions' recent histories a node keeps in memory.
const maxCachedHistories = 4096

// historyCache keeps the recent history of the sessions this node answered, so that the next
// message of a session does not read and decode it again. An entry is used only while the
// session's stored message count is the one it was taken at: a turn stored by another node,
// or an import, makes it stale, and it is read again. It is spread over shards, as the
// answers being made are (answerShards), so that messages of different sessions do not
// queue on one lock.
type historyCache struct {
	shards [answerShards]historyShard
}

type historyShard struct {
	mu      sync.Mutex
	entries map[string]cachedHistory
}

type cachedHistory struct {
	count int // the session's message count the history is of
	msgs  []store.SessionMessage
}

func (c *historyCache) shard(sessionID string) *historyShard {
	return &c.shards[shardOf(sessionID)]
}

// get returns the cached history of a session whose stored count is count.
func (c *historyCache) get(sessionID string, count int) ([]store.SessionMessage, bool) {
	sh := c.shard(sessionID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h, ok := sh.entries[sessionID]
	if !ok || h.count != count {
		return nil, false
	}
	return h.msgs, true
}

// put keeps the last max messages of a session's history, of count stored messages.
func (c *historyCache) put(sessionID string, count int, msgs []store.SessionMessage, max int) {
	if len(msgs) > max {
		msgs = msgs[len(msgs)-max:]
	}
	sh := c.shard(sessionID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.entries == nil {
		sh.entries = map[string]cachedHistory{}
	}
	if _, ok := sh.entries[sessionID]; !ok && len(sh.entries) >= maxCachedHistories/answerShards {
		for k := range sh.entries { // any one: map order is random
			delete(sh.entries, k)
			break
		}
	}
	sh.entries[sessionID] = cachedHistory{count: count, msgs: slices.Clip(msgs)}
}

func (c *historyCache) drop(sessionID string) {
	sh := c.shard(sessionID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delete(sh.entries, sessionID)
}
