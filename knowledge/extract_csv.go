package knowledge

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// extractCSV reads a table: the first record is the header, and every other record becomes a
// row that names its columns ("name: Ada; city: London"), so a chunk holding a few rows still
// says what each value is. A file whose first line has more semicolons than commas is read as
// semicolon-separated, as spreadsheets in many locales write it.
func extractCSV(b *builder, text string, comma rune) error {
	if comma == ',' {
		first, _, _ := strings.Cut(text, "\n")
		if strings.Count(first, ";") > strings.Count(first, ",") {
			comma = ';'
		}
	}
	r := csv.NewReader(strings.NewReader(text))
	r.Comma = comma
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	var header []string
	for {
		if err := b.check(); err != nil {
			return err
		}
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if header == nil {
			header = make([]string, len(rec))
			for i, h := range rec {
				header[i] = collapseSpace(h)
			}
			continue
		}
		cells := make([]string, len(rec))
		for i, c := range rec {
			cells[i] = collapseSpace(c)
		}
		if err := b.row(labelCells(header, cells), 0); err != nil {
			return err
		}
	}
}
