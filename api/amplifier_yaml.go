package api

import (
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Bounds of a config's YAML once its aliases are expanded. A few hundred bytes of anchors
// and aliases (*a repeated, nine deep) expand to billions of values, which decoding would
// build; the parsed tree is measured first, aliases counted at the size of what they name.
const (
	maxYAMLValues = 100_000
	maxYAMLDepth  = 64
)

// yamlLimitError says which bound a config's YAML passed.
type yamlLimitError struct{ msg string }

func (e *yamlLimitError) Error() string { return e.msg }

// decodeBundleYAML parses a config's YAML into plain values (maps, lists, scalars). A
// syntax error is the parser's; a document that would expand past the bounds is a
// *yamlLimitError, and is not decoded.
func decodeBundleYAML(text string) (any, error) {
	// The parser's time grows faster than the text with flow nesting ([[[…]]] twenty
	// thousand deep takes it seconds), so nesting is bounded before it parses.
	if lexicalDepth(text) > maxYAMLDepth {
		return nil, &yamlLimitError{msg: "the YAML nests deeper than 64 levels"}
	}
	file, err := parser.ParseBytes([]byte(text), 0)
	if err != nil {
		return nil, err
	}
	c := yamlCounter{anchors: map[string]int{}}
	for _, doc := range file.Docs {
		c.total += c.size(doc, 0)
	}
	switch {
	case c.tooDeep:
		return nil, &yamlLimitError{msg: "the YAML nests deeper than 64 levels"}
	case c.total > maxYAMLValues:
		return nil, &yamlLimitError{msg: "the YAML expands to more than 100000 values (its aliases counted as what they name)"}
	}
	var doc any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// yamlCounter measures a parsed YAML tree as decoding would build it.
type yamlCounter struct {
	anchors map[string]int
	total   int
	tooDeep bool
}

// size is how many values n decodes to, saturating just past the bound.
func (c *yamlCounter) size(n ast.Node, depth int) int {
	if n == nil || c.tooDeep {
		return 0
	}
	if depth > maxYAMLDepth {
		c.tooDeep = true
		return 0
	}
	s := 1
	add := func(child ast.Node) {
		if s <= maxYAMLValues {
			s += c.size(child, depth+1)
		}
	}
	switch t := n.(type) {
	case *ast.DocumentNode:
		return c.size(t.Body, depth)
	case *ast.MappingNode:
		for _, v := range t.Values {
			add(v)
		}
	case *ast.MappingValueNode:
		add(t.Key)
		add(t.Value)
	case *ast.MappingKeyNode:
		add(t.Value)
	case *ast.SequenceNode:
		for _, v := range t.Values {
			add(v)
		}
	case *ast.SequenceEntryNode:
		add(t.Value)
	case *ast.TagNode:
		add(t.Value)
	case *ast.AnchorNode:
		s = c.size(t.Value, depth+1)
		if t.Name != nil {
			c.anchors[t.Name.String()] = s
		}
	case *ast.AliasNode:
		if t.Value != nil {
			s = max(c.anchors[t.Value.String()], 1)
		}
	}
	return min(s, maxYAMLValues+1)
}

// lexicalDepth is, read from the text alone, the deepest nesting of flow collections ([ and
// { outside quotes and comments) and the most sequence entries begun on one line ("- - x").
// It errs low on what it cannot tell apart (a quote it takes for a scalar's start), which
// the parsed tree's own bound then catches once it is cheap to parse.
func lexicalDepth(text string) int {
	deepest, flow, dashes := 0, 0, 0
	var quote byte
	lineStart, tokenStart := true, true
	for i := 0; i < len(text); i++ {
		ch := text[i]
		if ch == '\n' {
			lineStart, tokenStart, dashes = true, true, 0
			if quote == '\'' || quote == '"' {
				quote = 0 // a quoted scalar over lines is rare in a config; recount from here
			}
			continue
		}
		switch {
		case quote == '"':
			if ch == '\\' {
				i++
			} else if ch == '"' {
				quote = 0
			}
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			}
		case ch == '#' && tokenStart:
			for i+1 < len(text) && text[i+1] != '\n' {
				i++
			}
		case (ch == '"' || ch == '\'') && tokenStart:
			quote = ch
		case ch == '[' || ch == '{':
			flow++
			deepest = max(deepest, flow)
		case ch == ']' || ch == '}':
			flow = max(flow-1, 0)
		case ch == '-' && lineStart && (i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n'):
			dashes++
			deepest = max(deepest, dashes)
		}
		tokenStart = ch == ' ' || ch == '\t' || ch == ':' || ch == ',' || ch == '[' || ch == '{' || ch == '-'
		if ch != ' ' && ch != '\t' && ch != '-' {
			lineStart = false
		}
	}
	return deepest
}
