// Package provider owns the per-tenant registry of model, speech and embedding providers:
// the node's own (the environment's openai and anthropic, and the providers file
// SWITCHBOARD_PROVIDERS_FILE names) with each tenant's stored providers (/api/v1/providers)
// over them. The HTTP API and the agent runtime are both given one Registry at
// construction, so that a call's agent and a gateway request resolve a model the same way.
package provider
