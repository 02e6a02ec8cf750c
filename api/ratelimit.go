package api

import (
	"hash/maphash"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RateLimiter counts requests per key in fixed one-minute windows, as the canonical surface
// describes its limits: a limit a minute, what remains of it, and when the window resets.
// It counts on this node.
type RateLimiter struct {
	seed   maphash.Seed
	shards [64]limiterShard
	now    func() time.Time
}

type limiterShard struct {
	mu      sync.Mutex
	windows windowSet
}

// windowSet holds one counting window per key.
type windowSet map[string]*window

// at returns key's window of minute, started afresh when the minute changed; when the set
// grows large it forgets the windows of past minutes.
func (ws windowSet) at(key string, minute int64) *window {
	w := ws[key]
	if w == nil {
		if len(ws) > 50_000 {
			for k, old := range ws {
				if old.start < minute {
					delete(ws, k)
				}
			}
		}
		w = &window{start: minute}
		ws[key] = w
	}
	if w.start != minute {
		w.start, w.count = minute, 0
	}
	return w
}

type window struct {
	start int64 // unix minute
	count int
}

// NewRateLimiter returns an empty limiter.
func NewRateLimiter() *RateLimiter {
	l := &RateLimiter{seed: maphash.MakeSeed(), now: time.Now}
	for i := range l.shards {
		l.shards[i].windows = windowSet{}
	}
	return l
}

// Allow counts one request of key against limit a minute and reports whether it may go on,
// how many remain, and when the window resets.
func (l *RateLimiter) Allow(key string, limit int) (ok bool, remaining int, reset time.Time) {
	now := l.now()
	minute := now.Unix() / 60
	reset = time.Unix((minute+1)*60, 0)
	sh := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	sh.mu.Lock()
	w := sh.windows.at(key, minute)
	if w.count >= limit {
		sh.mu.Unlock()
		return false, 0, reset
	}
	w.count++
	remaining = limit - w.count
	sh.mu.Unlock()
	return true, remaining, reset
}

// Exceeded reports, without counting, whether key has used up its limit this minute, and
// when the window resets.
func (l *RateLimiter) Exceeded(key string, limit int) (bool, time.Time) {
	now := l.now()
	minute := now.Unix() / 60
	reset := time.Unix((minute+1)*60, 0)
	sh := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w := sh.windows[key]
	return w != nil && w.start == minute && w.count >= limit, reset
}

// authFailures is the limiter bucket of the failed authentications of a client address.
func authFailures(ip string) string { return "auth-failures:" + ip }

// guardAuth refuses, before any database lookup, a credential that is not already known
// good from an address that has failed to authenticate limit times this minute.
func (l *RateLimiter) guardAuth(ip string, limit int) *Error {
	over, reset := l.Exceeded(authFailures(ip), limit)
	if !over {
		return nil
	}
	retry := max(int(time.Until(reset).Seconds())+1, 1)
	return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimit, RetryAfter: retry,
		Message: "Too many failed authentications from this address (limit " + strconv.Itoa(limit) + " a minute); retry after " + strconv.Itoa(retry) + " s"}
}

// limit applies the limiter to a request and writes the X-RateLimit headers; on refusal it
// returns the 429 to answer with.
func (l *RateLimiter) limit(w http.ResponseWriter, key string, limit int) *Error {
	ok, remaining, reset := l.Allow(key, limit)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if ok {
		return nil
	}
	retry := int(time.Until(reset).Seconds()) + 1
	if retry < 1 {
		retry = 1
	}
	h.Set("Retry-After", strconv.Itoa(retry))
	return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimit,
		Message: "Rate limit of " + strconv.Itoa(limit) + " requests a minute exceeded; retry after " + strconv.Itoa(retry) + " s"}
}

// tokenCounter counts the tokens of each key in fixed one-minute windows, for the per-key
// token limits of the model gateway. Tokens are known only once an answer is out, so a
// limit is checked before a request and counted after it.
type tokenCounter struct {
	mu      sync.Mutex
	windows windowSet
	now     func() time.Time
}

func newTokenCounter() *tokenCounter {
	return &tokenCounter{windows: windowSet{}, now: time.Now}
}

func (t *tokenCounter) add(key string, n int) {
	minute := t.now().Unix() / 60
	t.mu.Lock()
	t.windows.at(key, minute).count += n
	t.mu.Unlock()
}

// used returns the tokens of key this minute and when the window resets.
func (t *tokenCounter) used(key string) (int, time.Time) {
	minute := t.now().Unix() / 60
	reset := time.Unix((minute+1)*60, 0)
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.windows[key]; w != nil && w.start == minute {
		return w.count, reset
	}
	return 0, reset
}
