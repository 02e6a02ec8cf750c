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
	"sync"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/store"
)

// maxBodyBytes bounds a request body on the canonical surface.
const maxBodyBytes = 1 << 20

// jsonBuffers are reused by writeJSON: encoding is on the path of every answer.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			jsonBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
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
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
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
	body, err := readLimited(w, r, maxBodyBytes)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errValidation("body", "is required: a JSON object")
	}
	return body, nil
}

// readLimited reads a request body of at most limit bytes: a larger one is a 413.
func readLimited(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
				Message: "Request body is larger than " + strconv.Itoa(limit) + " bytes"}
		}
		return nil, errValidation("body", "could not be read: %v", err)
	}
	return body, nil
}

// decodeInto decodes a JSON object over v, refusing unknown fields, wrong types and trailing
// data, each with the field named. On a PATCH (set replace), the maps and arrays the body names
// are taken as sent rather than merged into what v holds, while objects that are fields of
// the model merge, so that what a client leaves out keeps its value (see clearNamed).
func decodeInto(body []byte, v any, replace bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errValidation("body", "must be a JSON object")
	}
	if err := checkUTF8(body); err != nil {
		return err
	}
	// The store cannot keep a NUL character in a string: Bun refuses to format one into a
	// column (a failed query) and, in a JSON column, turns the text \u0000 into a NUL escape
	// that PostgreSQL refuses and SQLite keeps as a NUL. Both are refused here, with the field
	// named, rather than failing as internal errors or changing what was sent. Either needs a
	// \u00XX escape in the body (the text may be spelt with escapes of its own characters).
	if bytes.Contains(body, []byte(`\u00`)) {
		var doc any
		if json.Unmarshal(body, &doc) == nil {
			if field := nulField(doc, ""); field != "" {
				return errValidation(field, `must not contain NUL characters or the text \u0000`)
			}
		}
	}
	if replace {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err == nil {
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Struct {
				clearNamed(rv.Elem(), top)
			}
		}
	}
	// Go's decoder matches keys to fields regardless of case; the canonical surface's
	// fields are snake_case exactly, and "NAME" is refused like any unknown field.
	var doc any
	if err := json.Unmarshal(body, &doc); err == nil {
		if field := miscased(reflect.TypeOf(v), doc, ""); field != "" {
			return errValidation(field, "is not a known field (field names are lower-case snake_case)")
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

// decodeFastAPI decodes a JSON object over v as FastAPI's default model (Pydantic's
// extra="ignore") reads a body: a field it does not know, or knows under another case, is
// ignored rather than refused, so that an unchanged Amplifier client that sends a field of a
// newer or older version of Amplifier still works. Everything else (wrong types, trailing
// data, NULs, invalid UTF-8) is refused as decodeInto refuses it, with the field named.
func decodeFastAPI(body []byte, v any) error {
	var top map[string]json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) && json.Unmarshal(body, &top) == nil {
		t := reflect.TypeOf(v)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() == reflect.Struct {
			fields := jsonFields(t)
			dropped := false
			for k := range top {
				if _, ok := fields[k]; !ok {
					delete(top, k)
					dropped = true
				}
			}
			if dropped {
				// What is left is re-encoded; decodeInto's checks of the body (UTF-8,
				// trailing data) ran on it whole through the Unmarshal above or run below.
				if err := checkUTF8(body); err != nil {
					return err
				}
				kept, err := json.Marshal(top)
				if err != nil {
					return errValidation("body", "is not valid: %v", err)
				}
				body = kept
			}
		}
	}
	return decodeInto(body, v, false)
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

// nulField returns the path of a key or string in doc that holds a NUL character or the text
// \u0000, or "".
func nulField(doc any, path string) string {
	switch v := doc.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 || strings.Contains(v, `\u0000`) {
			return path
		}
	case map[string]any:
		for k, x := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if strings.IndexByte(k, 0) >= 0 || strings.Contains(k, `\u0000`) {
				return p
			}
			if f := nulField(x, p); f != "" {
				return f
			}
		}
	case []any:
		for i, x := range v {
			if f := nulField(x, path+"["+strconv.Itoa(i)+"]"); f != "" {
				return f
			}
		}
	}
	return ""
}

