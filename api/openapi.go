package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// openAPI builds the OpenAPI 3.1 document from the route table: every route the router
// serves is in it, with its parameters, body and answers, and the schemas are reflected from
// the Go types the handlers encode and decode.
func (s *Server) openAPI() map[string]any {
	g := &schemaGen{components: map[string]any{}}
	paths := map[string]map[string]any{}
	usedIDs := map[string]bool{}
	var requestSchemas []map[string]any
	for _, rt := range s.routes {
		// operationId must be unique in a document; /health and /api/v1/health would both be
		// getHealth.
		opID := operationID(rt)
		for n := 2; usedIDs[opID]; n++ {
			opID = operationID(rt) + strconv.Itoa(n)
		}
		usedIDs[opID] = true
		doc := operationDocs[rt.Method+" "+rt.Path]
		summary := rt.Summary
		if doc.Summary != "" {
			summary = doc.Summary
		}
		op := map[string]any{
			"summary":     summary,
			"description": doc.Description,
			"operationId": opID,
			"tags":        []string{rt.Tag},
		}
		var params []any
		for _, name := range pathParams.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": name[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			ty := "string"
			if q.Integer {
				ty = "integer"
			}
			params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": map[string]any{"type": ty}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Request != nil {
			schema := g.schema(reflect.TypeOf(rt.Request))
			if rt.Method == http.MethodPatch || rt.Method == http.MethodPut {
				schema = g.updateSchema(schema)
			}
			ct := "application/json"
			if rt.RequestType == "multipart/form-data" {
				ct = rt.RequestType
				schema = map[string]any{"type": "object", "required": []any{"file"},
					"properties": map[string]any{"file": map[string]any{"type": "string", "format": "binary", "description": "The document"}}}
			}
			requestSchemas = append(requestSchemas, schema)
			media := map[string]any{"schema": schema}
			if doc.Request != nil {
				media["example"] = exampleValue(doc.Request)
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{ct: media}}
		}
		responses := map[string]any{}
		ok := map[string]any{"description": http.StatusText(rt.Status)}
		var answer map[string]any
		if rt.Response != nil {
			answer = map[string]any{"schema": g.schema(reflect.TypeOf(rt.Response))}
			ok["content"] = map[string]any{"application/json": answer}
		} else if rt.Raw && rt.Status != http.StatusNoContent {
			ct := rt.ContentType
			if ct == "" {
				ct = "text/html"
			}
			answer = map[string]any{"schema": map[string]any{"type": "string"}}
			if strings.HasPrefix(ct, "audio/") {
				answer["schema"] = map[string]any{"type": "string", "contentMediaType": ct}
			}
			ok["content"] = map[string]any{ct: answer}
		}
		if answer != nil && doc.Response != nil {
			answer["example"] = exampleValue(doc.Response)
		}
		responses[strconv.Itoa(rt.Status)] = ok
		errRef := map[string]any{"$ref": "#/components/responses/" + rt.Dialect.errorResponse()}
		if rt.RequestType != "" {
			responses["415"] = errRef
		}
		if rt.Request != nil {
			responses["413"] = errRef
			switch rt.Dialect {
			case dialectCanonical:
				responses["422"] = errRef
			case dialectFastAPI:
				// FastAPI's 422 for a body it cannot take; Amplifier's 400 for YAML it refuses.
				responses["400"], responses["422"] = errRef, errRef
			default:
				responses["400"] = errRef
			}
		}
		if rt.Scope != "" {
			responses["401"] = errRef
			responses["403"] = errRef
			responses["429"] = errRef
			op["security"] = []any{map[string]any{"ApiKey": []any{}}, map[string]any{"BearerAuth": []any{}}}
		} else {
			op["security"] = []any{}
		}
		if strings.Contains(rt.Path, "{") {
			responses["404"] = errRef
		}
		responses["500"] = errRef
		op["responses"] = responses
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	g.components["Error"] = g.schema(reflect.TypeOf(errorBody{}))
	g.markAnswerOnly(requestSchemas)
	errorResponses := dialectErrorResponses()
	for name, ex := range dialectErrorExamples {
		resp, _ := errorResponses[name].(map[string]any)
		content, _ := resp["content"].(map[string]any)
		if media, ok := content["application/json"].(map[string]any); ok {
			media["example"] = exampleValue(ex)
		}
	}
	errorResponses["Error"] = map[string]any{
		"description": "An error in the canonical shape",
		"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"},
			"example": exampleValue(errorExample)}},
	}
	tags := make([]any, 0, len(tagDocs))
	for _, td := range tagDocs {
		tags = append(tags, map[string]any{"name": td.Name, "description": td.Description})
	}
	return map[string]any{
		"openapi": "3.1.0",
		"tags":    tags,
		"info": map[string]any{
			"title":       "Switchboard API",
			"version":     s.cfg.Version,
			"description": apiIntro,
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":   g.components,
			"responses": errorResponses,
			"securitySchemes": map[string]any{
				"ApiKey":     map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
				"BearerAuth": map[string]any{"type": "http", "scheme": "bearer", "description": "An API key, or a JWT access token"},
			},
		},
	}
}

var pathParams = regexp.MustCompile(`\{([a-z_]+)\}`)

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, part := range strings.FieldsFunc(rt.Path, func(r rune) bool { return r == '/' || r == '-' || r == '.' || r == '{' || r == '}' }) {
		if part == "api" || part == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// schemaGen reflects JSON Schemas (the 2020-12 dialect of OpenAPI 3.1) from Go types; named
// struct types become components.
type schemaGen struct {
	components map[string]any
}

var (
	timeType    = reflect.TypeOf(time.Time{})
	rawJSONType = reflect.TypeFor[json.RawMessage]()
)

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawJSONType:
		// Kept as the client sent it: any JSON value.
		return map[string]any{}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case t.Kind() == reflect.Pointer:
		inner := g.schema(t.Elem())
		return map[string]any{"anyOf": []any{inner, map[string]any{"type": "null"}}}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t.Name() == "" {
			// An anonymous struct (a field's own shape) has no name to share: inline it.
			return g.object(t)
		}
		name := schemaName(t)
		if _, ok := g.components[name]; !ok {
			g.components[name] = map[string]any{} // placeholder against recursion
			g.components[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	note := schemaNotes[t]
	row := embedsRow(t)
	var required []string
	for name, ft := range jsonFields(t) {
		s := g.schema(ft)
		fn := note.fields[name]
		if row && slices.Contains(rowFields, name) {
			fn.readOnly = true
		}
		annotate(s, fn)
		if fn.required {
			required = append(required, name)
		}
		props[name] = s
	}
	out := map[string]any{"type": "object", "properties": props}
	if note.defaults != nil {
		for name, v := range defaultsOf(note.defaults()) {
			if p, ok := props[name].(map[string]any); ok {
				p["default"] = v
			}
		}
	}
	if required != nil {
		sort.Strings(required)
		out["required"] = required
	}
	return out
}

// schemaName names a component after its Go type: List[store.Agent] becomes AgentList.
func schemaName(t reflect.Type) string {
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 {
		inner := name[i+1 : len(name)-1]
		if j := strings.LastIndexByte(inner, '.'); j >= 0 {
			inner = inner[j+1:]
		}
		return inner + name[:i]
	}
	return name
}
