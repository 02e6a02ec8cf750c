package agent

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// TextConversation is a Conversation over text: the caller's turns are sent to it with Send,
// and what the brain does is kept in a Transcript. Chat sessions carry an agent over it, and
// tests run brains through it without audio.
//
// Said text is "played" at once. Interruption is simulated only when asked for with
// InterruptNext: the next Say or Speak then stops after some words, as if the caller spoke
// over it, and the caller's words become the next input. Listen returns only the kinds of
// input it is asked for and drops the others, as a voice call does when a menu waits for
// keys; Record returns the recordings given with SendRecording, or an empty one.
type TextConversation struct {
	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	inputs     []Input
	recordings []Recording
	interrupt  *textInterrupt
	t          TextTranscript
	ended      chan struct{}
	endOnce    sync.Once
	// TransferError, when set before the brain runs, is what Transfer returns (a refused
	// transfer); the conversation then goes on.
	TransferError error
}

type textInterrupt struct {
	words int
	in    Input
}

// TextTranscript is what a brain did in a TextConversation.
type TextTranscript struct {
	// Said holds each Say and Speak, as heard (cut short when interrupted).
	Said []string
	// Lines is the conversation in order: the agent's words and the caller's inputs.
	Lines     []TextLine
	ToolCalls []ToolRecord
	// Knowledge is every search of the agent's knowledge, in order.
	Knowledge []Retrieval
	Usage     llm.Usage
	Events    []TextEvent
	// DTMF is every key sent to the far end.
	DTMF string
	// Recordings counts the Record calls; Beeps those that asked for a beep.
	Recordings, Beeps int
	// TransferredTo is the destination of a transfer that was made.
	TransferredTo string
	// Ended says the conversation is over: hung up (HangupReason), transferred, or closed
	// by the caller.
	Ended        bool
	HungUp       bool
	HangupReason string
}

// TextLine is one line of a text conversation.
type TextLine struct {
	// Role is "agent" or "caller".
	Role string
	Text string
}

// TextEvent is an event the brain published.
type TextEvent struct {
	Type string
	Data any
}

// NewTextConversation returns a text conversation waiting for its first input.
func NewTextConversation() *TextConversation {
	return &TextConversation{changed: make(chan struct{}), ended: make(chan struct{})}
}

var _ Conversation = (*TextConversation)(nil)

// notifyLocked wakes every waiter; c.mu is held.
func (c *TextConversation) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Send gives the brain the caller's next input. An InputTimeout input makes a Listen that
// waits for one return it at once.
func (c *TextConversation) Send(in Input) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.Start.IsZero() {
		in.Start = time.Now()
	}
	if in.End.IsZero() {
		in.End = in.Start
	}
	c.inputs = append(c.inputs, in)
	c.notifyLocked()
}

// SendText sends an utterance.
func (c *TextConversation) SendText(text string) { c.Send(Input{Kind: InputSpeech, Text: text}) }

// SendDigits sends keys pressed.
func (c *TextConversation) SendDigits(digits string) {
	c.Send(Input{Kind: InputDTMF, Digits: digits})
}

// SendRecording queues what the next Record returns.
func (c *TextConversation) SendRecording(rec Recording) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recordings = append(c.recordings, rec)
}

// InterruptNext makes the next Say or Speak stop after words words (once at least that
// many were said), as if the caller had spoken over it; in becomes the caller's next input.
func (c *TextConversation) InterruptNext(words int, in Input) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.interrupt = &textInterrupt{words: words, in: in}
}

// Close is the caller leaving: every method returns ErrHangup from then on.
func (c *TextConversation) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked()
}

func (c *TextConversation) endLocked() {
	c.t.Ended = true
	c.endOnce.Do(func() { close(c.ended) })
	c.notifyLocked()
}

// Done is closed when the conversation ends.
func (c *TextConversation) Done() <-chan struct{} { return c.ended }

// Transcript is a copy of what happened so far.
func (c *TextConversation) Transcript() TextTranscript {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked()
}

func (c *TextConversation) snapshotLocked() TextTranscript {
	t := c.t
	t.Said = append([]string(nil), c.t.Said...)
	t.Lines = append([]TextLine(nil), c.t.Lines...)
	t.ToolCalls = append([]ToolRecord(nil), c.t.ToolCalls...)
	t.Knowledge = append([]Retrieval(nil), c.t.Knowledge...)
	t.Events = append([]TextEvent(nil), c.t.Events...)
	return t
}

// Wait returns the transcript once cond holds for it, or ctx's error.
func (c *TextConversation) Wait(ctx context.Context, cond func(TextTranscript) bool) (TextTranscript, error) {
	for {
		c.mu.Lock()
		t, ch := c.snapshotLocked(), c.changed
		c.mu.Unlock()
		if cond(t) {
			return t, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return t, ctx.Err()
		}
	}
}

// check returns ErrHangup once the conversation ended, or ctx's error.
func (c *TextConversation) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.ended:
		return ErrHangup
	default:
		return nil
	}
}

// said records what was heard and arms the interruption's input.
func (c *TextConversation) said(text string, in *Input) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Said = append(c.t.Said, text)
	if text != "" {
		c.t.Lines = append(c.t.Lines, TextLine{Role: "agent", Text: text})
	}
	if in != nil {
		c.inputs = append([]Input{*in}, c.inputs...)
	}
	c.notifyLocked()
}

// takeInterrupt takes the armed interruption, if any.
func (c *TextConversation) takeInterrupt() *textInterrupt {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.interrupt
	c.interrupt = nil
	return i
}

