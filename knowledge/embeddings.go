package knowledge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchboard-go/switchboard/telemetry"
)

// Embedder turns texts into vectors with an embedding model ("provider/model").
type Embedder interface {
	Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error)
}

// EmbeddingEndpoint is where one provider's OpenAI-compatible API lives and how to reach it.
type EmbeddingEndpoint struct {
	// BaseURL is the API's root: requests go to {BaseURL}/embeddings
	// (https://api.openai.com/v1, http://localhost:11434/v1 for Ollama).
	BaseURL string
	APIKey  string
	Header  map[string]string
	// Client carries the requests: the tenant client (netguard) for a tenant's own
	// providers, which refuses private addresses unless the operator allows them.
	Client *http.Client
}

// ErrEmbedding is a failure of the embedding provider; the wrapped error says how.
var ErrEmbedding = errors.New("knowledge: embedding failed")

// maxEmbeddingBatch is the texts sent in one request: OpenAI takes 2,048, Ollama and
// smaller servers fewer, and a document's chunks go in several requests anyway.
const maxEmbeddingBatch = 64

// maxEmbeddingAnswer bounds an answer's body: 64 vectors of 3,072 dimensions in JSON are
// about 4 MiB.
const maxEmbeddingAnswer = 32 << 20

// EmbeddingsClient speaks OpenAI's POST /v1/embeddings, which OpenAI, Ollama, vLLM,
// llama.cpp's server and most gateways serve.
type EmbeddingsClient struct {
	// Resolve finds a tenant's provider by name.
	Resolve func(ctx context.Context, tenantID, provider string) (EmbeddingEndpoint, error)
}

// Embed returns one vector per text, in order.
func (c *EmbeddingsClient) Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error) {
	provider, name, ok := strings.Cut(model, "/")
	if !ok || provider == "" || name == "" {
		return nil, fmt.Errorf("%w: embedding model %q is not provider/model", ErrEmbedding, model)
	}
	ep, err := c.Resolve(ctx, tenantID, provider)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEmbedding, err)
	}
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += maxEmbeddingBatch {
		vs, err := embedBatch(ctx, ep, name, texts[i:min(i+maxEmbeddingBatch, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

func embedBatch(ctx context.Context, ep EmbeddingEndpoint, model string, texts []string) ([][]float32, error) {
	body, _ := json.Marshal(map[string]any{"model": model, "input": texts, "encoding_format": "float"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(ep.BaseURL, "/")+"/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEmbedding, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range ep.Header {
		req.Header.Set(k, v)
	}
	if ep.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+ep.APIKey)
	}
	telemetry.Inject(ctx, req.Header) // the embedding model sees the search's trace
	client := ep.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEmbedding, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxEmbeddingAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrEmbedding, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		msg := e.Error.Message
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, fmt.Errorf("%w: the provider answered %d: %s", ErrEmbedding, resp.StatusCode, msg)
	}
	if len(raw) > maxEmbeddingAnswer {
		return nil, fmt.Errorf("%w: the answer is larger than %d bytes", ErrEmbedding, maxEmbeddingAnswer)
	}
	var ans struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("%w: the answer is not an embeddings list: %w", ErrEmbedding, err)
	}
	out := make([][]float32, len(texts))
	for _, d := range ans.Data {
		if d.Index < 0 || d.Index >= len(out) || len(d.Embedding) == 0 {
			return nil, fmt.Errorf("%w: the answer has an embedding of index %d for %d inputs", ErrEmbedding, d.Index, len(texts))
		}
		out[d.Index] = d.Embedding
	}
	for i, v := range out {
		if v == nil {
			return nil, fmt.Errorf("%w: the answer has no embedding for input %d", ErrEmbedding, i)
		}
		if len(v) != len(out[0]) {
			return nil, fmt.Errorf("%w: the answer's embeddings differ in size", ErrEmbedding)
		}
	}
	return out, nil
}
