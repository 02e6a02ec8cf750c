package voice

import (
	"strings"
	"unicode"
)

// What the words of a transcript say about turn taking, and how an answer is cut into
// sentences for synthesis.

// endsSentence says a transcript reads as finished: it ends with . ? or !.
func endsSentence(text string) bool {
	t := strings.TrimRightFunc(text, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\'' || r == ')' })
	if t == "" {
		return false
	}
	switch t[len(t)-1] {
	case '.', '?', '!':
		// "four one five." is a caller pausing in a number, not a finished sentence.
		return !endsInDigits(t)
	}
	return false
}

var numberWords = map[string]bool{
	"zero": true, "oh": true, "one": true, "two": true, "three": true, "four": true,
	"five": true, "six": true, "seven": true, "eight": true, "nine": true, "ten": true,
	"eleven": true, "twelve": true, "thirteen": true, "fourteen": true, "fifteen": true,
	"sixteen": true, "seventeen": true, "eighteen": true, "nineteen": true, "twenty": true,
	"thirty": true, "forty": true, "fifty": true, "sixty": true, "seventy": true,
	"eighty": true, "ninety": true, "hundred": true, "thousand": true, "double": true,
	"triple": true, "dash": true, "hash": true, "star": true, "pound": true,
}

// endsInDigits says a transcript ends while the caller reads out a number: it ends in a
// run of digits (two or more) or in two number words ("four one", not "a table for two").
func endsInDigits(text string) bool {
	words := strings.FieldsFunc(text, func(r rune) bool {
		return unicode.IsSpace(r) || r == ',' || r == '.' || r == '-' || r == '?' || r == '!'
	})
	count := 0
	for i := len(words) - 1; i >= 0 && count < 2; i-- {
		w := strings.ToLower(words[i])
		if numberWords[w] {
			count++
			continue
		}
		digits := 0
		for _, r := range w {
			if unicode.IsDigit(r) {
				digits++
			} else if r != '+' && r != '(' && r != ')' {
				digits = -1
				break
			}
		}
		if digits <= 0 {
			break
		}
		count += digits
	}
	return count >= 2
}

var backchannels = map[string]bool{
	"uh-huh": true, "uh huh": true, "uhhuh": true, "mhm": true, "mm-hmm": true, "mm hmm": true,
	"mmhmm": true, "mm": true, "hmm": true, "okay": true, "ok": true, "yeah": true, "yep": true,
	"yes": true, "right": true, "sure": true, "i see": true, "got it": true, "alright": true,
	"all right": true, "uh": true, "um": true, "aha": true, "ah": true, "oh": true,
}

// isBackchannel says a transcript is only listening noises ("uh-huh", "okay", "right"),
// possibly repeated: heard over the agent, it is no request to stop.
func isBackchannel(text string) bool {
	t := strings.ToLower(strings.TrimSpace(text))
	t = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsLetter(r), r == '-':
			return r
		case unicode.IsSpace(r):
			return ' '
		}
		return ' '
	}, t)
	t = strings.Join(strings.Fields(t), " ")
	if t == "" {
		return false
	}
	if backchannels[t] {
		return true
	}
	// "okay okay", "yeah right", "uh-huh yeah": every word a backchannel, at most three.
	words := strings.Fields(t)
	if len(words) > 3 {
		return false
	}
	for _, w := range words {
		if !backchannels[w] {
			return false
		}
	}
	return true
}

// sentenceSplitter cuts streamed text into sentences: at . ? ! ; or a newline followed by
// a space, unless the word is a known abbreviation; a run with no end that grows long is
// cut at a comma or a space, so synthesis never waits for a whole paragraph.
type sentenceSplitter struct {
	buf strings.Builder
}

const (
	sentenceMin  = 12  // characters: "Yes. I can." is one piece, not two tiny ones
	sentenceLong = 160 // characters: past this a sentence is cut at a comma
)

var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "st": true, "vs": true, "etc": true,
	"e.g": true, "i.e": true, "no": true, "jr": true, "sr": true, "prof": true, "approx": true,
}

// push adds text and returns the sentences it completed.
func (s *sentenceSplitter) push(text string) []string {
	s.buf.WriteString(text)
	var out []string
	for {
		cur := s.buf.String()
		cut := findCut(cur)
		if cut < 0 {
			break
		}
		if sentence := strings.TrimSpace(cur[:cut]); sentence != "" {
			out = append(out, sentence)
		}
		rest := cur[cut:]
		s.buf.Reset()
		s.buf.WriteString(rest)
	}
	return out
}

// flush returns what is left.
func (s *sentenceSplitter) flush() string {
	t := strings.TrimSpace(s.buf.String())
	s.buf.Reset()
	return t
}

// findCut returns the index just after a sentence end in text, or -1.
func findCut(text string) int {
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch c {
		case '.', '?', '!', ';', '\n':
		default:
			continue
		}
		if c != '\n' && (i+1 >= len(text) || !unicode.IsSpace(rune(text[i+1]))) {
			continue // "3.5", "example.com", or the end of what came so far
		}
		if i+1 < sentenceMin && c != '\n' {
			continue
		}
		if c == '.' && isAbbreviation(text[:i]) {
			continue
		}
		return i + 1
	}
	if len(text) > sentenceLong {
		if i := strings.LastIndex(text[:sentenceLong], ", "); i > sentenceMin {
			return i + 1
		}
		if i := strings.LastIndex(text[:sentenceLong], " "); i > sentenceMin {
			return i + 1
		}
	}
	return -1
}

func isAbbreviation(before string) bool {
	i := strings.LastIndexFunc(before, func(r rune) bool { return unicode.IsSpace(r) })
	w := strings.ToLower(before[i+1:])
	return abbreviations[w] || (len(w) == 1 && unicode.IsUpper(rune(before[len(before)-1])))
}

// wordsPrefix returns the first fraction of text's words (fraction in [0, 1]).
func wordsPrefix(text string, fraction float64) string {
	words := strings.Fields(text)
	n := int(float64(len(words)) * fraction)
	n = max(0, min(n, len(words)))
	return strings.Join(words[:n], " ")
}

// trailingWords are words a caller pauses after without having finished: "I'd like to
// book a table and…".
var trailingWords = map[string]bool{
	"and": true, "or": true, "but": true, "so": true, "because": true, "then": true,
	"um": true, "uh": true, "er": true, "the": true, "a": true, "to": true, "with": true,
}

// endsInConjunction says text trails off in a word that leaves the sentence open.
func endsInConjunction(text string) bool {
	words := strings.FieldsFunc(text, func(r rune) bool {
		return unicode.IsSpace(r) || r == ',' || r == '-' || r == '…'
	})
	if len(words) == 0 {
		return false
	}
	w := strings.ToLower(strings.TrimRight(words[len(words)-1], "."))
	return trailingWords[w] && !strings.HasSuffix(text, "?") && !strings.HasSuffix(text, "!")
}
