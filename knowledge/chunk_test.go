package knowledge

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkChunks holds every chunking to its contract: positions in order, no empty chunk, none
// longer than size, and (checked with overlap 0) every character of the document's text in
// the chunks, in order.
func checkChunks(t *testing.T, doc *Document, chunks []Chunk, size int) {
	t.Helper()
	size = max(size, MinChunkSize)
	for i, c := range chunks {
		if c.Position != i {
			t.Fatalf("chunk %d has position %d", i, c.Position)
		}
		if strings.TrimSpace(c.Text) == "" {
			t.Fatalf("chunk %d is empty", i)
		}
		if n := utf8.RuneCountInString(c.Text); n > size {
			t.Fatalf("chunk %d has %d characters, size %d: %q", i, n, size, c.Text)
		}
	}
	var want, got strings.Builder
	for _, b := range doc.Blocks {
		want.WriteString(strings.Join(strings.Fields(b.Text), ""))
	}
	for _, c := range ChunkDocument(doc, size, 0) {
		got.WriteString(strings.Join(strings.Fields(c.Text), ""))
	}
	if want.String() != got.String() {
		t.Fatalf("chunks without overlap do not hold the document's text:\n got %q\nwant %q", got.String(), want.String())
	}
}

func para(s string) Block { return Block{Kind: BlockParagraph, Text: s} }
func heading(level int, s string) Block {
	return Block{Kind: BlockHeading, Level: level, Text: s}
}

// sentences makes a paragraph of n numbered sentences of about 60 characters each.
func sentences(prefix string, n int) string {
	var s []string
	for i := range n {
		s = append(s, prefix+" sentence number "+string(rune('a'+i%26))+" says something worth finding.")
	}
	return strings.Join(s, " ")
}

func TestChunkFollowsSections(t *testing.T) {
	doc := &Document{Blocks: []Block{
		heading(1, "Opening hours"),
		para("Weekdays eight to six."),
		heading(2, "Holidays"),
		para("Closed on public holidays."),
		heading(2, "Weekends"),
		para("Saturday mornings only."),
		heading(1, "Refunds"),
		para("Five business days."),
	}}
	chunks := ChunkDocument(doc, 1000, 100)
	checkChunks(t, doc, chunks, 1000)
	// Two top-level sections: two chunks although both would fit in one; the small
	// subsections stay with their section.
	want := []Chunk{
		{Position: 0, HeadingPath: []string{"Opening hours"}, Text: "Opening hours\n\nWeekdays eight to six.\n\nHolidays\n\nClosed on public holidays.\n\nWeekends\n\nSaturday mornings only."},
		{Position: 1, HeadingPath: []string{"Refunds"}, Text: "Refunds\n\nFive business days."},
	}
	if !reflect.DeepEqual(chunks, want) {
		t.Fatalf("chunks:\n got %#v\nwant %#v", chunks, want)
	}
}

func TestChunkSubsectionStartsChunkWhenHalfFull(t *testing.T) {
	long := sentences("Opening", 10) // about 600 characters
	doc := &Document{Blocks: []Block{
		heading(1, "Guide"), para(long), heading(2, "Holidays"), para("Closed on public holidays."),
	}}
	chunks := ChunkDocument(doc, 1000, 100)
	checkChunks(t, doc, chunks, 1000)
	if len(chunks) != 2 || !reflect.DeepEqual(chunks[1].HeadingPath, []string{"Guide", "Holidays"}) ||
		!strings.HasPrefix(chunks[1].Text, "Holidays\n\n") {
		t.Fatalf("chunks: %#v", chunks)
	}
}

func TestChunkKeepsParagraphsWhole(t *testing.T) {
	p1, p2, p3 := sentences("First", 8), sentences("Second", 8), sentences("Third", 8) // ~450 each
	doc := &Document{Blocks: []Block{heading(1, "Policy"), para(p1), para(p2), para(p3)}}
	chunks := ChunkDocument(doc, 1000, 150)
	checkChunks(t, doc, chunks, 1000)
	if len(chunks) != 2 {
		t.Fatalf("%d chunks: %#v", len(chunks), chunks)
	}
	if !strings.HasSuffix(chunks[0].Text, p2) || !strings.HasSuffix(chunks[1].Text, "\n\n"+p3) {
		t.Fatalf("a paragraph was split: %#v", chunks)
	}
	// The second chunk continues the section: it opens with the end of the first.
	lead := strings.TrimSuffix(chunks[1].Text, "\n\n"+p3)
	if lead == "" || len(lead) > 150 || !strings.HasSuffix(chunks[0].Text, lead) {
		t.Fatalf("overlap %q is not the end of the chunk before", lead)
	}
	if !reflect.DeepEqual(chunks[1].HeadingPath, []string{"Policy"}) {
		t.Fatalf("path %v", chunks[1].HeadingPath)
	}
}

