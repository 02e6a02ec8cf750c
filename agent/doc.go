// Package agent turns a conversation into an agent's answers: the model with the agent's
// instructions, and the agent's tools run on the model's behalf (HTTP webhooks, in rounds,
// until the model answers). The conversation loop of calls (turn taking, endpointing,
// barge-in) and the workflow engine live here as they are built.
package agent
