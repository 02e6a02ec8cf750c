package store

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/uptrace/bun"

	"github.com/switchboard-go/switchboard/internal/netguard"
)

// Tool is a function an agent's model may call: a name and description the model reads, JSON
// Schema parameters, and the HTTP webhook that runs it.
type Tool struct {
	bun.BaseModel `bun:"table:tools"`
	Row

	Name        string         `bun:"name,notnull" json:"name"`
	Description string         `bun:"description,notnull" json:"description"`
	Parameters  map[string]any `bun:"parameters,type:json" json:"parameters"`
	Webhook     Webhook        `bun:"webhook,type:json" json:"webhook"`
}

// Webhook is the HTTP request that runs a tool; the call's arguments are its JSON body.
type Webhook struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	TimeoutMS int               `json:"timeout_ms"`
}

// NewTool returns a tool with the defaults a created tool starts from.
func NewTool() *Tool {
	return &Tool{
		Parameters: map[string]any{"type": "object", "properties": map[string]any{}},
		Webhook:    Webhook{Method: http.MethodPost, Headers: map[string]string{}, TimeoutMS: 10_000},
	}
}

func (*Tool) idPrefix() string { return prefixTool }

// Validate checks the tool: a name a model can call, parameters that are a JSON Schema of an
// object, and a webhook that is an absolute http(s) URL.
func (t *Tool) Validate() error {
	var fe fieldErrors
	if !reToolName.MatchString(t.Name) {
		fe.add("name", "must be 1 to 64 letters, digits, underscores or hyphens")
	}
	fe.maxText("description", t.Description)
	if t.Parameters == nil {
		fe.add("parameters", "is required: a JSON Schema with type \"object\"")
	} else {
		if ty, _ := t.Parameters["type"].(string); ty != "object" {
			fe.add("parameters.type", "must be \"object\": a tool takes named arguments")
		}
		validateSchema(&fe, "parameters", t.Parameters, 0)
		fe.metadata("parameters", t.Parameters)
	}
	t.Webhook.Method = strings.ToUpper(t.Webhook.Method)
	if t.Webhook.Headers == nil {
		t.Webhook.Headers = map[string]string{}
	}
	u, err := url.Parse(t.Webhook.URL)
	switch {
	case t.Webhook.URL == "":
		fe.add("webhook.url", "is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		fe.add("webhook.url", "must be an absolute http or https URL")
	case u.User != nil:
		fe.add("webhook.url", "must not carry credentials; use webhook.headers")
	}
	fe.oneOf("webhook.method", t.Webhook.Method, "GET", "POST", "PUT", "PATCH", "DELETE")
	for _, k := range slices.Sorted(maps.Keys(t.Webhook.Headers)) {
		// A CR or LF would end the header and start others of the tenant's choosing.
		if msg := netguard.ValidHeader(k, t.Webhook.Headers[k]); msg != "" {
			field := "webhook.headers." + k
			if netguard.ValidHeader(k, "") != "" {
				field = "webhook.headers" // a name that is itself broken is not a field to name
			}
			fe.add(field, "%s", msg)
		}
	}
	fe.rangeInt("webhook.timeout_ms", t.Webhook.TimeoutMS, 100, 120_000)
	return fe.err()
}

// schemaTypes are the JSON Schema type names.
var schemaTypes = []string{"object", "array", "string", "number", "integer", "boolean", "null"}

// validateSchema checks that s is a well-formed JSON Schema, as far as the keywords a tool's
// parameters use: types, properties, required, items, enum, descriptions, bounds, combinators.
func validateSchema(fe *fieldErrors, field string, s map[string]any, depth int) {
	if depth > 16 {
		fe.add(field, "nests too deeply")
		return
	}
	if ty, ok := s["type"]; ok {
		switch ty := ty.(type) {
		case string:
			if !slices.Contains(schemaTypes, ty) {
				fe.add(field+".type", "unknown type %q", ty)
			}
		case []any:
			for _, t := range ty {
				if ts, ok := t.(string); !ok || !slices.Contains(schemaTypes, ts) {
					fe.add(field+".type", "unknown type %v", t)
				}
			}
		default:
			fe.add(field+".type", "must be a string or an array of strings")
		}
	}
	for _, k := range []string{"description", "title", "pattern", "format"} {
		if v, ok := s[k]; ok {
			if _, ok := v.(string); !ok {
				fe.add(field+"."+k, "must be a string")
			}
		}
	}
	for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "multipleOf"} {
		if v, ok := s[k]; ok {
			if _, ok := v.(float64); !ok {
				fe.add(field+"."+k, "must be a number")
			}
		}
	}
	var props map[string]any
	if p, ok := s["properties"]; ok {
		props, ok = p.(map[string]any)
		if !ok {
			fe.add(field+".properties", "must be an object of schemas")
		}
		for name, sub := range props {
			subField := field + ".properties." + name
			if m, ok := sub.(map[string]any); ok {
				validateSchema(fe, subField, m, depth+1)
			} else if _, ok := sub.(bool); !ok {
				fe.add(subField, "must be a schema (an object)")
			}
		}
	}
	if r, ok := s["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			fe.add(field+".required", "must be an array of property names")
		}
		for i, v := range list {
			name, ok := v.(string)
			if !ok {
				fe.add(fmt.Sprintf("%s.required[%d]", field, i), "must be a string")
				continue
			}
			if props != nil {
				if _, ok := props[name]; !ok {
					fe.add(fmt.Sprintf("%s.required[%d]", field, i), "names no property: %q", name)
				}
			}
		}
	}
	if it, ok := s["items"]; ok {
		if m, ok := it.(map[string]any); ok {
			validateSchema(fe, field+".items", m, depth+1)
		} else if _, ok := it.(bool); !ok {
			fe.add(field+".items", "must be a schema (an object)")
		}
	}
	if e, ok := s["enum"]; ok {
		if list, ok := e.([]any); !ok || len(list) == 0 {
			fe.add(field+".enum", "must be a non-empty array")
		}
	}
	if ap, ok := s["additionalProperties"]; ok {
		if m, ok := ap.(map[string]any); ok {
			validateSchema(fe, field+".additionalProperties", m, depth+1)
		} else if _, ok := ap.(bool); !ok {
			fe.add(field+".additionalProperties", "must be a boolean or a schema")
		}
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if v, ok := s[k]; ok {
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				fe.add(field+"."+k, "must be a non-empty array of schemas")
				continue
			}
			for i, sub := range list {
				if m, ok := sub.(map[string]any); ok {
					validateSchema(fe, fmt.Sprintf("%s.%s[%d]", field, k, i), m, depth+1)
				} else {
					fe.add(fmt.Sprintf("%s.%s[%d]", field, k, i), "must be a schema (an object)")
				}
			}
		}
	}
}

func (t *Tool) checkDelete(ctx context.Context, tx bun.IDB) error {
	var agents []Agent
	if err := tx.NewSelect().Model(&agents).Column("id", "tool_ids").Where("tenant_id = ?", t.TenantID).Scan(ctx); err != nil {
		return err
	}
	var users []string
	for _, a := range agents {
		if slices.Contains(a.ToolIDs, t.ID) {
			users = append(users, a.ID)
		}
	}
	var workflows []Workflow
	if err := tx.NewSelect().Model(&workflows).Column("id", "graph").Where("tenant_id = ?", t.TenantID).Scan(ctx); err != nil {
		return err
	}
	for _, w := range workflows {
		for _, n := range w.Graph.Nodes {
			if n.ToolID == t.ID {
				users = append(users, w.ID)
				break
			}
		}
	}
	if len(users) > 0 {
		return &ConflictError{Field: "id", Message: "the tool is used by " + strings.Join(users, ", ")}
	}
	return nil
}
