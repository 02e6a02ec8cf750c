package knowledge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Chunking bounds. Sizes are counted in characters (Unicode code points), not model tokens:
// English runs about four characters to a token, so the default 1,000-character chunk is
// about 250 tokens, and counting characters needs no tokenizer of any one model.
const (
	DefaultChunkSize    = 1000
	DefaultChunkOverlap = 150
	// MinChunkSize is the smallest size ChunkDocument honours; a smaller one is raised to it.
	MinChunkSize = 64
)

// ChunkDocument splits a document into pieces of at most size characters for search and for a
// model's context, following its structure:
//   - a chunk never spans two top-level sections (those under the document's highest
//     headings); a subsection starts a new chunk unless the current one is less than half
//     full, so small subsections are kept together rather than scattered into tiny chunks;
//   - a heading is never the last thing in a chunk: it goes with the text under it;
//   - paragraphs and table rows are kept whole unless one alone is too big, which is then
//     split at sentence ends, then between words, then (one enormous word) anywhere;
//   - a chunk that continues the section of the chunk before it starts with up to overlap
//     characters from that chunk's end, cut at a word boundary, so a sentence split across
//     the two is found from either.
//
// Each chunk carries its Position (0-based), the HeadingPath its text sits under (the headings
// common to all of it, outermost first) and the Page it starts on. size <= 0 means
// DefaultChunkSize; overlap < 0 means none, and overlap is at most a third of size. The result
// depends only on its arguments.
func ChunkDocument(doc *Document, size, overlap int) []Chunk {
	if doc == nil || len(doc.Blocks) == 0 {
		return nil
	}
	if size <= 0 {
		size = DefaultChunkSize
	}
	size = max(size, MinChunkSize)
	overlap = max(0, min(overlap, size/3))
	// A unit leaves room for the overlap and for a heading of an eighth of the size before it.
	c := &chunker{size: size, overlap: overlap, maxUnit: size - max(overlap, size/8) - 2}
	c.units(doc)
	return c.pack()
}

// unit is the smallest piece the packer places: a heading, a whole paragraph or row, or a
// piece of one too big to keep whole.
type unit struct {
	text    string
	n       int // characters
	heading bool
	top     bool // a heading of the top level: always starts a chunk
	page    int
	path    []string
	// sep joins the unit to the one before it in a chunk: a space within a split paragraph, a
	// line break between rows, a blank line between blocks.
	sep string
}

type chunker struct {
	size, overlap, maxUnit int
	all                    []unit
}

func (c *chunker) units(doc *Document) {
	top := 7
	for _, b := range doc.Blocks {
		if b.Kind == BlockHeading {
			top = min(top, max(b.Level, 1))
		}
	}
	type head struct {
		level int
		text  string
	}
	var stack []head
	path := func() []string {
		p := make([]string, len(stack))
		for i, h := range stack {
			p[i] = h.text
		}
		return p
	}
	prevKind := ""
	for _, b := range doc.Blocks {
		if b.Text == "" {
			continue
		}
		sep := "\n\n"
		if b.Kind == BlockRow && prevKind == BlockRow {
			sep = "\n"
		}
		prevKind = b.Kind
		if b.Kind == BlockHeading {
			level := max(b.Level, 1)
			for len(stack) > 0 && stack[len(stack)-1].level >= level {
				stack = stack[:len(stack)-1]
			}
			stack = append(stack, head{level, b.Text})
			for i, piece := range c.split(b.Text) {
				u := unit{text: piece, n: utf8.RuneCountInString(piece), heading: true, top: i == 0 && level <= top, page: b.Page, path: path(), sep: sep}
				if i > 0 {
					u.sep = " "
				}
				c.all = append(c.all, u)
			}
			continue
		}
		p := path()
		for i, piece := range c.split(b.Text) {
			u := unit{text: piece, n: utf8.RuneCountInString(piece), page: b.Page, path: p, sep: sep}
			if i > 0 {
				u.sep = " "
				if strings.Contains(b.Text, "\n") {
					u.sep = "\n"
				}
			}
			c.all = append(c.all, u)
		}
	}
}

// split cuts a block's text into pieces of at most maxUnit characters: whole if it fits, else
// at line breaks (preformatted text) or sentence ends, then words, then characters.
func (c *chunker) split(text string) []string {
	if utf8.RuneCountInString(text) <= c.maxUnit {
		return []string{text}
	}
	var out []string
	for _, part := range splitKeep(text, lineEnds) {
		if utf8.RuneCountInString(part) <= c.maxUnit {
			out = append(out, part)
			continue
		}
		for _, sentence := range splitKeep(part, sentenceEnds) {
			if utf8.RuneCountInString(sentence) <= c.maxUnit {
				out = append(out, sentence)
				continue
			}
			out = append(out, c.splitWords(sentence)...)
		}
	}
	return c.merge(out)
}

