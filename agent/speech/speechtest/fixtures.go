package speechtest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/media"
)

// Caller speech for tests lives in testdata/speech: short phrases of phone menus and
// answers spoken by espeak-ng, as 8 kHz mono WAVs (16 kHz ones in testdata/speech/16k),
// listed with their text in transcripts.tsv.

// Fixture is one phrase of caller speech.
type Fixture struct {
	// Name is the file's name without ".wav": "opening_hours", "yes", "digits_1234".
	Name string
	// Text is what is said, lower case: "what are your opening hours".
	Text string
}

// SpeechDir is testdata/speech of the module.
func SpeechDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "speech")
}

// Fixtures lists the caller phrases, in the order of transcripts.tsv.
func Fixtures(t testing.TB) []Fixture {
	t.Helper()
	f, err := os.Open(filepath.Join(SpeechDir(), "transcripts.tsv"))
	if err != nil {
		t.Fatalf("speechtest: %v", err)
	}
	defer f.Close()
	var out []Fixture
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, text, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			out = append(out, Fixture{Name: name, Text: text})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("speechtest: transcripts.tsv: %v", err)
	}
	return out
}

// Load reads the phrase at rate, 8000 or 16000, as mono PCM16.
func (f Fixture) Load(t testing.TB, rate int) []int16 {
	t.Helper()
	pcm, err := LoadWAV(f.Name, rate)
	if err != nil {
		t.Fatalf("speechtest: %v", err)
	}
	return pcm
}

// LoadWAV reads testdata/speech/{name}.wav (rate 8000) or 16k/{name}.wav (16000).
func LoadWAV(name string, rate int) ([]int16, error) {
	path := filepath.Join(SpeechDir(), name+".wav")
	switch rate {
	case 8000:
	case 16000:
		path = filepath.Join(SpeechDir(), "16k", name+".wav")
	default:
		return nil, fmt.Errorf("caller speech is kept at 8000 and 16000 Hz, not %d", rate)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if w.Rate != rate || w.Channels != 1 {
		return nil, fmt.Errorf("%s: %d Hz, %d channels; want %d Hz mono", path, w.Rate, w.Channels, rate)
	}
	return w.Samples, nil
}
