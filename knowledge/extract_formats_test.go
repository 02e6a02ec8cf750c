package knowledge

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExtractMarkdown(t *testing.T) {
	md := "Billing guide\n=============\n\n" +
		"Read this before you call [support](https://example.com/support).\n" +
		"It is **short**.\n\n" +
		"## Plans\n\n" +
		"- Basic: *one* line\n- Pro: two lines\n  and a continuation\n\n" +
		"| Plan | Price |\n|------|------:|\n| Basic | 10 |\n| Pro | 25 |\n\n" +
		"Refund policy\n-------------\n\n" +
		"```\ncurl -X POST /refunds\n  --data '{\"id\": 1}'\n```\n\n" +
		"![diagram of the refund flow](flow.png)\n\n" +
		"### Deep # detail ###\n\nLast `words`.\n"
	doc := extractOK(t, "guide.md", "", []byte(md))
	if doc.MediaType != MediaMarkdown || doc.Title != "Billing guide" {
		t.Fatalf("type %q title %q", doc.MediaType, doc.Title)
	}
	wantBlocks(t, doc, []string{
		"heading/1: Billing guide",
		"paragraph: Read this before you call support. It is short.",
		"heading/2: Plans",
		"paragraph: - Basic: one line\n- Pro: two lines and a continuation",
		"row: Plan | Price",
		"row: Basic | 10",
		"row: Pro | 25",
		"heading/2: Refund policy",
		"paragraph: curl -X POST /refunds\n  --data '{\"id\": 1}'",
		"paragraph: diagram of the refund flow",
		"heading/3: Deep # detail",
		"paragraph: Last words.",
	})
}

func TestExtractHTML(t *testing.T) {
	page := `<!DOCTYPE html><html><head><title>Acme help centre</title>
<style>body { color: red } .secret { display: none }</style>
<script>var tracking = "do not index me";</script></head>
<body>
<header><a href="/">Acme</a> <a href="/login">Log in</a></header>
<nav><ul><li><a href="/a">Home</a></li><li><a href="/b">Pricing</a></li></ul></nav>
<main>
<h1>Delivery times</h1>
<p>Orders placed before <b>noon</b> ship the same day.
   Orders after noon ship the next working day.</p>
<div role="navigation">Breadcrumbs &gt; Help</div>
<h2>By region</h2>
<table><tr><th>Region</th><th>Days</th></tr>
<tr><td>Europe</td><td>2</td></tr><tr><td>Asia</td><td>5</td></tr></table>
<pre>tracking code:
  ACME-1234</pre>
<p hidden>Hidden text</p>
<noscript>Enable JavaScript</noscript>
<h3>Returns</h3><ul><li>Within 30 days</li><li>Unused items only<img src="x.png" alt="box"></li></ul>
</main>
<footer>© Acme 2026 · Privacy</footer>
<script>console.log("bye")</script>
</body></html>`
	// Declared as text/plain: the content is plainly HTML, so it is read as HTML.
	doc := extractOK(t, "page", "text/plain; charset=utf-8", []byte(page))
	if doc.MediaType != MediaHTML || doc.Title != "Acme help centre" {
		t.Fatalf("type %q title %q", doc.MediaType, doc.Title)
	}
	wantBlocks(t, doc, []string{
		"heading/1: Delivery times",
		"paragraph: Orders placed before noon ship the same day. Orders after noon ship the next working day.",
		"heading/2: By region",
		"row: Region: Europe; Days: 2",
		"row: Region: Asia; Days: 5",
		"paragraph: tracking code:\n  ACME-1234",
		"heading/3: Returns",
		"paragraph: Within 30 days",
		"paragraph: Unused items only box",
	})
	for _, noise := range []string{"tracking =", "color", "Log in", "Pricing", "Breadcrumbs", "Hidden", "JavaScript", "Privacy", "bye"} {
		for _, b := range doc.Blocks {
			if strings.Contains(b.Text, noise) {
				t.Errorf("block %q holds page furniture %q", b.Text, noise)
			}
		}
	}
}

// docxPart is a file of a DOCX zip.
type docxPart struct{ name, body string }

