package knowledge

import "fmt"

func extractDOCX(b *builder, data []byte) error {
	return fmt.Errorf("%w: DOCX extraction is not built yet", ErrUnsupportedType)
}
func extractHTML(b *builder, text string) error     { return extractPlain(b, text) }
func extractMarkdown(b *builder, text string) error { return extractPlain(b, text) }
func extractCSV(b *builder, text string, comma rune) error {
	return extractPlain(b, text)
}
func extractJSON(b *builder, text string) error { return extractPlain(b, text) }
