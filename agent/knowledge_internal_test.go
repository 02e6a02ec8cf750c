package agent

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// What the model is given of the knowledge stays within the agent's bound, however long the
// chunks: the best is cut to fit, the rest left out, and the text stays valid UTF-8.
func TestKnowledgeBlockIsBounded(t *testing.T) {
	long := strings.Repeat("Öffnungszeiten sind von neun bis fünf. ", 200)
	hits := []knowledge.Hit{
		{DocumentName: "zeiten.md", HeadingPath: []string{"Büro"}, Text: long},
		{DocumentName: "faq.md", Text: "short"},
	}
	for _, max := range []int{200, 500, 2000} {
		b := knowledgeBlock(hits, max)
		if len(b) > max || !utf8.ValidString(b) || !strings.HasPrefix(b, "[1] zeiten.md › Büro\n") || !strings.HasSuffix(b, "…") {
			t.Errorf("max %d: %d bytes, valid %v: %.80q…", max, len(b), utf8.ValidString(b), b)
		}
	}
	short := []knowledge.Hit{{DocumentName: "a.md", Text: "one"}, {DocumentName: "b.md", Text: "two", Page: 3}}
	if got, want := knowledgeBlock(short, 2000), "[1] a.md\none\n\n[2] b.md (page 3)\ntwo"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := toolResult(nil, 2000); !strings.Contains(got, "Nothing") {
		t.Errorf("no hits: %q", got)
	}
}

// A workflow node reads out a chunk without Markdown's marks, ending on a sentence within
// the spoken bound.
func TestSpokenChunk(t *testing.T) {
	if got := spokenChunk("## Hours\n\n**We open** at `nine`."); got != "Hours We open at nine." {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("We open at nine. ", 100)
	got := spokenChunk(long)
	if len(got) > maxSpokenChunk || !strings.HasSuffix(got, "nine.") {
		t.Errorf("%d bytes: %q", len(got), got)
	}
}

// A long turn (a page pasted into a session) is searched by its beginning, within the bound
// the knowledge service takes, rather than failing the search.
func TestKnowledgeQueryIsBounded(t *testing.T) {
	var got string
	k := newKnowledgeUse(searchFunc(func(q string) { got = q }), "ten", []string{"kb"}, store.KnowledgeSettings{}, 0)
	c := NewTextConversation()
	if _, err := k.search(context.Background(), c, RetrievalAuto, "", strings.Repeat("opening hours ", 500), nil); err != nil {
		t.Fatal(err)
	}
	if len(got) > maxQuery || !strings.HasPrefix(got, "opening hours opening") || !utf8.ValidString(got) {
		t.Fatalf("searched %d bytes: %.40q", len(got), got)
	}
	if tr := c.Transcript(); len(tr.Knowledge) != 1 || tr.Knowledge[0].Query != got {
		t.Fatalf("retrievals %+v", tr.Knowledge)
	}
}

type searchFunc func(query string)

func (f searchFunc) Search(_ context.Context, _ string, _ []string, query string, _ int) ([]knowledge.Hit, error) {
	f(query)
	return nil, nil
}
