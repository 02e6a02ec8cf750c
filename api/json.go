package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/switchboard-go/switchboard/store"
)

// maxBodyBytes bounds a request body on the canonical surface.
const maxBodyBytes = 1 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal_error","message":"Internal server error","details":[]}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *Error) {
	details := e.Details
	if details == nil {
		details = []store.FieldError{}
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	writeJSON(w, e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Details: details}})
}

// readBody reads a JSON request body of at most maxBodyBytes. An empty body, a body that is
// too large and a content type other than JSON are errors that name the problem.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupported,
				Message: "Content-Type must be application/json, not " + strconv.Quote(ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
				Message: "Request body is larger than " + strconv.Itoa(maxBodyBytes) + " bytes"}
		}
		return nil, errValidation("body", "could not be read: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errValidation("body", "is required: a JSON object")
	}
	return body, nil
}

// decodeInto decodes a JSON object over v, refusing unknown fields, wrong types and trailing
// data, each with the field named. On a PATCH, top-level objects the body names are replaced
// rather than merged (set replaceMaps), so that a new JSON Schema or metadata object is taken
// as sent.
func decodeInto(body []byte, v any, replaceMaps bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errValidation("body", "must be a JSON object")
	}
	if replaceMaps {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err == nil {
			clearNamedMaps(v, top)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errValidation("body", "holds data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errValidation("body", "holds data after the JSON object")
	}
	return nil
}

// jsonError names the field a decoding error is about.
func jsonError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return errValidation(field, "must be %s, not %s", jsonTypeName(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return errValidation("body", "is not valid JSON: %s at byte %d", syntaxErr.Error(), syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errValidation("body", "is not valid JSON: it ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errValidation(field, "is not a known field")
	}
	return errValidation("body", "is not valid: %v", err)
}

func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	}
	return t.String()
}

// clearNamedMaps sets to nil every map field of the struct v points at whose JSON name is a
// key of top, so that decoding replaces it.
func clearNamedMaps(v any, top map[string]json.RawMessage) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return
	}
	var walk func(s reflect.Value)
	walk = func(s reflect.Value) {
		t := s.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(s.Field(i))
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			if _, ok := top[name]; ok && f.Type.Kind() == reflect.Map && s.Field(i).CanSet() {
				s.Field(i).Set(reflect.Zero(f.Type))
			}
		}
	}
	walk(rv.Elem())
}

// pageParams reads limit and offset: limit 1 to 100, 20 when absent; offset from 0.
func pageParams(r *http.Request) (store.Page, error) {
	p := store.Page{Limit: 20}
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return p, errValidation("limit", "must be an integer from 1 to 100")
		}
		p.Limit = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1_000_000 {
			return p, errValidation("offset", "must be a non-negative integer")
		}
		p.Offset = n
	}
	return p, nil
}

// List is the canonical list envelope.
type List[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}
