package speech

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchboard-go/switchboard/media"
)

// EspeakOptions configures the espeak-ng voice. The zero value is usable.
type EspeakOptions struct {
	// SampleRate is the rate of the audio handed out. libespeak-ng speaks at 22,050 Hz and
	// the audio is resampled here; 0 means 16,000 (wideband, what the agent's media path
	// works in), 22050 means as made.
	SampleRate int
	// Voice is the voice of an empty voice name: "en-us" when empty.
	Voice string
	// DataPath is the directory holding espeak-ng-data (or that directory itself); empty is
	// the library's default: $ESPEAK_DATA_PATH, then where Debian installs it
	// (/usr/lib/x86_64-linux-gnu/espeak-ng-data). The library is started once per process,
	// so every Espeak shares the first path.
	DataPath string
	// CacheBytes bounds the phrase cache; 0 is DefaultEspeakCache, negative disables it.
	CacheBytes int
}

// DefaultEspeakCache is the phrase cache's default bound: about 17 minutes of 16 kHz
// speech, the greetings and prompts of many agents.
const DefaultEspeakCache = 32 << 20

// EspeakDefaultVoice is the voice of an empty voice name.
const EspeakDefaultVoice = "en-us"

// espeakWPM is espeak's speaking rate at speed 1; its range is 80 to 450 words a minute.
const (
	espeakWPM    = 175
	espeakMinWPM = 80
	espeakMaxWPM = 450
)

// Espeak is the offline voice: libespeak-ng through cgo. Synthesis is serialised, because
// the library is not thread-safe, and each phrase (text, voice, speed) is spoken once:
// later requests, and requests made while it is being spoken, share its audio from memory.
// Safe for concurrent use.
type Espeak struct {
	rate     int
	voice    string
	maxBytes int

	mu     sync.Mutex
	lru    *list.List // of *cacheEntry, most recent first
	cached map[phraseKey]*list.Element
	flight map[phraseKey]*clip
	bytes  int

	syntheses atomic.Int64
	hits      atomic.Int64
}

type phraseKey struct {
	text, voice string
	wpm         int
}

type cacheEntry struct {
	key  phraseKey
	c    *clip
	size int // bytes counted against the bound
}

// EspeakStats counts what an Espeak has done.
type EspeakStats struct {
	// Syntheses are the calls into libespeak-ng.
	Syntheses int64
	// CacheHits are the requests served from the phrase cache or by a synthesis already
	// under way.
	CacheHits    int64
	CachedBytes  int
	CachedPhrase int
}

// NewEspeak starts libespeak-ng (once per process) and returns a voice over it. It fails
// with ErrEspeakInit when the library cannot find or load its data.
func NewEspeak(opts EspeakOptions) (*Espeak, error) {
	if err := initLib(opts.DataPath); err != nil {
		return nil, err
	}
	e := &Espeak{
		rate:     opts.SampleRate,
		voice:    opts.Voice,
		maxBytes: opts.CacheBytes,
		lru:      list.New(),
		cached:   map[phraseKey]*list.Element{},
		flight:   map[phraseKey]*clip{},
	}
	if e.rate == 0 {
		e.rate = 16000
	}
	if e.voice == "" {
		e.voice = EspeakDefaultVoice
	}
	if e.maxBytes == 0 {
		e.maxBytes = DefaultEspeakCache
	}
	if _, err := media.NewResampler(libRate, e.rate); err != nil {
		return nil, err
	}
	return e, nil
}

// DataPath is the espeak-ng-data directory the library uses, for the start-up log.
func (e *Espeak) DataPath() string { return libPath }

// SampleRate is the rate of the audio this voice hands out.
func (e *Espeak) SampleRate() int { return e.rate }

// Stats reports the syntheses and cache use so far.
func (e *Espeak) Stats() EspeakStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return EspeakStats{Syntheses: e.syntheses.Load(), CacheHits: e.hits.Load(), CachedBytes: e.bytes, CachedPhrase: e.lru.Len()}
}

// WPM is espeak's words a minute for a speed (1 is normal, 0 means 1).
func WPM(speed float64) int {
	if speed <= 0 || math.IsNaN(speed) {
		speed = 1
	}
	return int(math.Round(min(max(espeakWPM*speed, espeakMinWPM), espeakMaxWPM)))
}

