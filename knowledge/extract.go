package knowledge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Media types of the documents Switchboard extracts text from; Document.MediaType is one of
// these after detection.
const (
	MediaPDF      = "application/pdf"
	MediaDOCX     = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	MediaHTML     = "text/html"
	MediaMarkdown = "text/markdown"
	MediaPlain    = "text/plain"
	MediaCSV      = "text/csv"
	MediaTSV      = "text/tab-separated-values"
	MediaJSON     = "application/json"
)

// Limits bounds one extraction. A zero field takes its default (DefaultLimits); exceeding any
// bound fails the extraction with ErrTooLarge, never with a partial document.
type Limits struct {
	// MaxInputBytes bounds the uploaded file (default 32 MiB).
	MaxInputBytes int64
	// MaxTextBytes bounds the extracted text, and with it what a compressed file (a DOCX, a
	// PDF's streams) may expand to (default 16 MiB).
	MaxTextBytes int64
	// MaxPages bounds a paged document (default 2,000 pages).
	MaxPages int
	// Timeout bounds the wall time of one extraction (default 60 s); the caller's context
	// bounds it too.
	Timeout time.Duration
}

// DefaultLimits are the bounds a zero Limits field stands for.
func DefaultLimits() Limits {
	return Limits{MaxInputBytes: 32 << 20, MaxTextBytes: 16 << 20, MaxPages: 2000, Timeout: 60 * time.Second}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxInputBytes <= 0 {
		l.MaxInputBytes = d.MaxInputBytes
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = d.MaxTextBytes
	}
	if l.MaxPages <= 0 {
		l.MaxPages = d.MaxPages
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	return l
}

// errTimeLimit is the cause of an extraction's own deadline, told apart from the caller's.
var errTimeLimit = errors.New("extraction time limit")

// Extract reads the text and structure of an uploaded file. The type is detected from the
// declared media type, the file name and the content; where the declared type and the content
// disagree the content decides (a PDF uploaded as text/plain is read as a PDF). A type it cannot
// read is ErrUnsupportedType, a damaged file ErrCorrupt, a file past a limit ErrTooLarge; a
// cancelled ctx returns ctx's error. Extract never panics, whatever data holds.
func Extract(ctx context.Context, name, mediaType string, data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxInputBytes {
		return nil, fmt.Errorf("%w: file is %d bytes, the limit is %d", ErrTooLarge, len(data), lim.MaxInputBytes)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, lim.Timeout, errTimeLimit)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return nil, ctxError(ctx, lim)
	}
	kind, body, err := detect(name, mediaType, data)
	if err != nil {
		return nil, err
	}
	b := newBuilder(ctx, lim, kind)
	switch kind {
	case MediaPDF:
		err = extractPDF(b, body)
	case MediaDOCX:
		err = extractDOCX(b, body)
	default:
		text, terr := decodeText(body)
		if terr != nil {
			return nil, terr
		}
		switch kind {
		case MediaHTML:
			err = extractHTML(b, text)
		case MediaMarkdown:
			err = extractMarkdown(b, text)
		case MediaCSV:
			err = extractCSV(b, text, ',')
		case MediaTSV:
			err = extractCSV(b, text, '\t')
		case MediaJSON:
			err = extractJSON(b, text)
		default:
			err = extractPlain(b, text)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			// Whatever the extractor made of it, the deadline or the caller stopped it.
			return nil, ctxError(ctx, lim)
		}
		return nil, err
	}
	return b.doc, nil
}

// ctxError tells the extraction's own time limit (ErrTooLarge) from the caller giving up.
func ctxError(ctx context.Context, lim Limits) error {
	if errors.Is(context.Cause(ctx), errTimeLimit) {
		return fmt.Errorf("%w: extraction took longer than %s", ErrTooLarge, lim.Timeout)
	}
	return ctx.Err()
}

