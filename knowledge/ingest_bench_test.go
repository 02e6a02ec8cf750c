package knowledge_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// BenchmarkKnowledgeIngest measures ingestion end to end (upload, extraction, chunking,
// indexing in one transaction, the ready event) of a 4 MiB Markdown file, in MB/s of text,
// and of a 200-page PDF, in pages/s, on each database, for a base without an embedding model
// (embedding time is the provider's).
//
//	go test -run '^$' -bench BenchmarkKnowledgeIngest -benchtime=3x ./knowledge/
func BenchmarkKnowledgeIngest(b *testing.B) {
	md := benchMarkdown(4 << 20)
	pdf, pages := benchPDF(b, 200)
	for _, d := range dialects {
		b.Run(string(d)+"/markdown", func(b *testing.B) {
			secs := benchIngest(b, d, "big.md", "text/markdown", md)
			b.ReportMetric(float64(len(md))/1e6/secs, "MB/s")
		})
		b.Run(string(d)+"/pdf", func(b *testing.B) {
			secs := benchIngest(b, d, "big.pdf", "application/pdf", pdf)
			b.ReportMetric(float64(pages)/secs, "pages/s")
		})
	}
}

// benchIngest ingests the file b.N times (each a new base) and returns the mean seconds.
func benchIngest(b *testing.B, d store.Dialect, name, mediaType string, data []byte) float64 {
	st, tenant := openStore(b, d)
	ev := newEvents()
	svc := knowledge.New(knowledge.Config{Store: st, Events: ev})
	b.Cleanup(svc.Close)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		base := newBase(b, st, tenant, "")
		b.StartTimer()
		start := time.Now()
		doc, _, err := svc.Upload(context.Background(), tenant, base.ID, name, mediaType, data)
		if err != nil {
			b.Fatal(err)
		}
		if got, _ := ev.wait(b, doc.ID); got.Status != store.DocumentReady {
			b.Fatalf("%+v", got)
		}
		total += time.Since(start)
	}
	b.ReportMetric(0, "ns/op")
	return total.Seconds() / float64(b.N)
}

func benchMarkdown(size int) []byte {
	rng := rand.New(rand.NewPCG(7, 8))
	words := strings.Fields("the caller asked about refunds delivery parcels opening hours warranty claims exchanges " +
		"tracking numbers invoices accounts passwords appointments branches parking alarms lifts canteen menus")
	var sb strings.Builder
	for sec := 0; sb.Len() < size; sec++ {
		fmt.Fprintf(&sb, "# Section %d\n\n", sec)
		for p := 0; p < 12; p++ {
			for w := 0; w < 80; w++ {
				sb.WriteString(words[rng.IntN(len(words))])
				sb.WriteByte(' ')
			}
			sb.WriteString(".\n\n")
		}
	}
	return []byte(sb.String())
}

func benchPDF(b *testing.B, pages int) ([]byte, int) {
	f := fpdf.New("P", "mm", "A4", "")
	text := strings.Repeat("Refunds are issued to the original payment method within five business days. ", 30)
	for i := range pages {
		f.AddPage()
		f.SetFont("Helvetica", "B", 16)
		f.MultiCell(0, 8, fmt.Sprintf("Chapter %d", i+1), "", "L", false)
		f.SetFont("Helvetica", "", 11)
		f.MultiCell(0, 5.5, text, "", "L", false)
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), pages
}
