package knowledge

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Ingestion throughput: Extract then ChunkDocument at the default size and overlap, the work a
// node does per uploaded document before indexing. Text formats report MB/s of the file; the
// PDF reports pages/s; each also reports its work per CPU-second of the process (MB/cpu-s,
// pages/cpu-s), the figure to compare on a shared machine.
//
//	go test -run '^$' -bench Ingest -benchmem ./knowledge/

// benchSections writes n sections of prose in the shape of a help centre: a heading, three
// paragraphs of varied sentences, a list.
func benchSections(n int, section func(i int, title string, paras []string) string) string {
	var sb strings.Builder
	for i := range n {
		paras := make([]string, 3)
		for p := range paras {
			var s []string
			for k := range 6 {
				s = append(s, fmt.Sprintf("Customers on plan %d can change their delivery address %d times before dispatch, and the agent confirms item %d of the order by reading it back.", i, p+k, k))
			}
			paras[p] = strings.Join(s, " ")
		}
		sb.WriteString(section(i, fmt.Sprintf("Section %d: deliveries and returns", i), paras))
	}
	return sb.String()
}

// benchIngest reports MB/s of textBytes: the file for the text formats, the uncompressed
// document XML for a DOCX.
func benchIngest(b *testing.B, name string, data []byte, textBytes int) {
	b.Helper()
	b.SetBytes(int64(textBytes))
	b.ReportAllocs()
	ctx := context.Background()
	chunks := 0
	cpu := processCPU()
	for b.Loop() {
		doc, err := Extract(ctx, name, "", data, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		chunks = len(ChunkDocument(doc, DefaultChunkSize, DefaultChunkOverlap))
	}
	if used := processCPU() - cpu; used > 0 {
		b.ReportMetric(float64(textBytes)*float64(b.N)/1e6/used.Seconds(), "MB/cpu-s")
	}
	b.ReportMetric(float64(chunks), "chunks/doc")
}

func BenchmarkIngestPlain(b *testing.B) {
	text := benchSections(300, func(_ int, title string, paras []string) string {
		return title + "\n\n" + strings.Join(paras, "\n\n") + "\n\n"
	})
	benchIngest(b, "a.txt", []byte(text), len(text))
}

func BenchmarkIngestMarkdown(b *testing.B) {
	text := benchSections(300, func(i int, title string, paras []string) string {
		return "## " + title + "\n\n" + strings.Join(paras, "\n\n") +
			fmt.Sprintf("\n\n- see [the **returns** page](https://example.com/r/%d)\n- call `0800 %d`\n\n", i, i)
	})
	benchIngest(b, "a.md", []byte(text), len(text))
}

func BenchmarkIngestHTML(b *testing.B) {
	page := "<!DOCTYPE html><html><head><title>Help</title><style>p{margin:0}</style><script>var x=1;</script></head><body><nav><a href=/>Home</a></nav><main>" +
		benchSections(300, func(i int, title string, paras []string) string {
			return "<h2>" + title + "</h2><p>" + strings.Join(paras, "</p>\n<p>") +
				fmt.Sprintf("</p><ul><li>see <a href=\"/r/%d\">the <b>returns</b> page</a></li></ul>", i)
		}) + "</main><footer>© Acme</footer></body></html>"
	benchIngest(b, "a.html", []byte(page), len(page))
}

func BenchmarkIngestDOCX(b *testing.B) {
	body := benchSections(300, func(_ int, title string, paras []string) string {
		s := docxPara("Heading2", title)
		for _, p := range paras {
			s += docxPara("", p)
		}
		return s
	})
	benchIngest(b, "a.docx", makeDOCX(b, body), len(body))
}

func BenchmarkIngestPDF(b *testing.B) {
	var pages []pdfPage
	for i := range 50 {
		pages = append(pages, pdfPage{heading: fmt.Sprintf("Chapter %d", i+1), paragraphs: []string{longPara, longPara, longPara, longPara, longPara}})
	}
	data := makePDF(b, "Handbook", pages)
	b.ReportAllocs()
	ctx := context.Background()
	n := 0
	cpu := processCPU()
	for b.Loop() {
		doc, err := Extract(ctx, "a.pdf", "", data, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		ChunkDocument(doc, DefaultChunkSize, DefaultChunkOverlap)
		n += doc.Pages
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pages/s")
	if used := processCPU() - cpu; used > 0 {
		b.ReportMetric(float64(n)/used.Seconds(), "pages/cpu-s")
	}
}
