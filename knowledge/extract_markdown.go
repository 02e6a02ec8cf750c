package knowledge

import (
	"regexp"
	"strings"
)

// extractMarkdown reads Markdown line by line: ATX (#) and setext (=== / ---) headings,
// paragraphs between blank lines, fenced and indented code kept as text with its line breaks,
// lists kept one item a line, pipe tables as rows; inline markup is reduced to its text (a
// link to its text, an image to its alt text, emphasis and code marks dropped).
func extractMarkdown(b *builder, text string) error {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var para []string
	list := false
	flush := func() error {
		if len(para) == 0 {
			return nil
		}
		var err error
		if list {
			err = b.preformatted(strings.Join(para, "\n"), 0)
		} else {
			err = b.paragraph(strings.Join(para, " "), 0)
		}
		para, list = para[:0], false
		return err
	}
	for i := 0; i < len(lines); i++ {
		if err := b.check(); err != nil {
			return err
		}
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			if err := flush(); err != nil {
				return err
			}
			continue
		case isFence(trimmed):
			if err := flush(); err != nil {
				return err
			}
			fence := trimmed[:3]
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), fence); i++ {
				code = append(code, lines[i])
			}
			if err := b.preformatted(strings.Join(code, "\n"), 0); err != nil {
				return err
			}
			continue
		case len(para) == 0 && strings.HasPrefix(line, "    "):
			// Indented code, which cannot interrupt a paragraph.
			var code []string
			for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.TrimSpace(lines[i]) == ""); i++ {
				code = append(code, lines[i])
			}
			i--
			if err := b.preformatted(strings.Join(code, "\n"), 0); err != nil {
				return err
			}
			continue
		}
		if level, title, ok := atxHeading(trimmed); ok {
			if err := flush(); err != nil {
				return err
			}
			if err := b.heading(level, inlineText(title), 0); err != nil {
				return err
			}
			continue
		}
		if level := setextUnderline(trimmed); level > 0 && len(para) > 0 && !list {
			title := strings.Join(para, " ")
			para = para[:0]
			if err := b.heading(level, inlineText(title), 0); err != nil {
				return err
			}
			continue
		}
		if isThematicBreak(trimmed) {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(trimmed, "|") {
			if err := flush(); err != nil {
				return err
			}
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				cells := tableCells(strings.TrimSpace(lines[i]))
				if cells == nil {
					continue // the |---|---| line under a header
				}
				if err := b.row(strings.Join(cells, " | "), 0); err != nil {
					return err
				}
			}
			i--
			continue
		}
		if isListItem(trimmed) {
			if !list {
				if err := flush(); err != nil {
					return err
				}
				list = true
			}
			para = append(para, inlineText(trimmed))
			continue
		}
		trimmed = strings.TrimLeft(trimmed, "> ") // block quotes read as text
		if list {
			// A continuation line of a list item.
			para[len(para)-1] += " " + inlineText(trimmed)
			continue
		}
		para = append(para, inlineText(trimmed))
	}
	return flush()
}

func isFence(s string) bool {
	return strings.HasPrefix(s, "```") || strings.HasPrefix(s, "~~~")
}

// atxHeading parses "## Title ##".
func atxHeading(s string) (int, string, bool) {
	level := 0
	for level < len(s) && s[level] == '#' {
		level++
	}
	if level == 0 || level > 6 || (level < len(s) && s[level] != ' ' && s[level] != '\t') {
		return 0, "", false
	}
	title := strings.TrimSpace(s[level:])
	title = strings.TrimSpace(strings.TrimRight(title, "#"))
	return level, title, true
}

// setextUnderline is 1 for a === line and 2 for a --- line.
func setextUnderline(s string) int {
	if s == "" {
		return 0
	}
	if strings.Trim(s, "=") == "" {
		return 1
	}
	if strings.Trim(s, "-") == "" {
		return 2
	}
	return 0
}

func isThematicBreak(s string) bool {
	c := strings.ReplaceAll(s, " ", "")
	return len(c) >= 3 && (strings.Trim(c, "-") == "" || strings.Trim(c, "*") == "" || strings.Trim(c, "_") == "")
}

var orderedItem = regexp.MustCompile(`^\d{1,9}[.)] `)

func isListItem(s string) bool {
	return strings.HasPrefix(s, "- ") || strings.HasPrefix(s, "* ") || strings.HasPrefix(s, "+ ") || orderedItem.MatchString(s)
}

// tableCells splits a pipe-table line; nil for the delimiter line.
func tableCells(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "|"), "|")
	parts := strings.Split(s, "|")
	delim := true
	cells := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if strings.Trim(p, ":- ") != "" || p == "" {
			delim = false
		}
		cells = append(cells, inlineText(p))
	}
	if delim {
		return nil
	}
	return cells
}

var (
	mdImage    = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	mdLink     = regexp.MustCompile(`\[([^\]]+)\]\([^)]*\)`)
	mdRefLink  = regexp.MustCompile(`\[([^\]]+)\]\[[^\]]*\]`)
	mdAutoLink = regexp.MustCompile(`<((?:https?|mailto):[^>\s]+)>`)
	mdEmphasis = regexp.MustCompile(`(\*\*|__|~~)(\S(?:.*?\S)?)(\*\*|__|~~)`)
	mdItalic   = regexp.MustCompile(`(^|[^\w*])[*_](\S(?:[^*_]*?\S)?)[*_]($|[^\w*])`)
	mdCode     = regexp.MustCompile("`+([^`]+)`+")
	mdTag      = regexp.MustCompile(`</?[a-zA-Z][^>]*>`)
)

// inlineText reduces inline Markdown to the text a reader sees. Each pattern runs only on a
// line holding its marker: most lines hold none, and the patterns are most of the cost.
func inlineText(s string) string {
	if strings.Contains(s, "![") {
		s = mdImage.ReplaceAllString(s, "$1")
	}
	if strings.Contains(s, "](") {
		s = mdLink.ReplaceAllString(s, "$1")
	}
	if strings.Contains(s, "][") {
		s = mdRefLink.ReplaceAllString(s, "$1")
	}
	if strings.Contains(s, "<") {
		s = mdAutoLink.ReplaceAllString(s, "$1")
	}
	if strings.Contains(s, "`") {
		s = mdCode.ReplaceAllString(s, "$1")
	}
	if strings.Contains(s, "**") || strings.Contains(s, "__") || strings.Contains(s, "~~") {
		s = mdEmphasis.ReplaceAllString(s, "$2")
	}
	if strings.ContainsAny(s, "*_") {
		s = mdItalic.ReplaceAllString(s, "$1$2$3")
	}
	if strings.Contains(s, "<") {
		s = mdTag.ReplaceAllString(s, "")
	}
	return strings.TrimSpace(s)
}