func TestChunkSplitsOversizedParagraphs(t *testing.T) {
	long := sentences("Long", 40) // ~2,400 characters in one paragraph
	word := strings.Repeat("x", 700)
	doc := &Document{Blocks: []Block{para(long), para("tiny " + word + " end")}}
	chunks := ChunkDocument(doc, 500, 80)
	checkChunks(t, doc, chunks, 500)
	// The long paragraph is cut at sentence ends: every chunk of it ends a sentence.
	for _, c := range chunks {
		if strings.Contains(c.Text, "Long") && !strings.Contains(c.Text, "tiny") && !strings.HasSuffix(c.Text, ".") {
			t.Fatalf("chunk cut mid-sentence: %q", c.Text)
		}
	}
	for i := 1; i < len(chunks); i++ {
		if chunks[i].Text == chunks[i-1].Text {
			t.Fatalf("duplicate chunk %d", i)
		}
	}
}

func TestChunkHeadingNeverLast(t *testing.T) {
	doc := &Document{Blocks: []Block{
		heading(1, "A"), para(sentences("Alpha", 7)), heading(2, "B"), para(sentences("Beta", 7)),
	}}
	// Size such that "A" + para fits, B's heading would fit but its text would not.
	chunks := ChunkDocument(doc, 460, 0)
	checkChunks(t, doc, chunks, 460)
	for _, c := range chunks {
		if strings.HasSuffix(c.Text, "\n\nB") {
			t.Fatalf("heading left at a chunk's end: %q", c.Text)
		}
	}
}

func TestChunkRowsAndPages(t *testing.T) {
	doc := extractOK(t, "p.csv", "", []byte("name,city\nAda,London\nGrace,Arlington\n"))
	chunks := ChunkDocument(doc, 1000, 0)
	if len(chunks) != 1 || chunks[0].Text != "name: Ada; city: London\nname: Grace; city: Arlington" {
		t.Fatalf("rows: %#v", chunks)
	}
	pdfDoc := extractOK(t, "h.pdf", "", makePDF(t, "", []pdfPage{
		{heading: "Opening hours", paragraphs: []string{"Eight to six."}},
		{heading: "Refunds", paragraphs: []string{longPara}},
	}))
	chunks = ChunkDocument(pdfDoc, 1000, 100)
	checkChunks(t, pdfDoc, chunks, 1000)
	if len(chunks) != 2 || chunks[0].Page != 1 || chunks[1].Page != 2 || chunks[1].HeadingPath[0] != "Refunds" {
		t.Fatalf("pdf chunks: %#v", chunks)
	}
}

func TestChunkDeterministicAndDefaults(t *testing.T) {
	doc := &Document{Blocks: []Block{heading(1, "T"), para(sentences("S", 50)), heading(3, "Deep"), para("x")}}
	a, b := ChunkDocument(doc, 0, -5), ChunkDocument(doc, 0, -5)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("chunking is not deterministic")
	}
	checkChunks(t, doc, a, DefaultChunkSize)
	checkChunks(t, doc, ChunkDocument(doc, 1, 1000), MinChunkSize)
	// A heading too long to share a chunk with the paragraph under it.
	longHead := &Document{Blocks: []Block{heading(1, strings.Repeat("Title words ", 25)), para(sentences("P", 15)), heading(2, "x"), para("y")}}
	checkChunks(t, longHead, ChunkDocument(longHead, 1000, 0), 1000)
	checkChunks(t, longHead, ChunkDocument(longHead, 1000, 300), 1000)
	if ChunkDocument(nil, 100, 10) != nil || ChunkDocument(&Document{}, 100, 10) != nil {
		t.Fatal("an empty document has chunks")
	}
}

// TestChunkRealFiles runs every format the tests can make through Extract and ChunkDocument
// at a small size, so each is split, and holds the chunks to the contract.
func TestChunkRealFiles(t *testing.T) {
	body := sentences("Body", 12)
	files := []struct{ name, mediaType string }{
		{"a.pdf", ""}, {"a.html", ""}, {"a.docx", ""}, {"a.md", ""}, {"a.csv", ""}, {"a.json", ""},
	}
	data := map[string][]byte{
		"a.pdf":  makePDF(t, "", []pdfPage{{heading: "One", paragraphs: []string{body, body}}, {heading: "Two", paragraphs: []string{body}}}),
		"a.html": []byte("<title>x</title><h1>One</h1><p>" + body + "</p><h2>Sub</h2><p>" + body + "</p><script>no()</script>"),
		"a.docx": makeDOCX(t, docxPara("Heading2", "One")+docxPara("", body)+docxPara("", body)),
		"a.md":   []byte("# One\n\n" + body + "\n\n## Sub\n\n" + body + "\n"),
		"a.csv":  []byte("q,a\n" + strings.Repeat("\"What about this?\",\""+body[:120]+"\"\n", 10)),
		"a.json": []byte(`{"faq":[{"q":"why","a":"` + body + `"},{"q":"how","a":"` + body + `"}]}`),
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			doc := extractOK(t, f.name, f.mediaType, data[f.name])
			chunks := ChunkDocument(doc, 300, 60)
			if len(chunks) < 3 {
				t.Fatalf("%d chunks of a %d-block document", len(chunks), len(doc.Blocks))
			}
			checkChunks(t, doc, chunks, 300)
			if !strings.Contains(chunks[0].Text, "Body") && !strings.Contains(chunks[0].Text, "What") {
				t.Fatalf("first chunk %q", chunks[0].Text)
			}
		})
	}
}
