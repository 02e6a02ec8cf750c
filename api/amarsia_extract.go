package api

import (
	"context"
	"errors"
)

// extractDocument is the text of a document part, as the knowledge package extracts it.
func extractDocument(ctx context.Context, name, mediaType string, data []byte) (string, error) {
	return "", errors.New("document extraction is not available yet")
}
