package knowledge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/ledongthuc/pdf"
)

// PDF text comes from github.com/ledongthuc/pdf (a maintained fork of rsc.io/pdf, pure Go):
// it parses the file, decodes streams and fonts' encodings, and interprets content streams.
// Switchboard lays the text out itself from the text operators (extract_pdf_layout.go: lines
// by position, words by glyph widths, paragraphs by vertical gaps, headings by font size).
// The library trusts the file's structure, so pdfPrecheck (extract_pdf_check.go) vets it first
// and every stream the library interprets is bounded before it does; what is left of its
// malformed-input panics is recovered into ErrCorrupt.

// pdfLine is one line of text as laid out on a page.
type pdfLine struct {
	text string
	size float64 // effective font size
	y    float64
	page int
	// gapBefore is true when a vertical gap (or a jump up the page, as to a new column)
	// separates the line from the one before it.
	gapBefore bool
}

func extractPDF(b *builder, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: unreadable PDF: %v", ErrCorrupt, r)
		}
	}()
	if err := pdfPrecheck(data); err != nil {
		return err
	}
	if bytes.HasPrefix(data, []byte("%PDF-2.")) {
		// The library knows headers up to 1.7; PDF 2.0 files are read the same way.
		data = append([]byte("%PDF-1.7"), data[len("%PDF-2.0"):]...)
	}
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if errors.Is(err, pdf.ErrInvalidPassword) {
			return fmt.Errorf("%w: the PDF is encrypted with a password", ErrCorrupt)
		}
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	pages, err := pdfPages(b, r.Trailer().Key("Root").Key("Pages"))
	if err != nil {
		return err
	}
	b.doc.Pages = len(pages)
	if t := collapseSpace(r.Trailer().Key("Info").Key("Title").Text()); t != "" {
		b.doc.Title = t
	}
	// Content streams are decompressed and interpreted; their decoded size is bounded apart
	// from the text (a page of drawing has much stream and little text).
	streamBudget := max(8*b.lim.MaxTextBytes, 4<<20)
	var lines []pdfLine
	for i, p := range pages {
		if err := b.check(); err != nil {
			return err
		}
		n, err := pdfCheckStreams(p.V.Key("Contents"), streamBudget)
		if err != nil {
			return err
		}
		streamBudget -= n
		pl, err := pdfPageLines(b, p, i+1, &streamBudget)
		if err != nil {
			return err
		}
		lines = append(lines, pl...)
	}
	return pdfBlocks(b, lines, len(pages))
}

// pdfPages lists the pages in order, walking the page tree with bounds of its own: a cyclic or
// absurdly deep tree is corrupt, and more pages than the limit is too large.
func pdfPages(b *builder, root pdf.Value) ([]pdf.Page, error) {
	type node struct {
		v     pdf.Value
		depth int
	}
	var pages []pdf.Page
	stack := []node{{root, 0}}
	visits := 0
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visits++; visits > 4*b.lim.MaxPages+64 || n.depth > 64 {
			return nil, fmt.Errorf("%w: the page tree is cyclic or too deep", ErrCorrupt)
		}
		if err := b.check(); err != nil {
			return nil, err
		}
		kids := n.v.Key("Kids")
		if kids.Kind() == pdf.Array && n.v.Key("Type").Name() != "Page" {
			for i := kids.Len() - 1; i >= 0; i-- {
				stack = append(stack, node{kids.Index(i), n.depth + 1})
			}
			continue
		}
		if n.v.Kind() != pdf.Dict {
			continue
		}
		pages = append(pages, pdf.Page{V: n.v})
		if len(pages) > b.lim.MaxPages {
			return nil, fmt.Errorf("%w: more than %d pages", ErrTooLarge, b.lim.MaxPages)
		}
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("%w: the PDF has no pages", ErrCorrupt)
	}
	return pages, nil
}