// detect decides how to read a file. The content's signature wins over what was declared;
// the declared type wins over the file name; both only choose among the text formats when
// the content has no signature.
func detect(name, declared string, data []byte) (kind string, body []byte, err error) {
	claim := claimedKind(declared, name)
	if bytes.HasPrefix(data, []byte("%PDF-")) {
		return MediaPDF, data, nil
	}
	text := isText(data)
	if i := bytes.Index(data[:min(len(data), 1024)], []byte("%PDF-")); i >= 0 && !text {
		// Readers accept junk before the header of a binary file; so does Switchboard. (A
		// text file that only mentions a PDF header is text.)
		return MediaPDF, data[i:], nil
	}
	if bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06")) {
		// A zip: a DOCX if it holds a Word document, which extractDOCX checks; other zips
		// (spreadsheets, presentations, archives) are unsupported there.
		return MediaDOCX, data, nil
	}
	if !text {
		if claim == MediaPDF || claim == MediaDOCX {
			return "", nil, fmt.Errorf("%w: declared %s but the content has no %s signature", ErrCorrupt, claim, kindName(claim))
		}
		sniffed := http.DetectContentType(data)
		return "", nil, fmt.Errorf("%w: content is %s", ErrUnsupportedType, sniffed)
	}
	lead := bytes.TrimLeft(trimBOM(data), " \t\r\n")
	looksJSON := len(lead) > 0 && (lead[0] == '{' || lead[0] == '[')
	switch claim {
	case MediaMarkdown, MediaCSV, MediaTSV:
		return claim, data, nil
	case MediaHTML:
		return MediaHTML, data, nil
	case MediaJSON:
		if looksJSON {
			// Invalid JSON here is a broken JSON file, reported by extractJSON.
			return MediaJSON, data, nil
		}
		return MediaPlain, data, nil
	}
	if looksHTML(lead) {
		return MediaHTML, data, nil
	}
	if looksJSON && json.Valid(lead) {
		return MediaJSON, data, nil
	}
	return MediaPlain, data, nil
}

// claimedKind is the format the declared media type names or, when that is missing or
// generic, the file name's extension does.
func claimedKind(declared, name string) string {
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(declared))
	}
	switch mt {
	case MediaPDF, "application/x-pdf":
		return MediaPDF
	case MediaDOCX:
		return MediaDOCX
	case MediaHTML, "application/xhtml+xml":
		return MediaHTML
	case MediaMarkdown, "text/x-markdown":
		return MediaMarkdown
	case MediaCSV, "application/csv":
		return MediaCSV
	case MediaTSV:
		return MediaTSV
	case MediaJSON, "text/json":
		return MediaJSON
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".pdf":
		return MediaPDF
	case ".docx":
		return MediaDOCX
	case ".html", ".htm", ".xhtml":
		return MediaHTML
	case ".md", ".markdown", ".mdown", ".mkd":
		return MediaMarkdown
	case ".csv":
		return MediaCSV
	case ".tsv", ".tab":
		return MediaTSV
	case ".json":
		return MediaJSON
	case ".txt", ".text":
		return MediaPlain
	}
	return ""
}

func kindName(kind string) string {
	switch kind {
	case MediaPDF:
		return "PDF"
	case MediaDOCX:
		return "DOCX (zip)"
	}
	return kind
}

// looksHTML is true for content that opens like an HTML page (a doctype, or an html, head,
// body or common block element first).
func looksHTML(text []byte) bool {
	return strings.HasPrefix(http.DetectContentType(text), "text/html")
}

func trimBOM(data []byte) []byte {
	return bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
}

// isText reports whether data is text Switchboard can decode: UTF-8 (with or without a BOM),
// UTF-16 with a BOM, or a single-byte encoding without control characters.
func isText(data []byte) bool {
	if hasUTF16BOM(data) {
		return len(data)%2 == 0
	}
	data = trimBOM(data)
	if len(data) == 0 {
		return true
	}
	ct := http.DetectContentType(data)
	if !strings.HasPrefix(ct, "text/") {
		return false
	}
	// DetectContentType looks at 512 bytes; a binary file can open like text.
	controls := 0
	for _, c := range data {
		switch {
		case c == 0:
			return false
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f':
			controls++
		}
	}
	return controls*100 <= len(data)
}

func hasUTF16BOM(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff})
}

