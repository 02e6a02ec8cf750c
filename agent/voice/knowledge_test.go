package voice

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/media"
)

// A search of the agent's knowledge made for the caller's turn is in the call's transcript
// (what it found, how long it took), and its time is in the latency of the answer the caller
// waited for: knowledge_ms, within brain_first_token_ms.
func TestKnowledgeInTranscriptAndLatency(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.says("When do you open")
	const searched = 60 * time.Millisecond
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		in, err := c.Listen(ctx, agent.ListenOptions{})
		if err != nil {
			return err
		}
		began := time.Now()
		time.Sleep(searched) // the search the brain waits on
		took := time.Since(began)
		c.(agent.KnowledgeObserver).Retrieved(agent.Retrieval{Source: agent.RetrievalAuto, Query: in.Text, Duration: took,
			DurationMS: float64(took) / float64(time.Millisecond),
			Hits:       []agent.RetrievedChunk{{DocumentName: "faq.md", ChunkID: "chk_hours", Score: 2.5}}})
		if _, err := c.Say(ctx, "We open at nine."); err != nil {
			return err
		}
		c.Hangup("done")
		return nil
	})
	wait := r.run(testCtx(t, 60*time.Second), brain)
	r.caller.say(fixture(t, "hello"))
	res := wait()
	var kn, answer *Turn
	for i := range res.Transcript {
		switch tr := &res.Transcript[i]; tr.Role {
		case "knowledge":
			kn = tr
		case "assistant":
			answer = tr
		}
	}
	if kn == nil || kn.Knowledge == nil || kn.Text != "When do you open" || kn.Knowledge.Hits[0].ChunkID != "chk_hours" || kn.Knowledge.DurationMS < float64(searched/time.Millisecond) {
		t.Fatalf("knowledge turn %+v in %+v", kn, res.Transcript)
	}
	if answer == nil || answer.Metrics == nil {
		t.Fatalf("no answer with metrics in %+v", res.Transcript)
	}
	m := answer.Metrics
	if m.KnowledgeMS != kn.Knowledge.DurationMS || m.BrainFirstTokenMS < m.KnowledgeMS {
		t.Errorf("metrics %+v, search took %.1f ms", *m, kn.Knowledge.DurationMS)
	}
}
