package knowledge

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// xrefStreamPDF writes a PDF 1.5 whose objects 2 and 3 each claim to live in the other's
// object stream; the catalog's page tree is object 2.
func xrefStreamPDF() []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n")
	off1 := b.Len()
	b.WriteString("1 0 obj <</Type/Catalog/Pages 2 0 R>> endobj\n")
	rows := [][3]byte{{0, 0, 0}, {1, byte(off1), 0}, {2, 3, 0}, {2, 2, 0}, {1, 0, 0}}
	off4 := b.Len()
	rows[4] = [3]byte{1, byte(off4), 0}
	var data []byte
	for _, r := range rows {
		data = append(data, r[:]...)
	}
	fmt.Fprintf(&b, "4 0 obj <</Type/XRef/Size 5/W[1 1 1]/Root 1 0 R/Length %d>>stream\n", len(data))
	b.Write(data)
	b.WriteString("\nendstream endobj\n")
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", off4)
	return b.Bytes()
}

func TestExtractPDFHostileStructure(t *testing.T) {
	plain := uncompressedPDF(t)
	startxref := regexp.MustCompile(`startxref\s+(\d+)`).FindSubmatch(plain)[1]
	loop := bytes.Replace(plain, []byte("trailer\n<<"), []byte("trailer\n<<\n/Prev "+string(startxref)), 1)
	huge := regexp.MustCompile(`xref\n0 `).ReplaceAll(plain, []byte("xref\n99999990 "))
	cases := []struct {
		name  string
		data  []byte
		about string
	}{
		{"xref chain loops", loop, "loops"},
		{"xref subsection far past the file", huge, "proportion"},
		{"object streams inside each other", xrefStreamPDF(), "itself in an object stream"},
		{"startxref past the end", bytes.Replace(plain, startxref, []byte("99999999"), 1), "past the end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Extract(context.Background(), "f.pdf", "", c.data, Limits{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.about) {
				t.Fatalf("err = %v, want ErrCorrupt about %q", err, c.about)
			}
		})
	}
	// The structures the check walks, when sound, read as before: an xref table (fpdf) and a
	// PDF 2.0 header.
	v2 := append([]byte("%PDF-2.0"), plain[len("%PDF-1.3"):]...)
	doc := extractOK(t, "v2.pdf", "", v2)
	if len(doc.Blocks) == 0 || doc.Blocks[0].Text != "Heading" {
		t.Fatalf("PDF 2.0 blocks %v", blockTexts(doc))
	}
}