// Synthesize speaks text. voice is an espeak-ng voice name ("en-us", "en-gb", "fr",
// "en-us+f3"), empty for the default. The audio streams from the first 50 ms chunk; an
// unknown voice is reported by the Audio's Read. ctx bounds the reads. The synthesis runs
// on for the cache while anyone holds an open Audio of the phrase; once all are closed it
// stops at the end of the sentence being spoken.
func (e *Espeak) Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	text = strings.TrimSpace(text)
	if voice == "" {
		voice = e.voice
	}
	if text == "" {
		return &clipReader{c: doneClip(nil), rate: e.rate, ctx: ctx}, nil
	}
	k := phraseKey{text: text, voice: voice, wpm: WPM(speed)}

	e.mu.Lock()
	if el, ok := e.cached[k]; ok {
		e.lru.MoveToFront(el)
		c := el.Value.(*cacheEntry).c
		e.mu.Unlock()
		e.hits.Add(1)
		return &clipReader{c: c, rate: e.rate, ctx: ctx}, nil
	}
	c, ok := e.flight[k]
	if ok {
		e.hits.Add(1)
	} else {
		// espeak says about 14 characters a second at 175 words a minute; room for up to
		// 30 s is made at once, the rest as it comes.
		c = newClip(min(len(text)*e.rate/14*espeakWPM/k.wpm, 30*e.rate))
		e.flight[k] = c
	}
	c.readers++
	e.mu.Unlock()
	if !ok {
		go e.synthesize(k, c)
	}
	r := &clipReader{c: c, rate: e.rate, ctx: ctx}
	r.release = func() {
		e.mu.Lock()
		c.readers--
		e.mu.Unlock()
	}
	return r, nil
}

// synthesize speaks one phrase into c. It takes the library a sentence at a time, so
// that a long text does not keep every other call waiting, and gives up between
// sentences when no one is listening any more (a barge-in).
func (e *Espeak) synthesize(k phraseKey, c *clip) {
	rs, err := newStreamResampler(libRate, e.rate)
	chunks := 0
	emit := func(s []int16) bool {
		c.append(rs.push(s))
		if chunks++; chunkHook != nil {
			chunkHook(chunks)
		}
		return true
	}
	parts := sentences(k.text)
	for i := 0; err == nil && i < len(parts); i++ {
		libLock <- struct{}{}
		e.mu.Lock()
		gone := c.readers == 0
		if gone {
			// Under the same lock as the count, so that a later request starts afresh.
			delete(e.flight, k)
		}
		e.mu.Unlock()
		if gone {
			<-libLock
			err = ErrClosed
			break
		}
		e.syntheses.Add(1)
		err = libSynthesize(parts[i], k.voice, k.wpm, i < len(parts)-1, emit)
		<-libLock
	}
	if err == nil {
		c.append(rs.flush())
	}
	// The phrase moves from the flights to the cache before it is marked done, so that no
	// request in between starts it again or joins a clip that is neither.
	e.settle(k, c, err)
	c.finish(err)
}

func (e *Espeak) settle(k phraseKey, c *clip, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flight[k] == c {
		delete(e.flight, k)
	}
	size := 2*len(c.samples) + 128 // only this goroutine writes c.samples
	if err != nil || e.maxBytes < 0 || size > e.maxBytes/8 {
		// A failed or abandoned phrase is not kept; a reader that joined it sees its error
		// and can ask again.
		return
	}
	e.cached[k] = e.lru.PushFront(&cacheEntry{key: k, c: c, size: size})
	e.bytes += size
	for e.bytes > e.maxBytes {
		el := e.lru.Back()
		ent := el.Value.(*cacheEntry)
		e.lru.Remove(el)
		delete(e.cached, ent.key)
		e.bytes -= ent.size
	}
}

// maxSentence is the longest piece of text given to the library at once, in bytes: about
// ten seconds of speech, a few tens of milliseconds of the lock.
const maxSentence = 200

// sentences splits text where espeak would pause anyway: after . ! ? ; : and newlines
// followed by a space, then at commas and spaces for a piece still longer than
// maxSentence. Short pieces are kept together so that espeak's intonation spans them.
func sentences(text string) []string {
	var out []string
	start := 0
	flush := func(end int) {
		if p := strings.TrimSpace(text[start:end]); p != "" {
			out = append(out, p)
		}
		start = end
	}
	for i := 0; i < len(text); i++ {
		ch := text[i]
		atBreak := (ch == '.' || ch == '!' || ch == '?' || ch == ';' || ch == ':') &&
			(i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n')
		if ch == '\n' || (atBreak && i+1-start >= 40) {
			flush(i + 1)
			continue
		}
		if i-start >= maxSentence {
			// No sentence end in sight: break at the last comma, else the last space.
			cut := strings.LastIndexByte(text[start:i], ',')
			if cut < maxSentence/2 {
				cut = strings.LastIndexByte(text[start:i], ' ')
			}
			if cut > 0 {
				flush(start + cut + 1)
			} else {
				flush(i)
			}
		}
	}
	flush(len(text))
	return out
}

// chunkHook, when a test sets it, runs after each chunk is handed out, under the
// library's lock.
var chunkHook func(chunk int)

// String names the voice for logs.
func (e *Espeak) String() string { return fmt.Sprintf("espeak-ng (%d Hz, data %s)", e.rate, libPath) }
