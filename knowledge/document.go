package knowledge

// Block kinds of an extracted document, in reading order.
const (
	BlockHeading   = "heading"
	BlockParagraph = "paragraph"
	BlockRow       = "row" // one row of a table (CSV, an HTML or DOCX table), its cells joined
)

// Block is one structural unit of an extracted document. A heading carries its level (1 for
// the top); the chunker turns the headings above a block into its heading path.
type Block struct {
	Kind  string
	Level int
	Text  string
	// Page is the 1-based page a block came from in a paged format (PDF); 0 elsewhere.
	Page int
}

// Document is the text of an uploaded file with its structure, as extraction found it.
type Document struct {
	// MediaType is the type the file was read as (after detection), e.g. "application/pdf".
	MediaType string
	Title     string
	Blocks    []Block
	// Pages is the page count of a paged format (PDF); 0 elsewhere.
	Pages int
}

// Chunk is a piece of a document sized for search and for a model's context, with where it
// came from so an answer can cite it.
type Chunk struct {
	// Position is the chunk's 0-based order within its document.
	Position int
	// HeadingPath is the headings above the chunk, outermost first.
	HeadingPath []string
	Text        string
	// Page is the page the chunk starts on in a paged format; 0 elsewhere.
	Page int
}

// Hit is one ranked result of a search: a chunk, the document and base it belongs to, and its
// score (higher is better; comparable only within one search).
type Hit struct {
	BaseID       string   `json:"knowledge_base_id"`
	DocumentID   string   `json:"document_id"`
	DocumentName string   `json:"document_name"`
	ChunkID      string   `json:"chunk_id"`
	Position     int      `json:"position"`
	HeadingPath  []string `json:"heading_path"`
	Page         int      `json:"page,omitempty"`
	Text         string   `json:"text"`
	Score        float64  `json:"score"`
}