// pdfCheckStreams decodes streams the library is about to interpret (a page's contents, a
// font's ToUnicode CMap) once, without keeping them, to bound their decoded size by budget and
// the operands they stack (pdfOperandGuard). It returns the bytes decoded.
func pdfCheckStreams(v pdf.Value, budget int64) (int64, error) {
	var total int64
	g := &pdfOperandGuard{}
	read := func(v pdf.Value) error {
		if v.Kind() != pdf.Stream {
			return nil
		}
		rc := v.Reader()
		defer rc.Close()
		n, err := io.Copy(g, io.LimitReader(rc, budget-total+1))
		total += n
		if total > budget {
			return fmt.Errorf("%w: the PDF's content streams expand past %d bytes", ErrTooLarge, budget)
		}
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: content stream: %v", ErrCorrupt, err)
		}
		return nil
	}
	if v.Kind() == pdf.Array {
		for i := 0; i < v.Len(); i++ {
			if err := read(v.Index(i)); err != nil {
				return total, err
			}
		}
		return total, nil
	}
	return total, read(v)
}

// pdfBlocks turns lines into headings and paragraphs: a line set clearly larger than the body
// text (the most used size) is a heading, its level ranked by size; lines run together into a
// paragraph until a gap, a heading or a new page.
func pdfBlocks(b *builder, lines []pdfLine, pages int) error {
	lines = dropRunningLines(lines, pages)
	if len(lines) == 0 {
		return nil
	}
	body := pdfBodySize(lines)
	isHeading := func(l pdfLine) bool {
		return body > 0 && l.size >= 1.2*body && len(l.text) <= 200
	}
	var sizes []float64
	seen := map[float64]bool{}
	for _, l := range lines {
		if s := math.Round(l.size*2) / 2; isHeading(l) && !seen[s] {
			seen[s] = true
			sizes = append(sizes, s)
		}
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(sizes)))
	level := func(l pdfLine) int {
		s := math.Round(l.size*2) / 2
		for i, x := range sizes {
			if x == s {
				return i + 1
			}
		}
		return len(sizes)
	}
	var para []string
	paraPage := 0
	flush := func() error {
		if len(para) == 0 {
			return nil
		}
		err := b.paragraph(strings.Join(para, " "), paraPage)
		para = para[:0]
		return err
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if isHeading(l) {
			if err := flush(); err != nil {
				return err
			}
			// A heading set over several lines is one heading.
			text := l.text
			for i+1 < len(lines) && lines[i+1].page == l.page && !lines[i+1].gapBefore && lines[i+1].size == l.size {
				i++
				text += " " + lines[i].text
			}
			if err := b.heading(level(l), text, l.page); err != nil {
				return err
			}
			continue
		}
		if len(para) > 0 && (l.gapBefore || l.page != paraPage) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(para) == 0 {
			paraPage = l.page
		}
		para = append(para, l.text)
	}
	return flush()
}

// pdfBodySize is the font size most of the text is set in.
func pdfBodySize(lines []pdfLine) float64 {
	bySize := map[float64]int{}
	for _, l := range lines {
		bySize[math.Round(l.size*2)/2] += len(l.text)
	}
	body, most := 0.0, -1
	for s, n := range bySize {
		if n > most || n == most && s < body {
			body, most = s, n
		}
	}
	return body
}

// dropRunningLines removes running headers and footers: a first or last line of a page whose
// text, digits aside ("Page 3 of 12"), opens or closes most pages of a document of three or
// more, set no larger than the body text (a numbered chapter heading atop each page stays).
// Repeated on every page they would crowd every chunk's words.
func dropRunningLines(lines []pdfLine, pages int) []pdfLine {
	if pages < 3 {
		return lines
	}
	body := pdfBodySize(lines)
	shape := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return '#'
			}
			return r
		}, s)
	}
	// edge[i] says whether line i is the first or last of its page.
	edge := make([]bool, len(lines))
	for i := range lines {
		edge[i] = i == 0 || lines[i-1].page != lines[i].page || i == len(lines)-1 || lines[i+1].page != lines[i].page
	}
	onPages := map[string]map[int]bool{}
	for i, l := range lines {
		if !edge[i] {
			continue
		}
		k := shape(l.text)
		if onPages[k] == nil {
			onPages[k] = map[int]bool{}
		}
		onPages[k][l.page] = true
	}
	out := lines[:0:0]
	for i, l := range lines {
		if edge[i] && l.size <= 1.05*body && 2*len(onPages[shape(l.text)]) > pages {
			continue
		}
		out = append(out, l)
	}
	return out
}
