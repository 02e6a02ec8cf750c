package knowledge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// fuzzLimits keep one fuzz input cheap while still exercising every bound.
var fuzzLimits = Limits{MaxInputBytes: 1 << 20, MaxTextBytes: 256 << 10, MaxPages: 50, Timeout: 10 * time.Second}

// checkExtract is the property every input must hold: Extract returns (never panics), fails
// only with a classified error, and a document it returns is within the limits.
func checkExtract(t *testing.T, name, mediaType string, data []byte) {
	// Extract must honour its own deadline; one that does not return is a hang, reported
	// with every goroutine's stack so the fuzzer keeps the input.
	watchdog := time.AfterFunc(3*fuzzLimits.Timeout, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("Extract hung:\n%s", buf[:runtime.Stack(buf, true)]))
	})
	defer watchdog.Stop()
	doc, err := Extract(context.Background(), name, mediaType, data, fuzzLimits)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unclassified error: %v", err)
		}
		if doc != nil {
			t.Fatalf("document returned with error %v", err)
		}
		return
	}
	var n int64
	for _, b := range doc.Blocks {
		if b.Text == "" {
			t.Fatalf("empty %s block", b.Kind)
		}
		if b.Kind == BlockHeading && (b.Level < 1 || b.Level > 6) {
			t.Fatalf("heading level %d", b.Level)
		}
		n += int64(len(b.Text))
	}
	if n > fuzzLimits.MaxTextBytes {
		t.Fatalf("%d bytes of text past the %d limit", n, fuzzLimits.MaxTextBytes)
	}
	if doc.Pages > fuzzLimits.MaxPages {
		t.Fatalf("%d pages past the limit", doc.Pages)
	}
	// Chunking whatever came out must hold too.
	checkChunks(t, doc, ChunkDocument(doc, 200, 40), 200)
}

// uncompressedPDF is a PDF whose content streams are plain text, so mutations reach the
// content-stream interpreter instead of only breaking the deflate data.
func uncompressedPDF(t testing.TB) []byte {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCompression(false)
	f.AddPage()
	f.SetFont("Helvetica", "B", 18)
	f.Cell(40, 10, "Heading")
	f.Ln(12)
	f.SetFont("Times", "", 11)
	f.MultiCell(0, 5, "Body text (with parentheses) and a \\ backslash over two lines of the page.", "", "L", false)
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pdfSeeds(f *testing.F) {
	f.Add(makePDF(f, "t", []pdfPage{{heading: "A", paragraphs: []string{"one", "two"}}, {heading: "B"}}))
	f.Add(uncompressedPDF(f))
	f.Add([]byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[2 0 R]/Count 1>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"))
}

func FuzzExtractPDF(f *testing.F) {
	pdfSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { checkExtract(t, "f.pdf", MediaPDF, data) })
}

func FuzzExtractDOCX(f *testing.F) {
	f.Add(makeDOCX(f, docxPara("Heading2", "Title")+docxPara("", "text")+`<w:tbl><w:tr><w:tc>`+docxPara("", "cell")+`</w:tc></w:tr></w:tbl>`))
	f.Add(makeZip(f, docxPart{"word/document.xml", `<w:document ` + docxNS + `><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>`}))
	f.Fuzz(func(t *testing.T, data []byte) { checkExtract(t, "f.docx", MediaDOCX, data) })
}

func FuzzExtractHTML(f *testing.F) {
	f.Add([]byte(`<html><head><title>T</title><script>x</script></head><body><nav>n</nav><h1>H</h1><p>p<b>b</b></p><table><tr><th>a</th></tr><tr><td>1</td></tr></table><pre>x
 y</pre></body></html>`))
	f.Add([]byte(`<div><table><tr><td><table><tr><td>in</td></tr></table></td></tr></table><h2>x<p>y</h2>`))
	f.Fuzz(func(t *testing.T, data []byte) { checkExtract(t, "f.html", MediaHTML, data) })
}

func FuzzExtractMarkdown(f *testing.F) {
	f.Add([]byte("T\n==\n\n# A #\n\n- x\n- y\n  z\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```\n\n    indented\n\n[l](u) ![i](p) **b** _i_ `c`\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) { checkExtract(t, "f.md", MediaMarkdown, data) })
}

func FuzzExtractCSV(f *testing.F) {
	f.Add([]byte("a,b\n1,\"2,3\"\n\"x\ny\",z\n"))
	f.Add([]byte("a;b\n1;2\n"))
	f.Fuzz(func(t *testing.T, data []byte) { checkExtract(t, "f.csv", MediaCSV, data) })
}

func FuzzExtractJSON(f *testing.F) {
	f.Add([]byte(`{"a":{"b":{"c":{"d":1}}},"l":[1,"x",{"k":null}],"t":true}`))
	f.Add([]byte(`[{"q":"a"},[1,[2]]] {"next":1}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkExtract(t, "f.json", MediaJSON, data) })
}

// FuzzExtract drives detection: any bytes under any declared type and name.
func FuzzExtract(f *testing.F) {
	types := []string{"", "text/plain", MediaPDF, MediaDOCX, MediaHTML, MediaMarkdown, MediaCSV, MediaJSON, "image/png"}
	names := []string{"", "a.txt", "a.pdf", "a.docx", "a.html", "a.md", "a.csv", "a.json", "a.bin"}
	f.Add(uint8(0), []byte("plain words\n\nmore"))
	f.Add(uint8(1), []byte("<p>x</p>"))
	f.Add(uint8(2), makePDF(f, "", []pdfPage{{paragraphs: []string{"p"}}}))
	f.Add(uint8(3), makeDOCX(f, docxPara("", "d")))
	f.Add(uint8(4), []byte("\xff\xfeh\x00"))
	f.Add(uint8(5), []byte("{\"a\":1}"))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		checkExtract(t, names[int(sel)%len(names)], types[int(sel/16)%len(types)], data)
	})
}
