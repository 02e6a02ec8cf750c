package voice

import (
	"reflect"
	"testing"
)

func TestTurnTextRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		text                       string
		sentence, digits, backchan bool
	}{
		{"What time do you open tomorrow?", true, false, false},
		{"I would like to book a table", false, false, false},
		{"A table for two.", true, false, false},
		{"My number is four one five", false, true, false},
		{"My number is four one five.", false, true, false},
		{"It's 415 239", false, true, false},
		{"call me at 4", false, false, false},
		{"Uh-huh.", true, false, true},
		{"okay okay", false, false, true},
		{"Mhm", false, false, true},
		{"yeah, right", false, false, true},
		{"Okay, but what about Tuesday?", true, false, false},
		{"", false, false, false},
	}
	for _, tc := range cases {
		if got := endsSentence(tc.text); got != tc.sentence {
			t.Errorf("endsSentence(%q) = %v", tc.text, got)
		}
		if got := endsInDigits(tc.text); got != tc.digits {
			t.Errorf("endsInDigits(%q) = %v", tc.text, got)
		}
		if got := isBackchannel(tc.text); got != tc.backchan {
			t.Errorf("isBackchannel(%q) = %v", tc.text, got)
		}
	}
}

func TestSentenceSplitter(t *testing.T) {
	t.Parallel()
	var s sentenceSplitter
	var got []string
	for _, d := range []string{"Sure", ". Dr. Smith can see you at 3.30 on Tuesday", ". Shall I ", "book it? Yes", "!"} {
		got = append(got, s.push(d)...)
	}
	if rest := s.flush(); rest != "" {
		got = append(got, rest)
	}
	want := []string{"Sure. Dr. Smith can see you at 3.30 on Tuesday.", "Shall I book it?", "Yes!"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sentences %q, want %q", got, want)
	}
	long := "This sentence goes on and on, with many clauses, and it never seems to end, because the model that wrote it likes commas more than full stops, and so on and so on"
	if cut := findCut(long); cut <= 0 || cut > sentenceLong {
		t.Errorf("a long run is cut at %d", cut)
	}
}

func TestWordsPrefix(t *testing.T) {
	t.Parallel()
	if got := wordsPrefix("one two three four", 0.5); got != "one two" {
		t.Errorf("half: %q", got)
	}
	if got := wordsPrefix("one two three four", 0.99); got != "one two three" {
		t.Errorf("most: %q", got)
	}
}
