package knowledge

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// wordML is the namespace of WordprocessingML, the body of a DOCX.
const wordML = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

// extractDOCX reads a Word document: the zip's word/document.xml streamed through
// encoding/xml, paragraphs with their heading level (from the paragraph's style, resolved in
// word/styles.xml, or its outline level), and tables as rows of cells. Every part is read
// through a bound on its expanded size, so a zip bomb is ErrTooLarge before it costs memory.
func extractDOCX(b *builder, data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("%w: not a readable zip: %v", ErrCorrupt, err)
	}
	parts := map[string]*zip.File{}
	for _, f := range zr.File {
		parts[f.Name] = f
	}
	body := parts["word/document.xml"]
	if body == nil {
		return fmt.Errorf("%w: %s", ErrUnsupportedType, zipKind(parts))
	}
	limit := max(8*b.lim.MaxTextBytes, 4<<20)
	styles := map[string]int{}
	if f := parts["word/styles.xml"]; f != nil {
		if err := readPart(b, f, limit, func(d *xml.Decoder) error { return docxStyles(d, styles) }); err != nil {
			return err
		}
	}
	if f := parts["docProps/core.xml"]; f != nil {
		if err := readPart(b, f, limit, func(d *xml.Decoder) error { return docxTitle(b, d) }); err != nil {
			return err
		}
	}
	return readPart(b, body, limit, func(d *xml.Decoder) error { return docxBody(b, d, styles) })
}

func zipKind(parts map[string]*zip.File) string {
	switch {
	case parts["xl/workbook.xml"] != nil:
		return "an Excel workbook (XLSX)"
	case parts["ppt/presentation.xml"] != nil:
		return "a PowerPoint presentation (PPTX)"
	case parts["content.xml"] != nil:
		return "an OpenDocument file"
	}
	return "a zip archive without a Word document"
}

// errPartTooLarge marks the bound on a part's expanded size being reached.
var errPartTooLarge = errors.New("part too large")

// boundedReader fails once more than n bytes have been read from it.
type boundedReader struct {
	r io.Reader
	n int64
}

func (r *boundedReader) Read(p []byte) (int, error) {
	if r.n < 0 {
		return 0, errPartTooLarge
	}
	n, err := r.r.Read(p)
	r.n -= int64(n)
	if r.n < 0 {
		return n, errPartTooLarge
	}
	return n, err
}

// readPart opens one zip part and hands its XML to read, classifying what goes wrong.
func readPart(b *builder, f *zip.File, limit int64, read func(*xml.Decoder) error) error {
	if f.UncompressedSize64 > uint64(limit) {
		return fmt.Errorf("%w: %s expands to %d bytes, past %d", ErrTooLarge, f.Name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.Name, err)
	}
	defer rc.Close()
	d := xml.NewDecoder(&boundedReader{r: rc, n: limit})
	err = read(d)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errPartTooLarge):
		return fmt.Errorf("%w: %s expands past %d bytes", ErrTooLarge, f.Name, limit)
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrCorrupt), b.ctx.Err() != nil:
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.Name, err)
}

var headingStyle = regexp.MustCompile(`(?i)^heading ?([1-9])$`)

// docxStyles maps paragraph style IDs to heading levels: by the style's name ("heading 2"),
// else its outline level; "Title" is a top heading.
func docxStyles(d *xml.Decoder, levels map[string]int) error {
	var id string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != wordML {
			continue
		}
		switch se.Name.Local {
		case "style":
			id = xmlAttr(se, "styleId")
			if m := headingStyle.FindStringSubmatch(id); m != nil {
				levels[id] = int(m[1][0] - '0')
			}
			if strings.EqualFold(id, "Title") {
				levels[id] = 1
			}
		case "name":
			if m := headingStyle.FindStringSubmatch(xmlAttr(se, "val")); m != nil && id != "" {
				levels[id] = int(m[1][0] - '0')
			} else if strings.EqualFold(xmlAttr(se, "val"), "title") && id != "" {
				levels[id] = 1
			}
		case "outlineLvl":
			if n, err := strconv.Atoi(xmlAttr(se, "val")); err == nil && n >= 0 && n < 9 && id != "" {
				if _, named := levels[id]; !named {
					levels[id] = n + 1
				}
			}
		}
	}
}

func docxTitle(b *builder, d *xml.Decoder) error {
	inTitle := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			inTitle = t.Name.Local == "title"
		case xml.EndElement:
			inTitle = false
		case xml.CharData:
			if inTitle {
				if s := collapseSpace(string(t)); s != "" {
					b.doc.Title = s
				}
			}
		}
	}
}

func xmlAttr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// docxBody streams the document body into blocks.
func docxBody(b *builder, d *xml.Decoder, styles map[string]int) error {
	var (
		para       strings.Builder
		paraDepth  int
		level      int
		inText     bool
		tableDepth int
		cells      []string
		cell       strings.Builder
		inCell     bool
		title      = b.doc.Title
	)
	for {
		if err := b.check(); err != nil {
			return err
		}
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != wordML {
				continue
			}
			switch t.Name.Local {
			case "p":
				if paraDepth == 0 {
					para.Reset()
					level = 0
				}
				paraDepth++
			case "pStyle":
				if l, ok := styles[xmlAttr(t, "val")]; ok {
					level = l
				} else if m := headingStyle.FindStringSubmatch(xmlAttr(t, "val")); m != nil {
					level = int(m[1][0] - '0')
				}
			case "outlineLvl":
				if n, err := strconv.Atoi(xmlAttr(t, "val")); err == nil && n >= 0 && n < 9 && level == 0 {
					level = n + 1
				}
			case "t":
				inText = true
			case "tab":
				para.WriteByte(' ')
			case "br", "cr":
				para.WriteByte('\n')
			case "tbl":
				tableDepth++
			case "tr":
				if tableDepth == 1 {
					cells = cells[:0]
				}
			case "tc":
				if tableDepth == 1 {
					inCell = true
					cell.Reset()
				}
			}
		case xml.EndElement:
			if t.Name.Space != wordML {
				continue
			}
			switch t.Name.Local {
			case "t":
				inText = false
			case "p":
				paraDepth--
				if paraDepth > 0 {
					para.WriteByte(' ')
					continue
				}
				if inCell || tableDepth > 0 {
					cell.WriteString(para.String())
					cell.WriteByte(' ')
					continue
				}
				if level > 0 {
					if err := b.heading(level, para.String(), 0); err != nil {
						return err
					}
				} else if err := b.paragraph(para.String(), 0); err != nil {
					return err
				}
			case "tc":
				if tableDepth == 1 {
					cells = append(cells, collapseSpace(cell.String()))
					inCell = false
				}
			case "tr":
				if tableDepth == 1 {
					if err := b.row(strings.Join(nonEmpty(cells), " | "), 0); err != nil {
						return err
					}
				}
			case "tbl":
				tableDepth--
			}
		case xml.CharData:
			if inText {
				para.Write(t)
				if int64(para.Len()+cell.Len()) > b.left {
					return fmt.Errorf("%w: extracted text exceeds %d bytes", ErrTooLarge, b.lim.MaxTextBytes)
				}
			}
		}
	}
	if title != "" {
		b.doc.Title = title
	}
	return nil
}
