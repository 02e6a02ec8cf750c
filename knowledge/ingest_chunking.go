package knowledge

import "strings"

// chunkDocument cuts a document into chunks for the index. It stands in until the structural
// chunker lands: paragraphs under their headings, packed up to size characters.
func chunkDocument(doc *Document, size, overlap int) []Chunk {
	var out []Chunk
	var head []string
	var cur strings.Builder
	page := 0
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, Chunk{Position: len(out), HeadingPath: append([]string(nil), head...), Text: t, Page: page})
		}
		cur.Reset()
	}
	for _, b := range doc.Blocks {
		if b.Kind == BlockHeading {
			flush()
			lvl := max(b.Level, 1)
			if lvl-1 < len(head) {
				head = head[:lvl-1]
			}
			head = append(head, b.Text)
			continue
		}
		if cur.Len() > 0 && cur.Len()+len(b.Text) > size {
			flush()
		}
		if cur.Len() == 0 {
			page = b.Page
		}
		cur.WriteString(b.Text)
		cur.WriteString("\n")
	}
	flush()
	return out
}
