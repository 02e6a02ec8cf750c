package knowledge

import (
	"fmt"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// extractHTML reads an HTML page as a browser would lay out its text: headings h1-h6, block
// elements as paragraphs, pre as text with its line breaks, tables as rows ("header: value"
// when the table has a header row), the title as the document's title. Scripts, styles,
// forms and the page's furniture (nav, header and footer of the page, aside, anything hidden
// or with a navigation role) are left out: they are noise to a caller's question.
func extractHTML(b *builder, text string) error {
	root, err := html.Parse(strings.NewReader(text))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	w := &htmlWalker{b: b}
	return w.walk(root)
}

type htmlWalker struct {
	b     *builder
	text  strings.Builder // the paragraph being gathered
	title string
	// table state: the header cells of the current table and the cells of the current row.
	header []string
	cells  []string
	inCell bool
	cell   strings.Builder
}

// htmlSkipped are elements whose content is never document text.
var htmlSkipped = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true,
	atom.Svg: true, atom.Math: true, atom.Canvas: true, atom.Iframe: true, atom.Object: true,
	atom.Nav: true, atom.Aside: true, atom.Form: true, atom.Button: true, atom.Select: true,
	atom.Textarea: true, atom.Head: true, atom.Dialog: true,
}

// htmlBlocks end the paragraph being gathered before and after them.
var htmlBlocks = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Section: true, atom.Article: true, atom.Main: true,
	atom.Li: true, atom.Ul: true, atom.Ol: true, atom.Dl: true, atom.Dt: true, atom.Dd: true,
	atom.Blockquote: true, atom.Figure: true, atom.Figcaption: true, atom.Address: true,
	atom.Br: true, atom.Hr: true, atom.Header: true, atom.Footer: true, atom.Details: true,
	atom.Summary: true, atom.Caption: true, atom.Body: true, atom.Center: true,
}

func htmlAttr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// skipped reports whether an element is left out with its content.
func (w *htmlWalker) skipped(n *html.Node) bool {
	if htmlSkipped[n.DataAtom] {
		return true
	}
	if _, ok := htmlAttr(n, "hidden"); ok {
		return true
	}
	if v, _ := htmlAttr(n, "aria-hidden"); v == "true" {
		return true
	}
	switch role, _ := htmlAttr(n, "role"); role {
	case "navigation", "banner", "contentinfo", "search", "menu", "menubar", "complementary":
		return true
	}
	if n.DataAtom == atom.Header || n.DataAtom == atom.Footer {
		// A page's header and footer are furniture; an article's are its own.
		for p := n.Parent; p != nil; p = p.Parent {
			if p.DataAtom == atom.Article || p.DataAtom == atom.Section || p.DataAtom == atom.Main {
				return false
			}
		}
		return true
	}
	return false
}

// walk visits the tree without recursion: an upload may nest elements thousands deep.
func (w *htmlWalker) walk(root *html.Node) error {
	type frame struct {
		n    *html.Node
		exit bool
	}
	for n := root.FirstChild; n != nil; n = n.NextSibling {
		if n.DataAtom != atom.Html {
			continue
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.DataAtom == atom.Head {
				w.title = findTitle(c)
			}
		}
	}
	stack := []frame{{n: root}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if err := w.b.check(); err != nil {
			return err
		}
		n := f.n
		if f.exit {
			if err := w.leave(n); err != nil {
				return err
			}
			continue
		}
		switch n.Type {
		case html.TextNode:
			if err := w.addText(n.Data); err != nil {
				return err
			}
			continue
		case html.ElementNode:
			if w.skipped(n) {
				continue
			}
			if err := w.enter(n); err != nil {
				return err
			}
			if n.DataAtom == atom.Pre {
				if err := w.pre(n); err != nil {
					return err
				}
				continue
			}
			stack = append(stack, frame{n: n, exit: true})
		case html.DocumentNode:
		default:
			continue
		}
		var kids []*html.Node
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			kids = append(kids, c)
		}
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, frame{n: kids[i]})
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if w.title != "" {
		w.b.doc.Title = w.title
	}
	return nil
}

func findTitle(head *html.Node) string {
	for c := head.FirstChild; c != nil; c = c.NextSibling {
		if c.DataAtom == atom.Title && c.FirstChild != nil {
			return collapseSpace(c.FirstChild.Data)
		}
	}
	return ""
}