// modernPDF writes a one-page PDF the way current writers do: the page's objects in an
// object stream and a compressed cross-reference stream with the PNG Up predictor.
func modernPDF(t *testing.T, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := map[int]int{}
	content := "BT /F1 12 Tf 72 720 Td (" + text + ") Tj ET"
	// Objects 1-3 and 5 live in object stream 6; the content stream 4 is a plain object.
	objs := map[int]string{
		1: "<</Type/Catalog/Pages 2 0 R>>",
		2: "<</Type/Pages/Kids[3 0 R]/Count 1>>",
		3: "<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R>>",
		5: "<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
	}
	var head, body bytes.Buffer
	order := []int{1, 2, 3, 5}
	for _, n := range order {
		fmt.Fprintf(&head, "%d %d ", n, body.Len())
		body.WriteString(objs[n] + "\n")
	}
	offsets[4] = b.Len()
	fmt.Fprintf(&b, "4 0 obj <</Length %d>>stream\n%s\nendstream endobj\n", len(content), content)
	offsets[6] = b.Len()
	fmt.Fprintf(&b, "6 0 obj <</Type/ObjStm/N %-10d/First %d/Length %d>>stream\n%s%s\nendstream endobj\n",
		len(order), head.Len(), head.Len()+body.Len(), head.String(), body.String())
	offsets[7] = b.Len()
	// Rows of W [1 2 1]: type, offset or object stream, generation or index.
	row := func(typ, f2, f3 int) []byte { return []byte{byte(typ), byte(f2 >> 8), byte(f2), byte(f3)} }
	rows := [][]byte{row(0, 0, 255)}
	for n := 1; n <= 7; n++ {
		switch n {
		case 4, 6, 7:
			rows = append(rows, row(1, offsets[n], 0))
		default:
			idx := 0
			for i, m := range order {
				if m == n {
					idx = i
				}
			}
			rows = append(rows, row(2, 6, idx))
		}
	}
	// PNG Up predictor, then Flate.
	var filtered []byte
	prior := make([]byte, 4)
	for _, r := range rows {
		filtered = append(filtered, 2)
		for i := range r {
			filtered = append(filtered, r[i]-prior[i])
		}
		prior = r
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	if _, err := zw.Write(filtered); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	fmt.Fprintf(&b, "7 0 obj <</Type/XRef/Size 8/W[1 2 1]/Root 1 0 R/Filter/FlateDecode/DecodeParms<</Predictor 12/Columns 4>>/Length %d>>stream\n", z.Len())
	b.Write(z.Bytes())
	b.WriteString("\nendstream endobj\n")
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", offsets[7])
	return b.Bytes()
}

func TestExtractPDFCrossReferenceStream(t *testing.T) {
	doc := extractOK(t, "modern.pdf", "", modernPDF(t, "Hello from an object stream"))
	if got := blockTexts(doc); len(got) != 1 || got[0] != "paragraph@1: Hello from an object stream" {
		t.Fatalf("blocks %q", got)
	}
	// An object stream claiming a billion objects: the library would read for minutes.
	huge := bytes.Replace(modernPDF(t, "x"), []byte("/ObjStm/N 4         "), []byte("/ObjStm/N 9999999999"), 1)
	if _, err := Extract(context.Background(), "f.pdf", "", huge, Limits{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "claims") {
		t.Fatalf("err = %v", err)
	}
}

// handPDF writes a PDF with a classic xref table from object bodies (object n is objs[n-1]);
// object 1 is the catalog.
func handPDF(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func handStream(s string) string {
	return fmt.Sprintf("<</Length %d>>\nstream\n%s\nendstream", len(s), s)
}

// onePage is a catalog, a page tree and a page whose content is object 4 and whose font F1
// (object 5) has the ToUnicode CMap in object 6.
func onePage(content, cmap string) []byte {
	return handPDF(
		"<</Type/Catalog/Pages 2 0 R>>",
		"<</Type/Pages/Kids[3 0 R]/Count 1>>",
		"<</Type/Page/Parent 2 0 R/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R>>",
		handStream(content),
		"<</Type/Font/Subtype/Type0/BaseFont/X/Encoding/Identity-H/ToUnicode 6 0 R>>",
		handStream(cmap),
	)
}

func TestExtractPDFOperandFloods(t *testing.T) {
	okCMap := "/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfchar <41> <0042> endbfchar endcmap CMapName currentdict /CMap defineresource pop end end"
	doc := extractOK(t, "ok.pdf", "", onePage("BT /F1 12 Tf 72 720 Td (A) Tj ET", okCMap))
	if got := blockTexts(doc); len(got) != 1 || got[0] != "paragraph@1: B" {
		t.Fatalf("the CMap was not applied: %q", got)
	}
	flood := strings.Repeat("1 ", maxPDFOperands+10)
	cases := []struct{ name, content, cmap, about string }{
		{"operands without an operator", "BT " + flood + "ET", okCMap, "operands"},
		{"a CMap block announcing a billion entries", "BT /F1 12 Tf (A) Tj ET", strings.Replace(okCMap, "1 beginbfchar", "999999999 beginbfchar", 1), "CMap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Extract(context.Background(), "f.pdf", "", onePage(c.content, c.cmap), Limits{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.about) {
				t.Fatalf("err = %v, want ErrCorrupt about %q", err, c.about)
			}
		})
	}
	// Inline image data and strings hide nothing from the count, and are not counted.
	img := "q BI /W 4 /H 1 /CS /G /BPC 8 ID \x00\x01EI\x02\x03 EI Q BT /F1 12 Tf 72 720 Td (A) Tj ET"
	if doc := extractOK(t, "img.pdf", "", onePage(img, okCMap)); len(doc.Blocks) != 1 {
		t.Fatalf("inline image page: %q", blockTexts(doc))
	}
}

func TestExtractPDFParentLoop(t *testing.T) {
	// The page's parent is a page tree whose parent is itself, and no one has resources.
	data := handPDF(
		"<</Type/Catalog/Pages 2 0 R>>",
		"<</Type/Pages/Kids[3 0 R]/Count 1/Parent 2 0 R>>",
		"<</Type/Page/Parent 2 0 R/Contents 4 0 R>>",
		handStream("BT (A) Tj ET"),
	)
	_, err := Extract(context.Background(), "f.pdf", "", data, Limits{Timeout: 30 * time.Second})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "parent chain") {
		t.Fatalf("err = %v", err)
	}
}

// hex2 encodes ASCII text as the two-byte codes of an Identity-H font.
func hex2(s string) string {
	var b strings.Builder
	b.WriteByte('<')
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, "%04X", c)
	}
	b.WriteByte('>')
	return b.String()
}

// TestExtractPDFKernedRuns lays text out as Chromium's PDF writer (Skia) does: a composite
// font with two-byte codes and a ToUnicode CMap, a flipped coordinate system, and each word
// cut into runs at kerning pairs, the runs placed with Td exactly where the last one ended.
// Only a real gap between runs is a space.
func TestExtractPDFKernedRuns(t *testing.T) {
	cmap := "/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <0000> <FFFF> endcodespacerange 1 beginbfrange <0020> <007E> <0020> endbfrange endcmap CMapName currentdict /CMap defineresource pop end end"
	// Every glyph is half the font size wide, a space a quarter: at 16 pt, "Or" is 16 wide.
	content := ".75 0 0 -.75 0 792 cm BT /F1 16 Tf 1 0 0 -1 8 38 Tm " +
		hex2("Or") + " Tj 16 0 Td " + hex2("ders placed bef") + " Tj 112 0 Td " + hex2("ore") + " Tj " +
		"32 0 Td " + hex2("noon.") + " Tj ET " +
		"BT /F1 16 Tf 1 0 0 -1 8 58 Tm [" + hex2("Ne") + " 0 " + hex2("xt") + " -600 " + hex2("line") + "] TJ ET"
	data := handPDF(
		"<</Type/Catalog/Pages 2 0 R>>",
		"<</Type/Pages/Kids[3 0 R]/Count 1>>",
		"<</Type/Page/Parent 2 0 R/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R>>",
		handStream(content),
		"<</Type/Font/Subtype/Type0/BaseFont/X/Encoding/Identity-H/DescendantFonts[7 0 R]/ToUnicode 6 0 R>>",
		handStream(cmap),
		"<</Type/Font/Subtype/CIDFontType2/BaseFont/X/DW 500/W[32 [250] 33 126 500]>>",
	)
	doc := extractOK(t, "chrome.pdf", "", data)
	if got := blockTexts(doc); len(got) != 1 || got[0] != "paragraph@1: Orders placed before noon. Next line" {
		t.Fatalf("blocks %q", got)
	}
}
