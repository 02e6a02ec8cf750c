package knowledge

import "errors"

// Sentinels of extraction. The API maps each to its status: an upload of a type Switchboard
// cannot read is a 415, a file that is damaged is a 422, and one past a limit is a 413.
var (
	// ErrUnsupportedType: the file is of a type Switchboard does not extract text from.
	ErrUnsupportedType = errors.New("knowledge: unsupported document type")
	// ErrCorrupt: the file claims (or sniffs as) a supported type but cannot be read as one;
	// the wrapped error says why.
	ErrCorrupt = errors.New("knowledge: corrupt document")
	// ErrTooLarge: the file, its extracted text, its page count or its extraction time went
	// past a Limits bound; the wrapped error names which.
	ErrTooLarge = errors.New("knowledge: document too large")
)