func makeZip(t testing.TB, parts ...docxPart) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		w, err := zw.Create(p.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(p.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const docxNS = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"`

func docxPara(style, text string) string {
	ppr := ""
	if style != "" {
		ppr = `<w:pPr><w:pStyle w:val="` + style + `"/></w:pPr>`
	}
	return `<w:p>` + ppr + `<w:r><w:t>` + text + `</w:t></w:r></w:p>`
}

// makeDOCX writes a minimal real Word document: content types, styles (a heading style with
// a localised ID, as Word writes in German), core properties and the body.
func makeDOCX(t testing.TB, body string) []byte {
	t.Helper()
	return makeZip(t,
		docxPart{"[Content_Types].xml", `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		docxPart{"word/styles.xml", `<?xml version="1.0"?><w:styles ` + docxNS + `>` +
			`<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>` +
			`<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>` +
			`<w:style w:type="paragraph" w:styleId="Quote"><w:name w:val="Quote"/></w:style></w:styles>`},
		docxPart{"docProps/core.xml", `<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Staff handbook</dc:title></cp:coreProperties>`},
		docxPart{"word/document.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + docxNS + `><w:body>` + body + `</w:body></w:document>`},
	)
}

func TestExtractDOCX(t *testing.T) {
	body := docxPara("berschrift1", "Leave") +
		docxPara("", "Staff take 25 days of leave a year.") +
		`<w:p><w:r><w:t xml:space="preserve">Ask your </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>manager</w:t></w:r><w:r><w:tab/><w:t>first.</w:t></w:r><w:r><w:delText>deleted words</w:delText></w:r></w:p>` +
		docxPara("Heading2", "Carry-over") +
		`<w:tbl><w:tr><w:tc>` + docxPara("", "Year") + `</w:tc><w:tc>` + docxPara("", "Days") + `</w:tc></w:tr>` +
		`<w:tr><w:tc>` + docxPara("", "2025") + `</w:tc><w:tc>` + docxPara("", "5") + docxPara("", "at most") + `</w:tc></w:tr></w:tbl>` +
		docxPara("Quote", "Rest well.") +
		`<w:p><w:pPr><w:outlineLvl w:val="2"/></w:pPr><w:r><w:t>Outline heading</w:t></w:r></w:p>`
	doc := extractOK(t, "handbook.docx", "application/octet-stream", makeDOCX(t, body))
	if doc.MediaType != MediaDOCX || doc.Title != "Staff handbook" {
		t.Fatalf("type %q title %q", doc.MediaType, doc.Title)
	}
	wantBlocks(t, doc, []string{
		"heading/1: Leave",
		"paragraph: Staff take 25 days of leave a year.",
		"paragraph: Ask your manager first.",
		"heading/2: Carry-over",
		"row: Year | Days",
		"row: 2025 | 5 at most",
		"paragraph: Rest well.",
		"heading/3: Outline heading",
	})
}

func TestExtractCSVAndJSON(t *testing.T) {
	csvDoc := extractOK(t, "people.csv", "text/csv", []byte("name,city,note\nAda,London,\"likes, commas\"\nGrace,,\"two\nlines\"\n"))
	wantBlocks(t, csvDoc, []string{
		"row: name: Ada; city: London; note: likes, commas",
		"row: name: Grace; note: two lines",
	})
	semi := extractOK(t, "prices.csv", "", []byte("product;price\nTea;2,50\n"))
	wantBlocks(t, semi, []string{"row: product: Tea; price: 2,50"})
	tsv := extractOK(t, "t.tsv", "", []byte("a\tb\n1\t2\n"))
	wantBlocks(t, tsv, []string{"row: a: 1; b: 2"})

	js := `{"company":"Acme","tags":["fast","cheap"],
	  "support":{"phone":"+44 20 7946 0000","hours":{"weekdays":"8-18","weekend":null},
	     "escalation":{"level":2,"contact":{"name":"Kim","deep":{"x":true}}}},
	  "faqs":[{"q":"Refunds?","a":"Five days."},{"q":"Shipping?","a":"Two days."}],
	  "version":3}`
	doc := extractOK(t, "kb.json", "application/json", []byte(js))
	if doc.MediaType != MediaJSON {
		t.Fatalf("type %q", doc.MediaType)
	}
	wantBlocks(t, doc, []string{
		"row: company: Acme",
		"row: tags: fast, cheap",
		"row: version: 3",
		"heading/1: support",
		"row: phone: +44 20 7946 0000",
		"heading/2: support.hours",
		"row: weekdays: 8-18",
		"row: weekend: null",
		"heading/2: support.escalation",
		"row: level: 2",
		"heading/3: support.escalation.contact",
		"row: name: Kim",
		"row: deep.x: true",
		"heading/1: faqs[0]",
		"row: q: Refunds?",
		"row: a: Five days.",
		"heading/1: faqs[1]",
		"row: q: Shipping?",
		"row: a: Two days.",
	})
	records := extractOK(t, "list.json", "", []byte(`[{"id":1},{"id":2}]`))
	wantBlocks(t, records, []string{"heading/1: [0]", "row: id: 1", "heading/1: [1]", "row: id: 2"})
}

func TestExtractDetection(t *testing.T) {
	pdfData := makePDF(t, "", []pdfPage{{paragraphs: []string{"Hello from a PDF"}}})
	cases := []struct {
		name, file, declared string
		data                 []byte
		want                 string
	}{
		{"pdf declared as text", "notes.txt", "text/plain", pdfData, MediaPDF},
		{"pdf after junk", "x", "", append([]byte("junk\n"), pdfData...), MediaPDF},
		{"text that mentions a pdf header", "notes.md", "", []byte("# PDFs\n\nA PDF starts with %PDF-1.7 and a line break."), MediaMarkdown},
		{"html declared as pdf", "page.pdf", "application/pdf", []byte("<!doctype html><p>hi</p>"), MediaHTML},
		{"markdown by name", "README.md", "text/plain", []byte("# Title\n\ntext"), MediaMarkdown},
		{"markdown keeps leading html", "README.md", "", []byte("<p align=center>logo</p>\n\n# Title"), MediaMarkdown},
		{"json sniffed", "data", "", []byte(` {"a": 1}`), MediaJSON},
		{"json declared but prose", "x.json", "application/json", []byte("just words"), MediaPlain},
		{"plain", "x", "", []byte("just words"), MediaPlain},
		{"declared type with parameters", "x", "text/markdown; charset=utf-8", []byte("# T"), MediaMarkdown},
		{"utf-16", "u.txt", "", append([]byte{0xff, 0xfe}, []byte("h\x00i\x00")...), MediaPlain},
		{"latin-1", "l.txt", "", []byte("caf\xe9 cr\xe8me"), MediaPlain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := extractOK(t, c.file, c.declared, c.data)
			if doc.MediaType != c.want {
				t.Fatalf("read as %q, want %q", doc.MediaType, c.want)
			}
		})
	}
	if doc := extractOK(t, "l.txt", "", []byte("caf\xe9 cr\xe8me \x93quoted\x94 \x96 dash")); doc.Blocks[0].Text != "café crème “quoted” – dash" {
		t.Fatalf("latin-1 text %q", doc.Blocks[0].Text)
	}
	if doc := extractOK(t, "u.txt", "", append([]byte{0xff, 0xfe}, []byte("h\x00i\x00")...)); doc.Blocks[0].Text != "hi" {
		t.Fatalf("utf-16 text %q", doc.Blocks[0].Text)
	}
	if doc := extractOK(t, "empty.txt", "", nil); len(doc.Blocks) != 0 {
		t.Fatalf("empty file has blocks %v", doc.Blocks)
	}
}

func TestExtractRejects(t *testing.T) {
	good := makeDOCX(t, docxPara("", "hello"))
	// A zip bomb: a document.xml of 64 MiB of spaces, a few hundred KiB compressed.
	bomb := makeDOCX(t, docxPara("", "x"+strings.Repeat(" ", 64<<20)))
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{1, 2, 3, 0}, 100)...)
	elf := append([]byte("\x7fELF\x02\x01\x01\x00"), bytes.Repeat([]byte{0, 0xff}, 200)...)
	cases := []struct {
		name, file, declared string
		data                 []byte
		lim                  Limits
		want                 error
		about                string
	}{
		{"truncated docx", "a.docx", MediaDOCX, good[:len(good)-40], Limits{}, ErrCorrupt, "zip"},
		{"zip bomb docx", "a.docx", MediaDOCX, bomb, Limits{MaxTextBytes: 1 << 20}, ErrTooLarge, "expands"},
		{"spreadsheet", "a.xlsx", "", makeZip(t, docxPart{"xl/workbook.xml", "<workbook/>"}), Limits{}, ErrUnsupportedType, "XLSX"},
		{"broken docx xml", "a.docx", "", makeZip(t, docxPart{"word/document.xml", "<w:document><w:body>"}), Limits{}, ErrCorrupt, "document.xml"},
		{"png", "a.png", "image/png", png, Limits{}, ErrUnsupportedType, "image/png"},
		{"elf declared as text", "a.txt", "text/plain", elf, Limits{}, ErrUnsupportedType, ""},
		{"binary declared as pdf", "a.pdf", "", elf, Limits{}, ErrCorrupt, "PDF signature"},
		{"broken json", "a.json", "", []byte(`{"a": [1, 2`), Limits{}, ErrCorrupt, "JSON"},
		{"invalid json", "a.json", "", []byte(`{"a": nope}`), Limits{}, ErrCorrupt, "JSON"},
		{"text too large", "a.txt", "", []byte(strings.Repeat("word ", 100)), Limits{MaxTextBytes: 50}, ErrTooLarge, "text"},
		{"html too large", "a.html", "", []byte("<p>" + strings.Repeat("word ", 100)), Limits{MaxTextBytes: 50}, ErrTooLarge, "text"},
		{"json paths too large", "a.json", "", []byte(`{"a":{"b":{"c":{"d":[[[[1,2,3,4,5,6,7,8,9]]]]}}}}`), Limits{MaxTextBytes: 20}, ErrTooLarge, "text"},
		{"input too large", "a.txt", "", []byte("0123456789"), Limits{MaxInputBytes: 9}, ErrTooLarge, "limit is 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := Extract(context.Background(), c.file, c.declared, c.data, c.lim)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.about) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.want, c.about)
			}
			if doc != nil {
				t.Fatalf("a failed extraction returned a document")
			}
		})
	}
}

func TestExtractDeadline(t *testing.T) {
	big := []byte(strings.Repeat("a line of text\n\n", 200000))
	_, err := Extract(context.Background(), "a.txt", "", big, Limits{Timeout: time.Nanosecond})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("own deadline: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Extract(ctx, "a.txt", "", big, Limits{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTooLarge) {
		t.Fatalf("caller's cancel: %v", err)
	}
}
