package llmtest

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"unicode"
)

// EmbeddingDims is the size of the stand-in's embeddings.
const EmbeddingDims = 64

// Embed is the stand-in's embedding of text: a hashed bag of its words' first five letters,
// unit length. It is deterministic, and texts sharing words (or their stems) are close, so
// that a test of vector or hybrid search can know its answer.
func Embed(text string) []float32 {
	v := make([]float32, EmbeddingDims)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if len(w) < 3 {
			continue
		}
		if r := []rune(w); len(r) > 5 {
			w = string(r[:5])
		}
		h := fnv.New32a()
		h.Write([]byte(w))
		v[h.Sum32()%EmbeddingDims]++
	}
	var sum float64
	for _, f := range v {
		sum += float64(f * f)
	}
	if sum > 0 {
		for i := range v {
			v[i] /= float32(math.Sqrt(sum))
		}
	}
	return v
}

// embeddings answers POST /v1/embeddings as OpenAI does, with Embed's vectors.
func embeddings(w http.ResponseWriter, body []byte) *apiError {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "you must provide a model parameter"}
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "'input' must be a string or an array of strings"}
		}
		inputs = []string{one}
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	out := struct {
		Object string         `json:"object"`
		Data   []item         `json:"data"`
		Model  string         `json:"model"`
		Usage  map[string]int `json:"usage"`
	}{Object: "list", Model: req.Model, Usage: map[string]int{"prompt_tokens": len(inputs), "total_tokens": len(inputs)}}
	for i, in := range inputs {
		out.Data = append(out.Data, item{Object: "embedding", Index: i, Embedding: Embed(in)})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
	return nil
}