// firstWords is the text of s up to the end of its n-th word, and whether s has more.
func firstWords(s string, n int) (string, bool) {
	count, inWord := 0, false
	for i, r := range s {
		space := r == ' ' || r == '\n' || r == '\t'
		if !space && !inWord {
			if count == n {
				return strings.TrimRight(s[:i], " \n\t"), true
			}
			count++
		}
		inWord = !space
	}
	return s, false
}

func (c *TextConversation) Say(ctx context.Context, text string) (Spoken, error) {
	if err := c.check(ctx); err != nil {
		return Spoken{}, err
	}
	if i := c.takeInterrupt(); i != nil {
		if cut, more := firstWords(text, i.words); more {
			c.said(cut, &i.in)
			return Spoken{Text: cut, Interrupted: true}, nil
		}
		c.mu.Lock()
		c.interrupt = i // too short to interrupt: keep it for the next
		c.mu.Unlock()
	}
	c.said(text, nil)
	return Spoken{Text: text}, nil
}

func (c *TextConversation) Speak(ctx context.Context, text <-chan string) (Spoken, error) {
	intr := c.takeInterrupt()
	var b strings.Builder
	for {
		select {
		case d, ok := <-text:
			if !ok {
				if intr != nil {
					c.mu.Lock()
					c.interrupt = intr
					c.mu.Unlock()
				}
				if b.Len() == 0 {
					return Spoken{}, c.check(ctx)
				}
				c.said(b.String(), nil)
				return Spoken{Text: b.String()}, nil
			}
			b.WriteString(d)
			if intr != nil {
				if cut, more := firstWords(b.String(), intr.words); more {
					go drain(text)
					c.said(cut, &intr.in)
					return Spoken{Text: cut, Interrupted: true}, nil
				}
			}
		case <-ctx.Done():
			go drain(text)
			return Spoken{}, ctx.Err()
		case <-c.ended:
			go drain(text)
			return Spoken{}, ErrHangup
		}
	}
}

// drain reads text to its end, as a voice loop drops the rest of an interrupted answer.
func drain(text <-chan string) {
	for range text {
	}
}

func (c *TextConversation) Listen(ctx context.Context, opts ListenOptions) (Input, error) {
	var timeout <-chan time.Time
	if opts.Timeout > 0 {
		tm := time.NewTimer(opts.Timeout)
		defer tm.Stop()
		timeout = tm.C
	}
	speech, dtmf := opts.Speech, opts.DTMF
	if !speech && !dtmf {
		speech, dtmf = true, true
	}
	for {
		if err := c.check(ctx); err != nil {
			return Input{}, err
		}
		c.mu.Lock()
		for len(c.inputs) > 0 {
			in := c.inputs[0]
			c.inputs = c.inputs[1:]
			switch {
			case in.Kind == InputTimeout:
			case in.Kind == InputSpeech && speech:
				c.t.Lines = append(c.t.Lines, TextLine{Role: "caller", Text: in.Text})
			case in.Kind == InputDTMF && dtmf:
				in.Digits = cutDigits(in.Digits, opts)
				c.t.Lines = append(c.t.Lines, TextLine{Role: "caller", Text: "[" + in.Digits + "]"})
			default:
				continue // not what is waited for: dropped
			}
			c.notifyLocked()
			c.mu.Unlock()
			return in, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			now := time.Now()
			return Input{Kind: InputTimeout, Start: now, End: now}, nil
		case <-ctx.Done():
		case <-c.ended:
		}
	}
}

// cutDigits applies a listen's terminator and digit count to keys sent at once.
func cutDigits(d string, opts ListenOptions) string {
	term := opts.Terminator
	if term == 0 && opts.MaxDigits != 1 {
		term = '#'
	}
	if i := strings.IndexRune(d, term); i >= 0 {
		d = d[:i]
	}
	if opts.MaxDigits > 0 && len(d) > opts.MaxDigits {
		d = d[:opts.MaxDigits]
	}
	return d
}

func (c *TextConversation) Record(ctx context.Context, opts RecordOptions) (Recording, error) {
	if err := c.check(ctx); err != nil {
		return Recording{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Recordings++
	if opts.Beep {
		c.t.Beeps++
	}
	var rec Recording
	if len(c.recordings) > 0 {
		rec = c.recordings[0]
		c.recordings = c.recordings[1:]
	}
	c.notifyLocked()
	return rec, nil
}

func (c *TextConversation) Hangup(reason string) {
	if reason == "" {
		reason = "agent-hangup"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.Ended {
		return
	}
	c.t.HungUp, c.t.HangupReason = true, reason
	c.endLocked()
}

func (c *TextConversation) Transfer(ctx context.Context, to string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.TransferError != nil {
		return c.TransferError
	}
	c.t.TransferredTo = to
	c.endLocked()
	return nil
}

func (c *TextConversation) SendDTMF(digits string) error {
	if err := c.check(context.Background()); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.DTMF += digits
	c.notifyLocked()
	return nil
}

func (c *TextConversation) ToolCall(call ToolRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.ToolCalls = append(c.t.ToolCalls, call)
	c.notifyLocked()
}

// Retrieved implements KnowledgeObserver.
func (c *TextConversation) Retrieved(r Retrieval) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Knowledge = append(c.t.Knowledge, r)
	c.notifyLocked()
}

var _ KnowledgeObserver = (*TextConversation)(nil)

func (c *TextConversation) Usage(u llm.Usage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Usage.InputTokens += u.InputTokens
	c.t.Usage.OutputTokens += u.OutputTokens
	c.notifyLocked()
}

func (c *TextConversation) Event(typ string, data any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Events = append(c.t.Events, TextEvent{Type: typ, Data: data})
	c.notifyLocked()
}
