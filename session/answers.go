package session

import "sync"

// answerShards is how many locks the answers being made are spread over. Every message
// claims its session's entry and releases it; with one lock for the node, 64 answers at once
// on two cores queued on it whenever its holder was preempted (the mutex profile of
// BenchmarkSessionMessages put most of the run's lock waiting there).
const answerShards = 64

// answerTable is the answers being made on this node, by session ID, at most one a session.
type answerTable struct {
	shards [answerShards]answerShard
}

type answerShard struct {
	mu sync.Mutex
	m  map[string]*answer
}

func (t *answerTable) shard(sessionID string) *answerShard {
	return &t.shards[shardOf(sessionID)]
}

// shardOf is the shard of a session ID, by FNV-1a: session IDs end in random characters, so
// any good mix spreads them.
func shardOf(sessionID string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(sessionID); i++ {
		h ^= uint32(sessionID[i])
		h *= 16777619
	}
	return h % answerShards
}

// get returns the session's answer, or nil.
func (t *answerTable) get(sessionID string) *answer {
	s := t.shard(sessionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[sessionID]
}

// claim makes a its session's answer and reports true, unless the session has one.
func (t *answerTable) claim(a *answer) bool {
	s := t.shard(a.sessionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[a.sessionID] != nil {
		return false
	}
	if s.m == nil {
		s.m = map[string]*answer{}
	}
	s.m[a.sessionID] = a
	return true
}

// remove drops a, if it is still its session's answer.
func (t *answerTable) remove(a *answer) {
	s := t.shard(a.sessionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[a.sessionID] == a {
		delete(s.m, a.sessionID)
	}
}

// each calls f with every answer being made (under its shard's lock: f must not block).
func (t *answerTable) each(f func(*answer)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, a := range s.m {
			f(a)
		}
		s.mu.Unlock()
	}
}