// clearNamed prepares the struct s for a PATCH body obj: every map, slice or pointer field the
// body names is set to nil, so that decoding replaces it as sent. Without this,
// encoding/json decodes map entries into the stored map and array elements over the stored
// elements, so that a workflow node left without "text" would keep the text of the node
// stored at its index. Struct fields the body names as objects are walked the same way, and
// their fields the body leaves out keep their values.
func clearNamed(s reflect.Value, obj map[string]json.RawMessage) {
	t := s.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), s.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			clearNamed(fv, obj)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		raw, ok := obj[name]
		if !ok || !fv.CanSet() {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Map, reflect.Slice, reflect.Pointer:
			fv.SetZero()
		case reflect.Struct:
			var sub map[string]json.RawMessage
			if json.Unmarshal(raw, &sub) == nil {
				clearNamed(fv, sub)
			}
		}
	}
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

// miscased finds a key of doc that names a field of t only when case is ignored, and returns
// its path ("" when there is none).
func miscased(t reflect.Type, doc any, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch d := doc.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return ""
		}
		fields := jsonFields(t)
		for k, val := range d {
			ft, ok := fields[k]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, k) {
						return path + k
					}
				}
				continue
			}
			if f := miscased(ft, val, path+k+"."); f != "" {
				return f
			}
		}
	case []any:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return ""
		}
		for i, el := range d {
			if f := miscased(t.Elem(), el, strings.TrimSuffix(path, ".")+"["+strconv.Itoa(i)+"]."); f != "" {
				return f
			}
		}
	}
	return ""
}

// jsonFields maps the JSON names of a struct's fields (embedded structs' included) to
// their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// checkUTF8 refuses a body that is not valid UTF-8, naming the key or value that holds the
// bad bytes: Go's decoder would silently store U+FFFD in their place. A body that is not
// JSON either is left for the decoder to describe.
func checkUTF8(body []byte) error {
	if utf8.Valid(body) {
		return nil
	}
	bad := int64(0)
	for rest := body; len(rest) > 0; {
		r, n := utf8.DecodeRune(rest)
		if r == utf8.RuneError && n == 1 {
			break
		}
		rest, bad = rest[n:], bad+int64(n)
	}
	if field, ok := utf8Field(body, bad); ok {
		return errValidation(field, "must be valid UTF-8 text")
	}
	return nil
}

// utf8Field walks the tokens of a JSON document and returns the path of the key or value
// whose bytes span offset bad ("voice.speed", "edges[2].to").
func utf8Field(body []byte, bad int64) (string, bool) {
	type level struct {
		path    string
		object  bool
		key     string
		index   int
		wantKey bool
	}
	var stack []*level
	// valuePath is where the next value goes, and done moves past it.
	valuePath := func() string {
		if len(stack) == 0 {
			return "body"
		}
		top := stack[len(stack)-1]
		if top.object {
			if top.path == "" {
				return top.key
			}
			return top.path + "." + top.key
		}
		return top.path + "[" + strconv.Itoa(top.index) + "]"
	}
	done := func() {
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		end := dec.InputOffset()
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				p := ""
				if len(stack) > 0 {
					p = valuePath()
				}
				stack = append(stack, &level{path: p, object: d == '{', wantKey: d == '{'})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
			continue
		}
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; top.object && top.wantKey {
				top.key, _ = tok.(string)
				top.wantKey = false
				if end > bad {
					// A key is named by the object that holds it: its own text is the
					// broken part.
					if top.path == "" {
						return "body", true
					}
					return top.path, true
				}
				continue
			}
		}
		if end > bad {
			return valuePath(), true
		}
		done()
	}
}
