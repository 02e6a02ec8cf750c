package api

import (
	"context"
	"errors"
	"strings"

	"github.com/switchboard-go/switchboard/knowledge"
)

// extractDocument is the text of a document part as package knowledge extracts it (PDF,
// plain text, Markdown, HTML, DOCX…), its blocks in reading order, a blank line apart. The
// error says, for the client, why there is none.
func extractDocument(ctx context.Context, name, mediaType string, data []byte) (string, error) {
	doc, err := knowledge.Extract(ctx, name, mediaType, data, knowledge.Limits{MaxTextBytes: 4 * maxDocumentChars})
	switch {
	case errors.Is(err, knowledge.ErrUnsupportedType):
		return "", errors.New(mediaType + " is not a document type Switchboard reads text from (PDF, DOCX, HTML, Markdown, plain text, CSV, JSON)")
	case errors.Is(err, knowledge.ErrTooLarge):
		return "", errors.New("it is too large: " + strings.TrimPrefix(err.Error(), "knowledge: "))
	case err != nil:
		return "", errors.New(strings.TrimPrefix(err.Error(), "knowledge: "))
	}
	var b strings.Builder
	for i, bl := range doc.Blocks {
		if i > 0 {
			b.WriteString("\n\n")
		}
		if bl.Kind == knowledge.BlockHeading {
			b.WriteString(strings.Repeat("#", max(bl.Level, 1)) + " ")
		}
		b.WriteString(bl.Text)
	}
	return b.String(), nil
}
