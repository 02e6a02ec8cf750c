package knowledge

import "strings"

// extractPlain reads plain text: paragraphs are separated by blank lines, and the lines of a
// paragraph are joined (text files are often hard-wrapped).
func extractPlain(b *builder, text string) error {
	for _, p := range splitParagraphs(text) {
		if err := b.paragraph(p, 0); err != nil {
			return err
		}
	}
	return nil
}

// splitParagraphs splits text at blank lines.
func splitParagraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	var cur []string
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			if len(cur) > 0 {
				out = append(out, strings.Join(cur, "\n"))
				cur = cur[:0]
			}
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, "\n"))
	}
	return out
}
