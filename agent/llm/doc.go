// Package llm owns Switchboard's language-model providers: a neutral conversation model
// (Request, Message, Response and the streamed Delta), the two upstream dialects that
// translate to and from it (OpenAI's chat completions, spoken by OpenAI, Groq, Together,
// vLLM, llama.cpp and Ollama; and Anthropic's messages), and the Registry that names
// providers and resolves "provider/model" to one of them with its prices and fallbacks.
//
// Every failure the upstream causes (an error status, a refused connection, a malformed or
// stalled stream, an error event in the stream) is an *UpstreamError; the caller's own
// cancellation is its context's error; a request that cannot be expressed in the upstream's
// dialect wraps ErrInvalidRequest.
package llm
