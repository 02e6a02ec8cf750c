package s2s

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// Config says where a session connects.
type Config struct {
	// BaseURL is the provider's API root (https://api.openai.com/v1): the session opens
	// {BaseURL}/realtime?model={Model} over WebSocket (http becomes ws, https wss).
	BaseURL string
	// APIKey is sent as a Bearer token; empty sends none (a local server).
	APIKey string
	Model  string
	// Header is sent with the handshake (an organization, a project).
	Header http.Header
	// Client carries the handshake: a tenant's provider gets the tenant client, which
	// refuses private addresses. Nil is http.DefaultClient.
	Client *http.Client
}

// maxMessage bounds one server event: an audio delta of a few seconds in base64 is well
// under it, and a runaway server cannot make a call hold more.
const maxMessage = 4 << 20

// Session is one Realtime conversation over one WebSocket. Its Send methods may be called
// from any goroutine (the socket serialises writes); Next from one at a time.
type Session struct {
	conn *websocket.Conn

	// appendMu guards appendBuf, the message AppendAudio builds without allocating.
	appendMu  sync.Mutex
	appendBuf []byte
}

// Dial opens a session with the model of cfg.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	u, err := endpoint(cfg.BaseURL, cfg.Model)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, v := range cfg.Header {
		h[k] = v
	}
	if cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: cfg.Client, HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w: %s answered %d: %w", ErrDial, redactURL(u), resp.StatusCode, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrDial, redactURL(u), err)
	}
	conn.SetReadLimit(maxMessage)
	return &Session{conn: conn}, nil
}

// endpoint is the session's WebSocket URL.
func endpoint(base, model string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + "/realtime")
	if err != nil {
		return "", fmt.Errorf("%w: base URL %q: %w", ErrDial, base, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("%w: base URL %q is not http(s)", ErrDial, base)
	}
	if model == "" {
		return "", fmt.Errorf("%w: no model named", ErrDial)
	}
	q := u.Query()
	q.Set("model", model)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		p.User = nil
		return p.Redacted()
	}
	return "the server"
}

// Close closes the socket with a normal closure; a second Close does nothing harmful.
func (s *Session) Close() error {
	if err := s.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		return s.conn.CloseNow()
	}
	return nil
}

// Send sends a client event: any value that marshals to one.
func (s *Session) Send(ctx context.Context, event any) error {
	b, err := json.Marshal(event)
	if err != nil {
		return err
	}
	return s.write(ctx, b)
}

func (s *Session) write(ctx context.Context, b []byte) error {
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return nil
}

// Update sends session.update with cfg.
func (s *Session) Update(ctx context.Context, cfg SessionConfig) error {
	return s.Send(ctx, map[string]any{"type": "session.update", "session": cfg.wire()})
}

// AppendAudio sends the caller's audio, in the session's input format, to the input
// buffer (input_audio_buffer.append).
func (s *Session) AppendAudio(ctx context.Context, audio []byte) error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	const head, tail = `{"type":"input_audio_buffer.append","audio":"`, `"}`
	n := len(head) + base64.StdEncoding.EncodedLen(len(audio)) + len(tail)
	if cap(s.appendBuf) < n {
		s.appendBuf = make([]byte, 0, n)
	}
	b := append(s.appendBuf[:0], head...)
	b = base64.StdEncoding.AppendEncode(b, audio)
	b = append(b, tail...)
	s.appendBuf = b
	return s.write(ctx, b)
}

// Commit ends the caller's turn in the input buffer (input_audio_buffer.commit): what our
// own turn detection does where the model's is off.
func (s *Session) Commit(ctx context.Context) error {
	return s.Send(ctx, map[string]string{"type": "input_audio_buffer.commit"})
}

// CreateResponse asks the model to answer (response.create); instructions, when set, are
// for this response only (a greeting).
func (s *Session) CreateResponse(ctx context.Context, instructions string) error {
	ev := map[string]any{"type": "response.create"}
	if instructions != "" {
		ev["response"] = map[string]any{"instructions": instructions}
	}
	return s.Send(ctx, ev)
}

// CancelResponse stops the response being made (response.cancel).
func (s *Session) CancelResponse(ctx context.Context) error {
	return s.Send(ctx, map[string]string{"type": "response.cancel"})
}

// Truncate tells the model how much of its audio item the caller heard
// (conversation.item.truncate), so that its memory of what it said ends there.
func (s *Session) Truncate(ctx context.Context, itemID string, audioEndMS int) error {
	return s.Send(ctx, map[string]any{"type": "conversation.item.truncate", "item_id": itemID, "content_index": 0, "audio_end_ms": audioEndMS})
}

// FunctionOutput gives the model a tool's result (conversation.item.create of a
// function_call_output); a response.create must follow for the model to use it.
func (s *Session) FunctionOutput(ctx context.Context, callID, output string) error {
	return s.Send(ctx, map[string]any{"type": "conversation.item.create",
		"item": map[string]any{"type": "function_call_output", "call_id": callID, "output": output}})
}

// UserText adds a message of the caller's, as text, to the conversation
// (conversation.item.create of a user message with input_text): what the caller did
// that the model cannot hear, such as keys pressed. A response.create must follow for the
// model to answer it.
func (s *Session) UserText(ctx context.Context, text string) error {
	return s.Send(ctx, map[string]any{"type": "conversation.item.create",
		"item": map[string]any{"type": "message", "role": "user",
			"content": []map[string]string{{"type": "input_text", "text": text}}}})
}

// Next reads the server's next event.
func (s *Session) Next(ctx context.Context) (Event, error) {
	_, b, err := s.conn.Read(ctx)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ParseEvent(b)
}