// merge packs consecutive small pieces of one block back together up to maxUnit, so a long
// paragraph becomes a few large pieces rather than many sentences.
func (c *chunker) merge(pieces []string) []string {
	var out []string
	var group []string
	n := 0
	for _, p := range pieces {
		pn := utf8.RuneCountInString(p)
		if len(group) > 0 && n+1+pn <= c.maxUnit {
			group = append(group, p)
			n += 1 + pn
			continue
		}
		if len(group) > 0 {
			out = append(out, strings.Join(group, " "))
		}
		group, n = append(group[:0], p), pn
	}
	if len(group) > 0 {
		out = append(out, strings.Join(group, " "))
	}
	return out
}

func (c *chunker) splitWords(s string) []string {
	var out []string
	for _, w := range strings.Fields(s) {
		for utf8.RuneCountInString(w) > c.maxUnit {
			r := []rune(w)
			out = append(out, string(r[:c.maxUnit]))
			w = string(r[c.maxUnit:])
		}
		out = append(out, w)
	}
	return c.merge(out)
}

// lineEnds and sentenceEnds find where a piece may end: after a line break, or after
// sentence punctuation followed by a space.
func lineEnds(s string, i int) bool { return s[i] == '\n' }

func sentenceEnds(s string, i int) bool {
	r, w := utf8.DecodeRuneInString(s[i:])
	if r != '.' && r != '!' && r != '?' && r != '…' && r != '。' && r != '！' && r != '？' {
		return false
	}
	if r == '。' || r == '！' || r == '？' {
		return true
	}
	next, _ := utf8.DecodeRuneInString(s[i+w:])
	return i+w < len(s) && unicode.IsSpace(next)
}

// splitKeep cuts s after every position where end is true, trimming the pieces.
func splitKeep(s string, end func(string, int) bool) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		_, w := utf8.DecodeRuneInString(s[i:])
		if end(s, i) {
			if p := strings.TrimSpace(s[start : i+w]); p != "" {
				out = append(out, p)
			}
			start = i + w
		}
		i += w
	}
	if p := strings.TrimSpace(s[start:]); p != "" {
		out = append(out, p)
	}
	return out
}

// pack places units into chunks.
func (c *chunker) pack() []Chunk {
	var (
		chunks []Chunk
		cur    []unit
		lead   string // overlap carried from the previous chunk
		leadN  int
		n      int
	)
	length := func() int {
		total := leadN
		for i, u := range cur {
			if i > 0 || lead != "" {
				total += len(u.sep)
			}
			total += u.n
		}
		return total
	}
	emit := func(carryOverlap bool) {
		if len(cur) == 0 {
			return
		}
		var sb strings.Builder
		sb.WriteString(lead)
		for i, u := range cur {
			if i > 0 || lead != "" {
				sb.WriteString(u.sep)
			}
			sb.WriteString(u.text)
		}
		text := sb.String()
		chunks = append(chunks, Chunk{Position: len(chunks), HeadingPath: commonPath(cur), Text: text, Page: cur[0].page})
		lead, leadN = "", 0
		if carryOverlap && c.overlap > 0 {
			lead = tail(text, c.overlap)
			leadN = utf8.RuneCountInString(lead)
		}
		cur, n = cur[:0], 0
	}
	for _, u := range c.all {
		if u.heading && len(cur) > 0 {
			if u.top || length() >= c.size/2 {
				emit(false)
			}
		}
		n = length()
		sepN := len(u.sep)
		if len(cur) == 0 && lead == "" {
			sepN = 0
		}
		if len(cur) > 0 && n+sepN+u.n > c.size {
			// Headings at the end of the full chunk go with the text under them.
			var carry []unit
			for len(cur) > 0 && cur[len(cur)-1].heading {
				carry = append([]unit{cur[len(cur)-1]}, carry...)
				cur = cur[:len(cur)-1]
			}
			if len(cur) > 0 {
				emit(len(carry) == 0 && !u.heading)
			}
			cur = append(cur, carry...)
			if len(cur) > 0 && length()+len(u.sep)+u.n > c.size {
				// Headings too long to share a chunk with the text under them stand alone.
				emit(false)
			}
		}
		if lead != "" && leadN+len(u.sep)+u.n > c.size {
			lead, leadN = "", 0
		}
		cur = append(cur, u)
	}
	emit(false)
	return chunks
}

// tail is the end of text, at most n characters, starting at a word; empty when the last n
// characters are all one word.
func tail(text string, n int) string {
	// Walk back n characters from the end.
	i := len(text)
	for k := 0; k < n && i > 0; k++ {
		_, w := utf8.DecodeLastRuneInString(text[:i])
		i -= w
	}
	if i == 0 {
		return strings.TrimSpace(text)
	}
	t := text[i:]
	if before, _ := utf8.DecodeLastRuneInString(text[:i]); !unicode.IsSpace(before) {
		// The cut fell inside a word: start at the next one.
		j := strings.IndexFunc(t, unicode.IsSpace)
		if j < 0 {
			return ""
		}
		t = t[j:]
	}
	return strings.TrimSpace(t)
}

// commonPath is the heading path every unit of a chunk shares.
func commonPath(us []unit) []string {
	p := us[0].path
	for _, u := range us[1:] {
		k := 0
		for k < len(p) && k < len(u.path) && p[k] == u.path[k] {
			k++
		}
		p = p[:k]
	}
	return append([]string(nil), p...)
}