func headingLevel(a atom.Atom) int {
	switch a {
	case atom.H1:
		return 1
	case atom.H2:
		return 2
	case atom.H3:
		return 3
	case atom.H4:
		return 4
	case atom.H5:
		return 5
	case atom.H6:
		return 6
	}
	return 0
}

// addText gathers text for the paragraph or cell being read; the builder charges it to the
// budget when the block is added, and a block that alone outgrows the budget stops here.
func (w *htmlWalker) addText(s string) error {
	if w.inCell {
		w.cell.WriteString(s)
	} else {
		w.text.WriteString(s)
	}
	if int64(w.text.Len()+w.cell.Len()) > w.b.left {
		return fmt.Errorf("%w: extracted text exceeds %d bytes", ErrTooLarge, w.b.lim.MaxTextBytes)
	}
	return nil
}

func (w *htmlWalker) flush() error {
	if w.inCell {
		return nil
	}
	s := w.text.String()
	w.text.Reset()
	return w.b.paragraph(s, 0)
}

func (w *htmlWalker) enter(n *html.Node) error {
	switch {
	case headingLevel(n.DataAtom) > 0 || htmlBlocks[n.DataAtom]:
		if w.inCell {
			w.cell.WriteByte(' ')
			return nil
		}
		return w.flush()
	case n.DataAtom == atom.Table:
		if err := w.flush(); err != nil {
			return err
		}
		w.header = nil
	case n.DataAtom == atom.Tr:
		w.cells = w.cells[:0]
	case n.DataAtom == atom.Td || n.DataAtom == atom.Th:
		w.inCell = true
		w.cell.Reset()
	case n.DataAtom == atom.Img:
		if alt, _ := htmlAttr(n, "alt"); alt != "" {
			return w.addText(" " + alt + " ")
		}
	}
	return nil
}

func (w *htmlWalker) leave(n *html.Node) error {
	if lvl := headingLevel(n.DataAtom); lvl > 0 && !w.inCell {
		s := w.text.String()
		w.text.Reset()
		return w.b.heading(lvl, s, 0)
	}
	switch n.DataAtom {
	case atom.Td, atom.Th:
		w.cells = append(w.cells, collapseSpace(w.cell.String()))
		w.inCell = false
	case atom.Tr:
		return w.row(n)
	}
	if htmlBlocks[n.DataAtom] {
		if w.inCell {
			w.cell.WriteByte(' ')
			return nil
		}
		return w.flush()
	}
	return nil
}

// row emits a table row. A row of header cells (th) becomes the table's header and the rows
// under it read "header: value; header: value", so a chunk of the table keeps its meaning.
func (w *htmlWalker) row(tr *html.Node) error {
	allTH := true
	for c := tr.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.DataAtom == atom.Td {
			allTH = false
		}
	}
	cells := append([]string(nil), w.cells...)
	if allTH && w.header == nil && len(cells) > 0 {
		w.header = cells
		return nil
	}
	return w.b.row(labelCells(w.header, cells), 0)
}

// labelCells renders a row as "header: value; …" when headers are known, else "a | b | c".
func labelCells(header, cells []string) string {
	if len(header) == 0 {
		return strings.Join(nonEmpty(cells), " | ")
	}
	parts := make([]string, 0, len(cells))
	for i, c := range cells {
		if c == "" {
			continue
		}
		if i < len(header) && header[i] != "" {
			parts = append(parts, header[i]+": "+c)
		} else {
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "; ")
}

func nonEmpty(cells []string) []string {
	out := cells[:0:0]
	for _, c := range cells {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// pre adds a pre element's text with its line breaks kept.
func (w *htmlWalker) pre(n *html.Node) error {
	var sb strings.Builder
	stack := []*html.Node{n}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Type == html.TextNode {
			sb.WriteString(c.Data)
		}
		if c.Type == html.ElementNode && c != n && w.skipped(c) {
			continue
		}
		var kids []*html.Node
		for k := c.FirstChild; k != nil; k = k.NextSibling {
			kids = append(kids, k)
		}
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, kids[i])
		}
	}
	if w.inCell {
		w.cell.WriteString(sb.String())
		return nil
	}
	return w.b.preformatted(sb.String(), 0)
}
