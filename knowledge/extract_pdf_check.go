package knowledge

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// pdfPrecheck vets a PDF's cross-reference structure before the PDF library reads it. The
// library trusts these numbers: an xref subsection starting at object 99,999,990 makes it
// allocate gigabytes, a /Prev chain that loops never ends, and an object stream said to live
// inside another object stream (or extending one in a cycle) recurses until the stack runs
// out, none of which a recover can catch. So the chain from startxref is walked here first,
// with every count bounded, every offset visited once, and the object streams' nesting checked.
func pdfPrecheck(data []byte) error {
	start, err := pdfStartXref(data)
	if err != nil {
		return err
	}
	// A file cannot hold more objects than this: a compressed object stream packs one in a few
	// bytes, deflate expands at most about a thousandfold.
	maxObjects := int64(min(8<<20, 200*int64(len(data))+1024))
	inStream := map[int64]int64{} // object number → the object stream holding it
	visited := map[int64]bool{}
	for off := start; off >= 0; {
		if visited[off] || len(visited) >= 64 {
			return fmt.Errorf("%w: the cross-reference chain loops or is too long", ErrCorrupt)
		}
		visited[off] = true
		if off >= int64(len(data)) {
			return fmt.Errorf("%w: cross-reference offset %d is past the end of the file", ErrCorrupt, off)
		}
		section := data[off:]
		var prev int64
		if bytes.HasPrefix(bytes.TrimLeft(section, " \t\r\n"), []byte("xref")) {
			prev, err = pdfCheckXrefTable(section, maxObjects)
		} else {
			prev, err = pdfCheckXrefStream(section, maxObjects, inStream)
		}
		if err != nil {
			return err
		}
		off = prev
	}
	for obj, container := range inStream {
		if _, nested := inStream[container]; nested {
			return fmt.Errorf("%w: object %d is in object stream %d, itself in an object stream", ErrCorrupt, obj, container)
		}
	}
	// The library reads an object stream's /N entries one by one, however many it claims.
	for rest, base := data, 0; ; {
		i := bytes.Index(rest, []byte("/ObjStm"))
		if i < 0 {
			break
		}
		from := max(0, bytes.LastIndex(rest[:i], []byte("obj")))
		to := i + len("/ObjStm")
		if j := bytes.Index(rest[to:], []byte("stream")); j >= 0 {
			to += j
		} else {
			to = len(rest)
		}
		if n := pdfDictInt(rest[from:to], "N", 0); n < 0 || n > maxObjects {
			return fmt.Errorf("%w: an object stream at byte %d claims %d objects", ErrCorrupt, base+from, n)
		}
		base += i + len("/ObjStm")
		rest = rest[i+len("/ObjStm"):]
	}
	if bytes.Contains(data, []byte("/Extends")) {
		// Object streams extending others are a PDF 1.5 feature no writer uses; a chain of
		// them can loop inside the library.
		return fmt.Errorf("%w: object streams that extend others are not read", ErrCorrupt)
	}
	return nil
}

var startXrefRe = regexp.MustCompile(`startxref\s+(\d{1,15})\s`)