// decodeText turns a text file into UTF-8: UTF-16 by its BOM, UTF-8 as is, anything else read
// as Windows-1252 (every byte a character) so no upload is refused for its encoding alone.
func decodeText(data []byte) (string, error) {
	if hasUTF16BOM(data) {
		if len(data)%2 != 0 {
			return "", fmt.Errorf("%w: UTF-16 text of odd length", ErrCorrupt)
		}
		big := data[0] == 0xfe
		u := make([]uint16, 0, len(data)/2-1)
		for i := 2; i+1 < len(data); i += 2 {
			if big {
				u = append(u, uint16(data[i])<<8|uint16(data[i+1]))
			} else {
				u = append(u, uint16(data[i+1])<<8|uint16(data[i]))
			}
		}
		return string(utf16.Decode(u)), nil
	}
	data = trimBOM(data)
	if utf8.Valid(data) {
		return string(data), nil
	}
	// Windows-1252 is Latin-1 with curly quotes and dashes where Latin-1 has control codes:
	// what a text file that is not UTF-8 is most likely to be.
	out, err := charmap.Windows1252.NewDecoder().Bytes(data)
	if err != nil {
		return "", fmt.Errorf("%w: undecodable text: %v", ErrCorrupt, err)
	}
	return string(out), nil
}

// builder collects a document's blocks and holds the extraction to its text budget and
// deadline, so every extractor is bounded the same way.
type builder struct {
	ctx   context.Context
	lim   Limits
	doc   *Document
	left  int64
	calls int
}

func newBuilder(ctx context.Context, lim Limits, kind string) *builder {
	return &builder{ctx: ctx, lim: lim, doc: &Document{MediaType: kind}, left: lim.MaxTextBytes}
}

// check returns the context's error (as ErrTooLarge for the time limit), cheaply enough to
// call in every loop of an extractor.
func (b *builder) check() error {
	b.calls++
	if b.calls%64 != 0 {
		return nil
	}
	if b.ctx.Err() != nil {
		return ctxError(b.ctx, b.lim)
	}
	return nil
}

// spend charges n bytes of extracted (or decompressed) text to the budget.
func (b *builder) spend(n int) error {
	b.left -= int64(n)
	if b.left < 0 {
		return fmt.Errorf("%w: extracted text exceeds %d bytes", ErrTooLarge, b.lim.MaxTextBytes)
	}
	return b.check()
}

// add appends a block with its text tidied (whitespace collapsed unless keepLines); an empty
// block is dropped.
func (b *builder) add(kind string, level int, text string, page int, keepLines bool) error {
	if keepLines {
		text = tidyLines(text)
	} else {
		text = collapseSpace(text)
	}
	if text == "" {
		return b.check()
	}
	if err := b.spend(len(text)); err != nil {
		return err
	}
	if kind == BlockHeading {
		level = max(1, min(level, 6))
		if b.doc.Title == "" && level == 1 {
			b.doc.Title = text
		}
	} else {
		level = 0
	}
	b.doc.Blocks = append(b.doc.Blocks, Block{Kind: kind, Level: level, Text: text, Page: page})
	return nil
}

func (b *builder) heading(level int, text string, page int) error {
	return b.add(BlockHeading, level, text, page, false)
}

func (b *builder) paragraph(text string, page int) error {
	return b.add(BlockParagraph, 0, text, page, false)
}

// preformatted is a paragraph whose line breaks matter (code, a list).
func (b *builder) preformatted(text string, page int) error {
	return b.add(BlockParagraph, 0, text, page, true)
}

func (b *builder) row(text string, page int) error {
	return b.add(BlockRow, 0, text, page, false)
}

// collapseSpace joins runs of whitespace into single spaces and drops control characters.
func collapseSpace(s string) string {
	if tidyASCII(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError || r == 0xfeff:
			continue
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || r == 0xa0 || r == 0x85 || r == 0x2028 || r == 0x2029:
			space = true
			continue
		case r < 0x20 || r == 0x7f:
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	return sb.String()
}

// tidyASCII reports whether s is already as collapseSpace would leave it: printable ASCII,
// single spaces, none at either end. Most extracted text is, and is then kept as it is.
func tidyASCII(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return s == ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == ' ' && s[i+1] == ' ' {
			return false
		}
	}
	return true
}

// tidyLines collapses spaces within each line but keeps the line breaks, dropping blank
// lines at either end.
func tidyLines(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	out := lines[:0]
	for _, l := range lines {
		out = append(out, strings.TrimRightFunc(collapseIndent(l), isSpace))
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}

// collapseIndent keeps a line's leading indentation (it matters in code) and drops control
// characters.
func collapseIndent(l string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || r == 0xfeff {
			return -1
		}
		return r
	}, l)
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' }
