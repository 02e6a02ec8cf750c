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
	fmt.Fprintf(&b, "6 0 obj <</Type/ObjStm/N %d/First %d/Length %d>>stream\n%s%s\nendstream endobj\n",
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
	zw.Write(filtered)
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
}
