package knowledge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"codeberg.org/go-pdf/fpdf"
)

// pdfPage is the content of one page of a test PDF: a heading, then paragraphs.
type pdfPage struct {
	heading    string
	paragraphs []string
}

// makePDF writes a real PDF with fpdf: a 20 pt bold heading and 11 pt body text wrapped by
// MultiCell on every page, as a word processor would lay it out.
func makePDF(t testing.TB, title string, pages []pdfPage) []byte {
	t.Helper()
	f := fpdf.New("P", "mm", "A4", "")
	f.SetTitle(title, true)
	for _, p := range pages {
		f.AddPage()
		if p.heading != "" {
			f.SetFont("Helvetica", "B", 20)
			f.MultiCell(0, 10, p.heading, "", "L", false)
			f.Ln(4)
		}
		f.SetFont("Helvetica", "", 11)
		for _, para := range p.paragraphs {
			f.MultiCell(0, 5.5, para, "", "L", false)
			f.Ln(5)
		}
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		t.Fatalf("fpdf: %v", err)
	}
	return buf.Bytes()
}

func extractOK(t *testing.T, name, mediaType string, data []byte) *Document {
	t.Helper()
	doc, err := Extract(context.Background(), name, mediaType, data, Limits{})
	if err != nil {
		t.Fatalf("Extract(%q, %q): %v", name, mediaType, err)
	}
	return doc
}

// blockTexts renders blocks as "kind/level@page: text" lines for comparison.
func blockTexts(doc *Document) []string {
	var out []string
	for _, b := range doc.Blocks {
		s := b.Kind
		if b.Kind == BlockHeading {
			s += "/" + string(rune('0'+b.Level))
		}
		if b.Page > 0 {
			s += "@" + string(rune('0'+b.Page))
		}
		out = append(out, s+": "+b.Text)
	}
	return out
}

func wantBlocks(t *testing.T, doc *Document, want []string) {
	t.Helper()
	got := blockTexts(doc)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("blocks:\n got %q\nwant %q", got, want)
	}
}

const longPara = "Refunds are issued to the original payment method within five business days. " +
	"A customer who paid by bank transfer receives the refund by bank transfer, and the agent " +
	"reads the reference number back so the caller can quote it to their bank if it is late."

func TestExtractPDF(t *testing.T) {
	data := makePDF(t, "Support handbook", []pdfPage{
		{heading: "Opening hours", paragraphs: []string{
			"The help desk answers calls from eight in the morning to six in the evening.",
			"On public holidays calls go to voicemail.",
		}},
		{heading: "Refunds", paragraphs: []string{longPara}},
	})
	// Declared as octet-stream with no extension: the content decides.
	doc := extractOK(t, "upload", "application/octet-stream", data)
	if doc.MediaType != MediaPDF || doc.Pages != 2 || doc.Title != "Support handbook" {
		t.Fatalf("document: type %q pages %d title %q", doc.MediaType, doc.Pages, doc.Title)
	}
	wantBlocks(t, doc, []string{
		"heading/1@1: Opening hours",
		"paragraph@1: The help desk answers calls from eight in the morning to six in the evening.",
		"paragraph@1: On public holidays calls go to voicemail.",
		"heading/1@2: Refunds",
		"paragraph@2: " + longPara,
	})
}

func TestExtractPDFErrors(t *testing.T) {
	good := makePDF(t, "x", []pdfPage{{heading: "A", paragraphs: []string{"one two three"}}})
	cases := []struct {
		name  string
		data  []byte
		lim   Limits
		want  error
		about string
	}{
		{"truncated", good[:len(good)/2], Limits{}, ErrCorrupt, ""},
		{"garbage after header", append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 300)...), Limits{}, ErrCorrupt, ""},
		{"no header", bytes.Repeat([]byte{0x00, 0x9c, 0xfe}, 500), Limits{}, ErrCorrupt, "signature"},
		{"too many pages", makePDF(t, "x", []pdfPage{{heading: "A"}, {heading: "B"}, {heading: "C"}}), Limits{MaxPages: 2}, ErrTooLarge, "pages"},
		{"too much text", good, Limits{MaxTextBytes: 5}, ErrTooLarge, "text"},
		{"too big", good, Limits{MaxInputBytes: 100}, ErrTooLarge, "bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Extract(context.Background(), "f.pdf", MediaPDF, c.data, c.lim)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.about) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.want, c.about)
			}
		})
	}
}

func TestExtractPDFDropsRunningHeadersAndFooters(t *testing.T) {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetHeaderFunc(func() {
		f.SetFont("Helvetica", "", 9)
		f.CellFormat(0, 8, "Acme support handbook", "", 1, "R", false, 0, "")
	})
	f.SetFooterFunc(func() {
		f.SetY(-15)
		f.SetFont("Helvetica", "", 9)
		f.CellFormat(0, 8, fmt.Sprintf("Page %d", f.PageNo()), "", 0, "C", false, 0, "")
	})
	for i := range 4 {
		f.AddPage()
		f.SetFont("Helvetica", "", 11)
		f.MultiCell(0, 5.5, fmt.Sprintf("Body of page %d.", i+1), "", "L", false)
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		t.Fatal(err)
	}
	doc := extractOK(t, "h.pdf", "", buf.Bytes())
	wantBlocks(t, doc, []string{
		"paragraph@1: Body of page 1.", "paragraph@2: Body of page 2.",
		"paragraph@3: Body of page 3.", "paragraph@4: Body of page 4.",
	})
}

func TestExtractPDFKeepsNumberedHeadingsAtopPages(t *testing.T) {
	var pages []pdfPage
	for i := range 5 {
		pages = append(pages, pdfPage{heading: fmt.Sprintf("Chapter %d", i+1), paragraphs: []string{longPara}})
	}
	doc := extractOK(t, "a.pdf", "", makePDF(t, "x", pages))
	headings := 0
	for _, b := range doc.Blocks {
		if b.Kind == BlockHeading {
			headings++
		}
	}
	if headings != 5 {
		t.Fatalf("%d headings: %q", headings, blockTexts(doc))
	}
}
