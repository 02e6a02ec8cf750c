package knowledge

import (
	"fmt"
	"math"
	"strings"

	"github.com/ledongthuc/pdf"
)

// pdfMatrix is a PDF transformation [a b c d e f], applied to row vectors [x y 1].
type pdfMatrix [6]float64

var pdfIdentity = pdfMatrix{1, 0, 0, 1, 0, 0}

// mul is m × n: m applied first, then n.
func (m pdfMatrix) mul(n pdfMatrix) pdfMatrix {
	return pdfMatrix{
		m[0]*n[0] + m[1]*n[2], m[0]*n[1] + m[1]*n[3],
		m[2]*n[0] + m[3]*n[2], m[2]*n[1] + m[3]*n[3],
		m[4]*n[0] + m[5]*n[2] + n[4], m[4]*n[1] + m[5]*n[3] + n[5],
	}
}

func pdfTranslate(tx, ty float64) pdfMatrix { return pdfMatrix{1, 0, 0, 1, tx, ty} }

// pdfFont is what layout needs of a font: its text encoding and its glyph widths (in
// thousandths of the font size), so the end of a run of text is known and a gap before the
// next run can be told from kerning.
type pdfFont struct {
	enc     pdf.TextEncoding
	twoByte bool // a composite (Type0) font: two-byte codes
	first   int
	widths  []float64       // simple fonts, from FirstChar
	cid     map[int]float64 // composite fonts, from the descendant's W
	ranges  []pdfWidthRange // composite fonts, the W ranges
	dw      float64         // composite fonts' default width
	known   bool            // whether widths are known at all
}

type pdfWidthRange struct {
	lo, hi int
	w      float64
}

