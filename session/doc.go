// Package session owns text (and mixed) conversations with agents that the server keeps: a
// session's messages are stored as they are made, and each new user message is answered by
// the session's agent, with the same brain that answers its calls (the LLM brain with the
// agent's tools, or its workflow), over the stored history. An answer is streamed to whoever
// asked for it as it is made, and stored when done, whether or not the asker is still there.
package session
