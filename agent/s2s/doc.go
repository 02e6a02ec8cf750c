// Package s2s is the client of speech-to-speech models that speak OpenAI's Realtime
// WebSocket protocol (gpt-realtime, and any server speaking the same events at its own base
// URL): one Session per call, which configures the model (instructions, voice, audio
// formats, turn detection, tools), streams the caller's audio up, and reads the model's
// events (its audio, its transcripts, its function calls, the end of each response) as
// typed Events. It knows nothing of calls or agents; agent/voice runs a call through it.
package s2s