func pdfStartXref(data []byte) (int64, error) {
	tail := data[max(0, len(data)-2048):]
	all := startXrefRe.FindAllSubmatch(tail, -1)
	if len(all) == 0 {
		return 0, fmt.Errorf("%w: missing startxref", ErrCorrupt)
	}
	n, err := strconv.ParseInt(string(all[len(all)-1][1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad startxref", ErrCorrupt)
	}
	return n, nil
}

// pdfToken returns the whitespace-separated token of b at or after i, and where it ends.
func pdfToken(b []byte, i int) ([]byte, int) {
	for i < len(b) && isPDFSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isPDFSpace(b[j]) {
		j++
	}
	return b[i:j], j
}

func isPDFSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == 0
}

// pdfCheckXrefTable reads a classic xref table as the library will (token by token), bounding
// its subsections, and returns the trailer's /Prev offset (or -1).
func pdfCheckXrefTable(section []byte, maxObjects int64) (int64, error) {
	_, i := pdfToken(section, 0) // "xref"
	var entries int64
	for {
		tok, next := pdfToken(section, i)
		if len(tok) == 0 {
			return 0, fmt.Errorf("%w: xref table without a trailer", ErrCorrupt)
		}
		if bytes.HasPrefix(tok, []byte("trailer")) {
			i = next
			break
		}
		countTok, next := pdfToken(section, next)
		first, err1 := strconv.ParseInt(string(tok), 10, 64)
		count, err2 := strconv.ParseInt(string(countTok), 10, 64)
		if err1 != nil || err2 != nil || first < 0 || count < 0 {
			return 0, fmt.Errorf("%w: malformed xref subsection", ErrCorrupt)
		}
		entries += count
		if first+count > maxObjects || entries*18 > int64(len(section)) {
			return 0, fmt.Errorf("%w: xref subsection %d+%d is out of all proportion to the file", ErrCorrupt, first, count)
		}
		i = next
		for range 3 * count {
			if tok, i = pdfToken(section, i); len(tok) == 0 {
				return 0, fmt.Errorf("%w: xref table ends early", ErrCorrupt)
			}
		}
	}
	end := bytes.Index(section[i:], []byte(">>"))
	if end < 0 {
		return 0, fmt.Errorf("%w: trailer without a dictionary", ErrCorrupt)
	}
	return pdfDictInt(section[i:i+end], "Prev", -1), nil
}

// pdfDictInt finds "/Key 123" in raw dictionary text; def when it is missing.
func pdfDictInt(dict []byte, key string, def int64) int64 {
	re := regexp.MustCompile(`/` + key + `\s*(-?\d{1,15})\b(\s+\d+\s+R)?`)
	m := re.FindSubmatch(dict)
	if m == nil || len(m[2]) > 0 {
		return def
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return def
	}
	return n
}

// pdfDictInts finds "/Key [1 2 3]" in raw dictionary text.
func pdfDictInts(dict []byte, key string) ([]int64, bool) {
	re := regexp.MustCompile(`/` + key + `\s*\[([^\]]*)\]`)
	m := re.FindSubmatch(dict)
	if m == nil {
		return nil, false
	}
	var out []int64
	for _, f := range bytes.Fields(m[1]) {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

var objHeaderRe = regexp.MustCompile(`^\s*\d+\s+\d+\s+obj`)

// pdfCheckXrefStream vets a cross-reference stream: its /Size, /W and /Index are bounded, and
// its entries are decoded to learn which objects live in which object streams. It returns
// the /Prev offset (or -1).
func pdfCheckXrefStream(section []byte, maxObjects int64, inStream map[int64]int64) (int64, error) {
	if !objHeaderRe.Match(section[:min(len(section), 64)]) {
		return 0, fmt.Errorf("%w: startxref does not point to a cross-reference table", ErrCorrupt)
	}
	si := bytes.Index(section, []byte("stream"))
	if si < 0 {
		return 0, fmt.Errorf("%w: cross-reference stream without data", ErrCorrupt)
	}
	dict := section[:si]
	size := pdfDictInt(dict, "Size", -1)
	if size < 0 || size > maxObjects {
		return 0, fmt.Errorf("%w: cross-reference stream /Size %d", ErrCorrupt, size)
	}
	w, ok := pdfDictInts(dict, "W")
	if !ok || len(w) < 3 {
		return 0, fmt.Errorf("%w: cross-reference stream without /W", ErrCorrupt)
	}
	width := 0
	for _, x := range w {
		if x < 0 || x > 8 {
			return 0, fmt.Errorf("%w: cross-reference stream /W %v", ErrCorrupt, w)
		}
		width += int(x)
	}
	index, ok := pdfDictInts(dict, "Index")
	if !ok {
		index = []int64{0, size}
	}
	if len(index)%2 != 0 {
		return 0, fmt.Errorf("%w: cross-reference stream /Index %v", ErrCorrupt, index)
	}
	var total int64
	for k := 0; k < len(index); k += 2 {
		if index[k] < 0 || index[k+1] < 0 || index[k]+index[k+1] > maxObjects {
			return 0, fmt.Errorf("%w: cross-reference stream /Index %v", ErrCorrupt, index)
		}
		total += index[k+1]
	}
	if total > maxObjects {
		return 0, fmt.Errorf("%w: cross-reference stream of %d entries", ErrCorrupt, total)
	}
	prev := pdfDictInt(dict, "Prev", -1)
	if width == 0 || total == 0 {
		return prev, nil
	}
	rows, err := pdfXrefRows(section[si:], dict, width, total)
	if err != nil {
		return 0, err
	}
	k, left := 0, int64(0)
	obj := int64(0)
	for _, row := range rows {
		for left == 0 {
			obj, left = index[k], index[k+1]
			k += 2
		}
		typ := int64(1)
		if w[0] > 0 {
			typ = pdfBigEndian(row[:w[0]])
		}
		if typ == 2 {
			inStream[obj] = pdfBigEndian(row[w[0] : w[0]+w[1]])
		}
		obj++
		left--
	}
	return prev, nil
}

func pdfBigEndian(b []byte) int64 {
	var x int64
	for _, c := range b {
		x = x<<8 | int64(c)
	}
	return x
}

// pdfXrefRows decodes a cross-reference stream's data (Flate, with the PNG predictors writers
// use) into rows of width bytes, bounded by the entries it should hold.
func pdfXrefRows(stream, dict []byte, width int, entries int64) ([][]byte, error) {
	_, i := pdfToken(stream, 0) // "stream"
	if i < len(stream) && stream[i] == '\r' {
		i++
	}
	if i < len(stream) && stream[i] == '\n' {
		i++
	}
	raw := stream[i:]
	if n := pdfDictInt(dict, "Length", -1); n >= 0 && n <= int64(len(raw)) {
		raw = raw[:n]
	}
	var data []byte
	switch {
	case bytes.Contains(dict, []byte("/FlateDecode")):
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: cross-reference stream: %v", ErrCorrupt, err)
		}
		// A predictor adds a byte a row; nothing beyond the rows is needed.
		data, err = io.ReadAll(io.LimitReader(zr, entries*int64(width+1)))
		if err != nil && len(data) == 0 {
			return nil, fmt.Errorf("%w: cross-reference stream: %v", ErrCorrupt, err)
		}
	case bytes.Contains(dict, []byte("/Filter")):
		return nil, fmt.Errorf("%w: cross-reference stream with an unusual filter", ErrCorrupt)
	default:
		data = raw
	}
	predictor := pdfDictInt(dict, "Predictor", 1)
	var rows [][]byte
	switch {
	case predictor >= 10:
		// PNG predictors: each row is a filter byte then width bytes.
		prior := make([]byte, width)
		for len(data) >= width+1 && int64(len(rows)) < entries {
			filter, row := data[0], append([]byte(nil), data[1:width+1]...)
			data = data[width+1:]
			for x := range row {
				var left, upLeft byte
				if x > 0 {
					left, upLeft = row[x-1], prior[x-1]
				}
				switch filter {
				case 1:
					row[x] += left
				case 2:
					row[x] += prior[x]
				case 3:
					row[x] += byte((int(left) + int(prior[x])) / 2)
				case 4:
					row[x] += paeth(left, prior[x], upLeft)
				}
			}
			rows = append(rows, row)
			prior = row
		}
	case predictor == 1:
		for len(data) >= width && int64(len(rows)) < entries {
			rows = append(rows, data[:width])
			data = data[width:]
		}
	default:
		return nil, fmt.Errorf("%w: cross-reference stream with predictor %d", ErrCorrupt, predictor)
	}
	return rows, nil
}

func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// maxPDFOperands bounds the operands a content stream may stack before an operator. The PDF
// library's interpreter keeps every operand until the next operator, so a stream of nothing
// but numbers (a few KiB compressed) would hold gigabytes; real operators take at most a
// handful of operands.
const maxPDFOperands = 50_000

// pdfOperandGuard is written a decoded content stream (or CMap) and fails once too many
// operands stand without an operator. It tokenizes as the library does, byte by byte so a
// stream is never held whole: strings, hex strings, arrays and dictionaries are one operand,
// comments nothing, an inline image's data is skipped to its EI.
type pdfOperandGuard struct {
	count                int
	depth                int // inside [ ], << >> or { }
	state                byte
	strDepth             int
	escape               bool
	tok                  []byte
	pendingLT, pendingGT bool
	window               [4]byte // the last bytes of inline image data, to find " EI "
	lastNum              int64   // the last integer operand: the count a CMap block announces
}

const (
	psNormal = iota
	psToken
	psComment
	psString
	psHex
	psImage
)

func isPDFDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

var errPDFOperands = fmt.Errorf("%w: a content stream stacks more than %d operands without an operator", ErrCorrupt, maxPDFOperands)

func (g *pdfOperandGuard) Write(p []byte) (int, error) {
	for _, c := range p {
		if err := g.byte(c); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (g *pdfOperandGuard) operand() error {
	if g.depth > 0 {
		return nil
	}
	g.count++
	if g.count > maxPDFOperands {
		return errPDFOperands
	}
	return nil
}

func (g *pdfOperandGuard) endToken() error {
	tok := g.tok
	g.tok = g.tok[:0]
	g.state = psNormal
	if len(tok) == 0 || g.depth > 0 {
		return nil
	}
	c := tok[0]
	isWord := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '\'' || c == '"' || c == '*'
	if !isWord || string(tok) == "true" || string(tok) == "false" || string(tok) == "null" {
		if n, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			g.lastNum = n
		}
		return g.operand()
	}
	if bytes.HasPrefix(tok, []byte("begin")) && g.lastNum > maxPDFOperands {
		// A CMap block (beginbfchar, beginbfrange…) announcing more entries than any font has:
		// the library would make room for every one.
		return fmt.Errorf("%w: a CMap block announces %d entries", ErrCorrupt, g.lastNum)
	}
	g.count, g.lastNum = 0, 0
	if string(tok) == "ID" {
		g.state = psImage
		g.window = [4]byte{' ', ' ', ' ', ' '}
	}
	return nil
}

func (g *pdfOperandGuard) byte(c byte) error {
	if g.pendingLT {
		g.pendingLT = false
		if c == '<' {
			g.depth++
			return nil
		}
		g.state = psHex
	}
	if g.pendingGT {
		g.pendingGT = false
		if c == '>' {
			if g.depth > 0 {
				g.depth--
			}
			return g.operand()
		}
	}
	switch g.state {
	case psComment:
		if c == '\n' || c == '\r' {
			g.state = psNormal
		}
		return nil
	case psString:
		switch {
		case g.escape:
			g.escape = false
		case c == '\\':
			g.escape = true
		case c == '(':
			g.strDepth++
		case c == ')':
			if g.strDepth--; g.strDepth == 0 {
				g.state = psNormal
				return g.operand()
			}
		}
		return nil
	case psHex:
		if c == '>' {
			g.state = psNormal
			return g.operand()
		}
		return nil
	case psImage:
		copy(g.window[:], g.window[1:])
		g.window[3] = c
		if isPDFSpace(g.window[0]) && g.window[1] == 'E' && g.window[2] == 'I' && (isPDFSpace(g.window[3]) || isPDFDelim(g.window[3])) {
			g.state = psNormal
			g.count = 0
		}
		return nil
	case psToken:
		if !isPDFSpace(c) && !isPDFDelim(c) {
			if len(g.tok) < 16 {
				g.tok = append(g.tok, c)
			}
			return nil
		}
		if err := g.endToken(); err != nil {
			return err
		}
	}
	// psNormal
	switch {
	case isPDFSpace(c):
	case c == '%':
		g.state = psComment
	case c == '(':
		g.state, g.strDepth, g.escape = psString, 1, false
	case c == '<':
		g.pendingLT = true
	case c == '>':
		g.pendingGT = true
	case c == '[' || c == '{':
		g.depth++
	case c == ']' || c == '}':
		if g.depth > 0 {
			g.depth--
		}
		return g.operand()
	case c == ')':
	default:
		// A name (/Name) or a number or an operator.
		g.state = psToken
		g.tok = append(g.tok[:0], c)
	}
	return nil
}