func num(v pdf.Value) float64 {
	f := v.Float64()
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// maxWidthEntries bounds the widths read from one font (a CID font covers at most 65,536
// codes).
const maxWidthEntries = 1 << 16

func newPDFFont(f pdf.Font) *pdfFont {
	pf := &pdfFont{enc: f.Encoder()}
	if f.V.Key("Subtype").Name() == "Type0" {
		pf.twoByte, pf.known, pf.dw = true, true, 1000
		desc := f.V.Key("DescendantFonts").Index(0)
		if dw := desc.Key("DW"); dw.Kind() == pdf.Integer || dw.Kind() == pdf.Real {
			pf.dw = num(dw)
		}
		pf.cid = map[int]float64{}
		w := desc.Key("W")
		for i := 0; i+1 < w.Len() && len(pf.cid)+len(pf.ranges) < maxWidthEntries; {
			c := int(w.Index(i).Int64())
			if next := w.Index(i + 1); next.Kind() == pdf.Array {
				for k := 0; k < next.Len() && k < maxWidthEntries; k++ {
					pf.cid[c+k] = num(next.Index(k))
				}
				i += 2
				continue
			}
			if i+2 >= w.Len() {
				break
			}
			pf.ranges = append(pf.ranges, pdfWidthRange{c, int(w.Index(i + 1).Int64()), num(w.Index(i + 2))})
			i += 3
		}
		return pf
	}
	ws := f.V.Key("Widths")
	if ws.Kind() == pdf.Array && ws.Len() > 0 {
		pf.known = true
		pf.first = int(f.V.Key("FirstChar").Int64())
		pf.widths = make([]float64, min(ws.Len(), maxWidthEntries))
		for i := range pf.widths {
			pf.widths[i] = num(ws.Index(i))
		}
	}
	return pf
}

func (f *pdfFont) width(code int) float64 {
	if f.twoByte {
		if w, ok := f.cid[code]; ok {
			return w
		}
		for _, r := range f.ranges {
			if code >= r.lo && code <= r.hi {
				return r.w
			}
		}
		return f.dw
	}
	if i := code - f.first; i >= 0 && i < len(f.widths) {
		return f.widths[i]
	}
	return 0
}

// textState is the part of the PDF text state that moves text.
type textState struct {
	font                        *pdfFont
	size, charSp, wordSp, scale float64
	leading, rise               float64
}

// advance is how far showing raw moves along the line, in text space.
func (ts *textState) advance(raw string) float64 {
	var tx float64
	step := 1
	if ts.font != nil && ts.font.twoByte {
		step = 2
	}
	for i := 0; i+step <= len(raw); i += step {
		code := int(raw[i])
		if step == 2 {
			code = code<<8 | int(raw[i+1])
		}
		w := 0.0
		if ts.font != nil {
			w = ts.font.width(code)
		}
		tx += w/1000*ts.size + ts.charSp
		if step == 1 && code == ' ' {
			tx += ts.wordSp
		}
	}
	return tx * ts.scale
}

// pdfPageLines interprets a page's text operators into lines. It follows the graphics and
// text matrices (cm, q/Q, Td, TD, Tm, T*) so positions are where the reader sees them, and
// glyph widths so that the end of each run of text is known: a run that starts further along
// than the last one ended starts a new word, one that starts where it ended (the pieces of a
// kerned word) continues it.
func pdfPageLines(b *builder, p pdf.Page, page int, streamBudget *int64) ([]pdfLine, error) {
	contents := p.V.Key("Contents")
	if contents.Kind() != pdf.Stream && contents.Kind() != pdf.Array {
		return nil, nil
	}
	// The library looks up inherited resources up the Parent chain with no bound; a chain
	// that loops would never end.
	depth := 0
	for v := p.V; !v.IsNull(); v = v.Key("Parent") {
		if depth++; depth > 64 {
			return nil, fmt.Errorf("%w: page %d's parent chain loops", ErrCorrupt, page)
		}
	}
	fonts := map[string]*pdfFont{}
	for _, name := range p.Fonts() {
		f := p.Font(name)
		n, err := pdfCheckStreams(f.V.Key("ToUnicode"), *streamBudget)
		if err != nil {
			return nil, err
		}
		*streamBudget -= n
		fonts[name] = newPDFFont(f)
	}
	var (
		lines    []pdfLine
		cur      strings.Builder
		curSize  float64
		curY     float64
		haveLine bool
		endX     float64 // where the last run ended, when its widths were known
		endKnown bool
		moved    bool // the text position was set since the last run (for unknown widths)
		lastY    = math.NaN()
		lastSize float64

		ctm      = pdfIdentity
		ctmStack []pdfMatrix
		tm, tlm  = pdfIdentity, pdfIdentity
		ts       = textState{size: 12, scale: 1}
		// stop is the limit reached while interpreting: the interpreter cannot be stopped,
		// so the rest of the (size-checked) stream is read and ignored.
		stop error
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
	show := func(raw string) {
		if raw == "" {
			return
		}
		m := tm.mul(ctm)
		x, y := m[4], m[5]
		size := math.Abs(ts.size) * math.Hypot(m[2], m[3])
		if haveLine && math.Abs(y-curY) > 0.3*max(size, curSize, 1) {
			flush()
		}
		s := raw
		if ts.font != nil && ts.font.enc != nil {
			s = ts.font.enc.Decode(raw)
		}
		if !haveLine {
			haveLine, curY, curSize = true, y, size
		} else {
			space := moved
			if endKnown {
				gap := x - endX
				space = gap > 0.15*max(size, 1) || gap < -max(size, 1)
			}
			if space && !strings.HasSuffix(cur.String(), " ") && !strings.HasPrefix(s, " ") {
				cur.WriteByte(' ')
			}
		}
		curSize = max(curSize, size)
		if err := b.spend(len(s)); err != nil {
			stop = err
			return
		}
		cur.WriteString(s)
		tm = pdfTranslate(ts.advance(raw), 0).mul(tm)
		endX = tm.mul(ctm)[4]
		endKnown = ts.font != nil && ts.font.known
		moved = false
	}
	pdf.Interpret(contents, func(stk *pdf.Stack, op string) {
		n := stk.Len()
		args := make([]pdf.Value, n)
		for i := n - 1; i >= 0; i-- {
			args[i] = stk.Pop()
		}
		if stop != nil {
			return
		}
		nums := func() (v [6]float64) {
			for i := 0; i < n && i < 6; i++ {
				v[i] = num(args[i])
			}
			return v
		}
		switch op {
		case "q":
			if len(ctmStack) < 256 {
				ctmStack = append(ctmStack, ctm)
			}
		case "Q":
			if len(ctmStack) > 0 {
				ctm = ctmStack[len(ctmStack)-1]
				ctmStack = ctmStack[:len(ctmStack)-1]
			}
		case "cm":
			if n == 6 {
				ctm = pdfMatrix(nums()).mul(ctm)
			}
		case "BT":
			tm, tlm, moved = pdfIdentity, pdfIdentity, true
		case "Tf":
			if n == 2 {
				ts.font = fonts[args[0].Name()]
				ts.size = num(args[1])
			}
		case "Tc":
			if n == 1 {
				ts.charSp = num(args[0])
			}
		case "Tw":
			if n == 1 {
				ts.wordSp = num(args[0])
			}
		case "Tz":
			if n == 1 {
				ts.scale = num(args[0]) / 100
			}
		case "TL":
			if n == 1 {
				ts.leading = num(args[0])
			}
		case "Ts":
			if n == 1 {
				ts.rise = num(args[0])
			}
		case "Td", "TD":
			if n == 2 {
				v := nums()
				tlm = pdfTranslate(v[0], v[1]).mul(tlm)
				tm, moved = tlm, true
				if op == "TD" {
					ts.leading = -v[1]
				}
			}
		case "Tm":
			if n == 6 {
				tlm = pdfMatrix(nums())
				tm, moved = tlm, true
			}
		case "T*":
			tlm = pdfTranslate(0, -ts.leading).mul(tlm)
			tm, moved = tlm, true
		case "'", "\"":
			if op == "\"" && n == 3 {
				ts.wordSp, ts.charSp = num(args[0]), num(args[1])
			}
			tlm = pdfTranslate(0, -ts.leading).mul(tlm)
			tm, moved = tlm, true
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
						// Adjustments are in thousandths of the font size, subtracted.
						tm = pdfTranslate(-num(x)/1000*ts.size*ts.scale, 0).mul(tm)
						if !endKnown && num(x) < -200 {
							moved = true
						}
					}
				}
			}
		}
	})
	if stop != nil {
		return nil, stop
	}
	flush()
	return lines, nil
}
