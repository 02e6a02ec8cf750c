package agent

import (
	"slices"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// The oldest turns go first, and what is kept starts with the caller, never with a tool
// result cut from its call.
func TestTrimHistory(t *testing.T) {
	t.Parallel()
	msg := func(r llm.Role) llm.Message { return llm.TextMessage(r, string(r)) }
	h := []llm.Message{msg(llm.RoleAssistant), msg(llm.RoleUser), msg(llm.RoleAssistant), msg(llm.RoleTool),
		msg(llm.RoleAssistant), msg(llm.RoleUser), msg(llm.RoleAssistant)}
	roles := func(h []llm.Message) (out []llm.Role) {
		for _, m := range h {
			out = append(out, m.Role)
		}
		return out
	}
	for _, tc := range []struct {
		limit int
		want  []llm.Role
	}{
		{10, roles(h)},
		{7, roles(h)},
		{6, []llm.Role{llm.RoleUser, llm.RoleAssistant, llm.RoleTool, llm.RoleAssistant, llm.RoleUser, llm.RoleAssistant}},
		{5, []llm.Role{llm.RoleUser, llm.RoleAssistant}},
		{1, nil},
	} {
		if got := roles(trimHistory(h, tc.limit)); !slices.Equal(got, tc.want) {
			t.Errorf("limit %d: %v, want %v", tc.limit, got, tc.want)
		}
	}
}

func TestUserMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   Input
		want string
	}{
		{Input{Kind: InputSpeech, Text: "  hello "}, "hello"},
		{Input{Kind: InputDTMF, Digits: "12#"}, "[keys pressed: 1 2 #]"},
		{Input{Kind: InputSpeech, Text: " "}, ""},
		{Input{Kind: InputTimeout}, ""},
	} {
		m, ok := userMessage(tc.in)
		if ok != (tc.want != "") || m.Text() != tc.want {
			t.Errorf("%+v: %q %v", tc.in, m.Text(), ok)
		}
	}
}
