package knowledge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// extractJSON flattens JSON into "path: value" rows. Objects down to the third level are
// sections (a heading naming the object's path, then its rows with paths relative to it, then
// its own sections), so the chunker keeps each object together and cites it by path; deeper
// objects are flattened into their section's rows. An array of plain values is one row
// ("tags: red, green"); arrays do not add a level, except that the records of a top-level
// array are sections. Several top-level values (JSON Lines) are
// read one after another. The decoder streams, keeping the document's key order.
func extractJSON(b *builder, text string) error {
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	w := &jsonWalker{b: b, d: d}
	root := &jsonSection{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return jsonError(err)
		}
		if err := w.value(tok, "", "", 0, root); err != nil {
			return jsonError(err)
		}
	}
	root.emit(b)
	return nil
}

func jsonError(err error) error {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
		return err
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: invalid JSON at byte %d: %v", ErrCorrupt, se.Offset, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: JSON ends early", ErrCorrupt)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: invalid JSON: %v", ErrCorrupt, err)
}

// jsonSection gathers an object's rows and its sub-sections, emitted rows first so that a
// row never lands under a sibling's heading.
type jsonSection struct {
	rows     []string
	children []Block
}

func (s *jsonSection) emit(b *builder) {
	for _, r := range s.rows {
		b.doc.Blocks = append(b.doc.Blocks, Block{Kind: BlockRow, Text: r})
	}
	b.doc.Blocks = append(b.doc.Blocks, s.children...)
}

type jsonWalker struct {
	b *builder
	d *json.Decoder
}

// row adds "path: value" to a section, charging it to the text budget as it is made (paths
// repeat, so the text can outgrow the file).
func (w *jsonWalker) row(sec *jsonSection, path, value string) error {
	value = collapseSpace(value)
	s := value
	if path != "" {
		s = path + ": " + value
	}
	if err := w.b.spend(len(s)); err != nil {
		return err
	}
	sec.rows = append(sec.rows, s)
	return nil
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func scalarText(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(tok)
}

// value reads the rest of the value tok opens: abs is its path from the root (a section's
// heading), rel its path within the section its rows go to.
func (w *jsonWalker) value(tok json.Token, abs, rel string, depth int, sec *jsonSection) error {
	if err := w.b.check(); err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return w.row(sec, rel, scalarText(tok))
	}
	switch delim {
	case '{':
		target, childRel := sec, rel
		var own *jsonSection
		if depth >= 1 && depth <= 3 && abs != "" {
			own = &jsonSection{}
			target, childRel = own, ""
		}
		for w.d.More() {
			kt, err := w.d.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			vt, err := w.d.Token()
			if err != nil {
				return err
			}
			if err := w.value(vt, joinKey(abs, key), joinKey(childRel, key), depth+1, target); err != nil {
				return err
			}
		}
		if _, err := w.d.Token(); err != nil { // the closing brace
			return err
		}
		if own != nil {
			head := collapseSpace(abs)
			if err := w.b.spend(len(head)); err != nil {
				return err
			}
			sec.children = append(sec.children, Block{Kind: BlockHeading, Level: depth, Text: head})
			for _, r := range own.rows {
				sec.children = append(sec.children, Block{Kind: BlockRow, Text: r})
			}
			sec.children = append(sec.children, own.children...)
		}
	case '[':
		// Elements of a top-level array (a list of records) are sections of their own.
		elemDepth := depth
		if depth == 0 {
			elemDepth = 1
		}
		var scalars []string
		for i := 0; w.d.More(); i++ {
			et, err := w.d.Token()
			if err != nil {
				return err
			}
			if _, nested := et.(json.Delim); !nested {
				scalars = append(scalars, scalarText(et))
				continue
			}
			idx := fmt.Sprintf("[%d]", i)
			if err := w.value(et, abs+idx, rel+idx, elemDepth, sec); err != nil {
				return err
			}
		}
		if _, err := w.d.Token(); err != nil { // the closing bracket
			return err
		}
		if len(scalars) > 0 {
			return w.row(sec, rel, strings.Join(scalars, ", "))
		}
	}
	return nil
}
