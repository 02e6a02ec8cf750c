package amd

import "strings"

// machinePhrases are what voicemail greetings say and people answering a call do not.
var machinePhrases = []string{
	"leave a message", "leave your message", "leave me a message", "leave your name",
	"after the tone", "after the beep", "at the tone", "at the beep",
	"voicemail", "voice mail", "mailbox", "not available", "unavailable",
	"can't take your call", "cannot take your call", "can't come to the phone",
	"unable to take", "unable to answer", "you have reached", "you've reached",
	"get back to you", "return your call", "record your message",
}

// MachineWords reports whether a greeting's transcript is an answering machine's: it says
// one of the phrases voicemail greetings are made of ("leave a message", "after the tone",
// "you've reached", …). It is the second signal when the call's agent has a transcriber.
func MachineWords(text string) bool {
	t := strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(text, "’", "'")), " "))
	for _, p := range machinePhrases {
		if strings.Contains(t, p) {
			return true
		}
	}
	return false
}
