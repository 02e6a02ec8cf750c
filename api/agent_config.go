package api

import (
	"reflect"

	"github.com/switchboard-go/switchboard/store"
)

// reconcileAgentConfig settles an agent's two spellings of its system prompt: the
// canonical instructions and Agent Studio's config.prompt.system. A body that changed the
// config sets the instructions from it (Agent Studio's clients send only config); one that
// changed only the instructions leaves the config to follow them (store.Agent.Validate); one
// that changed both to different texts is refused, naming config.prompt.system.
func reconcileAgentConfig(m, before *store.Agent) error {
	if m.Config == nil || reflect.DeepEqual(m.Config, before.Config) {
		return nil
	}
	if p, present := m.Config["prompt"]; present {
		if _, isObject := p.(map[string]any); !isObject {
			return errValidation("config.prompt", "must be an object with the system prompt as system")
		}
	}
	system, set, ok := store.AgentConfigSystem(m.Config)
	switch {
	case !set:
		return errValidation("config.prompt.system", "is required: it is the agent's instructions")
	case !ok:
		return errValidation("config.prompt.system", "must be a string")
	case m.Instructions != before.Instructions && m.Instructions != system:
		return errValidation("config.prompt.system", "differs from instructions: send one of them, or the same text in both")
	}
	m.Instructions = system
	return nil
}
