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
// it parses the file and interprets content streams, and Switchboard lays the text out itself
// from the text operators (lines by position, paragraphs by vertical gaps, headings by font
// size), bounded by the extraction's limits. The library reports malformed input by panicking;
// extractPDF recovers every such panic into ErrCorrupt.

// errPDFStop carries a limit out of the library's content-stream interpreter, which has no
// other way to stop early; extractPDF recovers it.
type errPDFStop struct{ err error }

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
			if stop, ok := r.(errPDFStop); ok {
				err = stop.err
				return
			}
			err = fmt.Errorf("%w: unreadable PDF: %v", ErrCorrupt, r)
		}
	}()
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
		n, err := pdfStreamSize(p.V.Key("Contents"), streamBudget)
		if err != nil {
			return err
		}
		streamBudget -= n
		pl, err := pdfPageLines(b, p, i+1)
		if err != nil {
			return err
		}
		lines = append(lines, pl...)
	}
	return pdfBlocks(b, lines)
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

// pdfStreamSize decodes a page's content streams once, without keeping them, to learn their
// size before the interpreter reads them: a stream that inflates past budget is refused.
func pdfStreamSize(contents pdf.Value, budget int64) (int64, error) {
	var total int64
	read := func(v pdf.Value) error {
		if v.Kind() != pdf.Stream {
			return nil
		}
		rc := v.Reader()
		defer rc.Close()
		n, err := io.Copy(io.Discard, io.LimitReader(rc, budget-total+1))
		total += n
		if total > budget {
			return fmt.Errorf("%w: the PDF's content streams expand past %d bytes", ErrTooLarge, budget)
		}
		if err != nil {
			return fmt.Errorf("%w: content stream: %v", ErrCorrupt, err)
		}
		return nil
	}
	if contents.Kind() == pdf.Array {
		for i := 0; i < contents.Len(); i++ {
			if err := read(contents.Index(i)); err != nil {
				return total, err
			}
		}
		return total, nil
	}
	return total, read(contents)
}

// pdfPageLines interprets a page's text operators into lines. Positions follow the text line
// matrix (Td, TD, Tm, T*); glyph advances are not computed, so a space is put between shows
// that move along a line and inside TJ arrays where the adjustment is a word gap.
func pdfPageLines(b *builder, p pdf.Page, page int) ([]pdfLine, error) {
	contents := p.V.Key("Contents")
	if contents.Kind() != pdf.Stream && contents.Kind() != pdf.Array {
		return nil, nil
	}
	encs := map[string]pdf.TextEncoding{}
	for _, name := range p.Fonts() {
		f := p.Font(name)
		encs[name] = f.Encoder()
	}
	var (
		lines    []pdfLine
		cur      strings.Builder
		curSize  float64
		curY     float64
		haveLine bool
		enc      pdf.TextEncoding
		fontSize = 12.0
		scale    = 1.0
		leading  float64
		lineY    float64
		moved    bool
		lastY    = math.NaN()
		lastSize float64
	)
	flush := func() {
		t := strings.TrimSpace(cur.String())
		cur.Reset()
		if t == "" || !haveLine {
			haveLine = false
			return
		}
		gap := false
		if !math.IsNaN(lastY) {
			dy := lastY - curY
			// A gap of more than about one and a half lines, or a move up the page (a new
			// column or a box drawn out of order), starts a new paragraph.
			gap = dy > 1.6*max(curSize, lastSize, 1) || dy < -0.5*max(curSize, 1)
		}
		lines = append(lines, pdfLine{text: t, size: curSize, y: curY, page: page, gapBefore: gap})
		lastY, lastSize = curY, curSize
		haveLine = false
	}
	show := func(s string) {
		if s == "" {
			return
		}
		size := math.Abs(fontSize * scale)
		if haveLine && math.Abs(lineY-curY) > 0.3*max(size, curSize, 1) {
			flush()
		}
		if !haveLine {
			haveLine, curY, curSize, moved = true, lineY, size, false
		} else if moved {
			cur.WriteByte(' ')
			moved = false
		}
		if size > curSize {
			curSize = size
		}
		if enc != nil {
			s = enc.Decode(s)
		}
		if err := b.spend(len(s)); err != nil {
			panic(errPDFStop{err})
		}
		cur.WriteString(s)
	}
	num := func(v pdf.Value) float64 {
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0
		}
		return f
	}
	pdf.Interpret(contents, func(stk *pdf.Stack, op string) {
		n := stk.Len()
		args := make([]pdf.Value, n)
		for i := n - 1; i >= 0; i-- {
			args[i] = stk.Pop()
		}
		switch op {
		case "BT":
			lineY, scale, moved = 0, 1, true
		case "Tf":
			if n == 2 {
				enc = encs[args[0].Name()]
				fontSize = num(args[1])
			}
		case "TL":
			if n == 1 {
				leading = num(args[0])
			}
		case "Td", "TD":
			if n == 2 {
				lineY += num(args[1]) * scale
				if op == "TD" {
					leading = -num(args[1])
				}
				moved = true
			}
		case "Tm":
			if n == 6 {
				scale = math.Hypot(num(args[2]), num(args[3]))
				if scale == 0 {
					scale = 1
				}
				lineY = num(args[5])
				moved = true
			}
		case "T*":
			lineY -= leading * scale
			moved = true
		case "'", "\"":
			lineY -= leading * scale
			moved = true
			if n >= 1 {
				show(args[n-1].RawString())
			}
		case "Tj":
			if n == 1 {
				show(args[0].RawString())
			}
		case "TJ":
			if n == 1 && args[0].Kind() == pdf.Array {
				a := args[0]
				for i := 0; i < a.Len(); i++ {
					x := a.Index(i)
					switch x.Kind() {
					case pdf.String:
						show(x.RawString())
					case pdf.Integer, pdf.Real:
						// Adjustments are in thousandths of an em; a large negative one is
						// a word gap set by justification.
						if num(x) < -200 && haveLine {
							moved = true
						}
					}
				}
			}
		}
	})
	flush()
	return lines, nil
}

// pdfBlocks turns lines into headings and paragraphs: a line set clearly larger than the body
// text (the most used size) is a heading, its level ranked by size; lines run together into a
// paragraph until a gap, a heading or a new page.
func pdfBlocks(b *builder, lines []pdfLine) error {
	if len(lines) == 0 {
		return nil
	}
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
