package session

import "errors"

var (
	// ErrBusy is a message sent to a session while its last message is still being answered:
	// the surfaces answer 409. The client waits for the answer (or cancels it) and sends again.
	ErrBusy = errors.New("session: a message of this session is still being answered")
	// ErrClosed is a message sent to a closed session.
	ErrClosed = errors.New("session: the session is closed")
	// ErrNoAgent is a message sent to a session whose agent was deleted.
	ErrNoAgent = errors.New("session: the session's agent no longer exists")
	// ErrEmpty is a user message with nothing in it.
	ErrEmpty = errors.New("session: the message has no content")
	// ErrNotAnswering is a cancel of a session that is not being answered.
	ErrNotAnswering = errors.New("session: no answer is being made")
	// ErrShutdown is a message sent while the node is stopping.
	ErrShutdown = errors.New("session: the server is stopping")
)

var (
	errNoTransfer = errors.New("a text session cannot be transferred to a phone number")
	errNoDTMF     = errors.New("a text session has no keypad")
)
