package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// invalidCase is a create body that must be refused with 422, naming field.
type invalidCase struct {
	name  string
	body  any
	field string
}

var (
	noTool     = "tool_" + strings.Repeat("0", 26)
	noWorkflow = "wf_" + strings.Repeat("0", 26)
	noAgent    = "agt_" + strings.Repeat("0", 26)
	noTrunk    = "trk_" + strings.Repeat("0", 26)
)

// with returns a copy of base with the top-level fields of kv set.
func with(base map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

type obj = map[string]any
type arr = []any

// graph builds a workflow body around nodes and edges that start at "greet".
func graph(nodes, edges arr) obj {
	return obj{"name": "menu", "graph": obj{"start": "greet", "nodes": nodes, "edges": edges}}
}

var (
	greet = obj{"id": "greet", "type": "say", "text": "Hello"}
	bye   = obj{"id": "bye", "type": "hangup"}
)

// TestValidation checks, resource by resource, that each bad field is a 422 validation_error
// whose details name it, and that nothing was written.
func TestValidation(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		tool := ts.createID("/api/v1/tools", ts.Key, obj{"name": "lookup", "webhook": obj{"url": "https://example.com/x"}})
		agent := ts.createID("/api/v1/agents", ts.Key, obj{"name": "a"})
		ts.createID("/api/v1/phone-numbers", ts.Key, obj{"number": "+14155550199", "destination": "echo"})

		agentBase := obj{"name": "Front desk"}
		toolBase := obj{"name": "lookup_order", "webhook": obj{"url": "https://example.com/hook"}}
		pnBase := obj{"number": "+14155550100", "destination": "echo"}
		trunkBase := obj{"name": "carrier", "inbound": obj{"allowed_cidrs": arr{"203.0.113.0/24"}}}
		userBase := obj{"email": "a@example.com", "password": "correct horse battery"}
		cases := map[string][]invalidCase{
			"agents": {
				{"temperature too high", with(agentBase, "temperature", 3), "temperature"},
				{"temperature negative", with(agentBase, "temperature", -0.1), "temperature"},
				{"voice speed too fast", with(agentBase, "voice", obj{"provider": "espeak", "speed": 9}), "voice.speed"},
				{"voice speed zero", with(agentBase, "voice", obj{"provider": "espeak", "speed": 0}), "voice.speed"},
				{"voice without provider", with(agentBase, "voice", obj{"provider": "", "speed": 1}), "voice.provider"},
				{"model without a slash", with(agentBase, "model", "gpt-4o"), "model"},
				{"model empty", with(agentBase, "model", ""), "model"},
				{"no name", obj{"instructions": "x"}, "name"},
				{"blank name", with(agentBase, "name", "   "), "name"},
				{"long name", with(agentBase, "name", strings.Repeat("n", 201)), "name"},
				{"language", with(agentBase, "language", "english"), "language"},
				{"transcriber provider", with(agentBase, "transcriber", obj{"provider": ""}), "transcriber.provider"},
				{"transcriber language", with(agentBase, "transcriber", obj{"provider": "openai", "language": "x"}), "transcriber.language"},
				{"tool that does not exist", with(agentBase, "tool_ids", arr{noTool}), "tool_ids[0]"},
				{"tool id malformed", with(agentBase, "tool_ids", arr{tool, "lookup"}), "tool_ids[1]"},
				{"tool listed twice", with(agentBase, "tool_ids", arr{tool, tool}), "tool_ids[1]"},
				{"workflow that does not exist", with(agentBase, "workflow_id", noWorkflow), "workflow_id"},
				{"workflow id malformed", with(agentBase, "workflow_id", "menu"), "workflow_id"},
				{"knowledge base id empty", with(agentBase, "knowledge_base_ids", arr{""}), "knowledge_base_ids[0]"},
				{"transfer target not a destination", with(agentBase, "transfer_targets", arr{"+15551230000", "front desk"}), "transfer_targets[1]"},
				{"transfer target listed twice", with(agentBase, "transfer_targets", arr{"sip:desk@pbx.example.com", "sip:desk@pbx.example.com"}), "transfer_targets[1]"},
				{"max duration", with(agentBase, "limits", obj{"max_duration_s": 5, "idle_timeout_s": 30}), "limits.max_duration_s"},
				{"idle timeout", with(agentBase, "limits", obj{"max_duration_s": 60, "idle_timeout_s": -1}), "limits.idle_timeout_s"},
				{"endpointing", with(agentBase, "turn", obj{"endpointing_ms": 50}), "turn.endpointing_ms"},
				{"min interruption", with(agentBase, "turn", obj{"endpointing_ms": 600, "min_interruption_ms": 6000}), "turn.min_interruption_ms"},
				{"metadata too large", with(agentBase, "metadata", obj{"blob": strings.Repeat("x", 17<<10)}), "metadata"},
				{"knowledge mode unknown", with(agentBase, "knowledge", obj{"mode": "sometimes"}), "knowledge.mode"},
				{"knowledge limit", with(agentBase, "knowledge", obj{"mode": "auto", "limit": 50}), "knowledge.limit"},
				{"knowledge max chars", with(agentBase, "knowledge", obj{"mode": "tool", "max_chars": 10}), "knowledge.max_chars"},
			},
			"workflows": {
				{"unknown node type", graph(arr{greet, obj{"id": "x", "type": "dance"}}, arr{obj{"from": "greet", "to": "x"}}), "graph.nodes[1].type"},
				{"dangling edge to", graph(arr{greet}, arr{obj{"from": "greet", "to": "nowhere"}}), "graph.edges[0].to"},
				{"dangling edge from", graph(arr{greet}, arr{obj{"from": "ghost", "to": "greet"}}), "graph.edges[0].from"},
				{"unreachable node", graph(arr{greet, bye, obj{"id": "orphan", "type": "say", "text": "?"}}, arr{obj{"from": "greet", "to": "bye"}}), "graph.nodes[2]"},
				{"no start", obj{"name": "menu", "graph": obj{"nodes": arr{greet}}}, "graph.start"},
				{"start names no node", obj{"name": "menu", "graph": obj{"start": "hello", "nodes": arr{greet}}}, "graph.start"},
				{"no nodes", obj{"name": "menu", "graph": obj{"start": "greet", "nodes": arr{}}}, "graph.nodes"},
				{"say without text", graph(arr{obj{"id": "greet", "type": "say"}}, nil), "graph.nodes[0].text"},
				{"node without id", graph(arr{greet, obj{"type": "hangup"}}, nil), "graph.nodes[1].id"},
				{"duplicate node id", graph(arr{greet, obj{"id": "greet", "type": "hangup"}}, nil), "graph.nodes[1].id"},
				{"edge after a terminal node", graph(arr{greet, bye, obj{"id": "after", "type": "say", "text": "x"}},
					arr{obj{"from": "greet", "to": "bye"}, obj{"from": "bye", "to": "after"}}), "graph.edges[1].from"},
				{"empty condition", graph(arr{greet, bye}, arr{obj{"from": "greet", "to": "bye", "when": obj{}}}), "graph.edges[0].when"},
				{"bad dtmf", graph(arr{greet, bye}, arr{obj{"from": "greet", "to": "bye", "when": obj{"dtmf": "x"}}}), "graph.edges[0].when.dtmf"},
				{"transfer nowhere", graph(arr{greet, obj{"id": "t", "type": "transfer", "to": "reception"}}, arr{obj{"from": "greet", "to": "t"}}), "graph.nodes[1].to"},
				{"gather input", graph(arr{greet, obj{"id": "g", "type": "gather", "input": "telepathy"}}, arr{obj{"from": "greet", "to": "g"}}), "graph.nodes[1].input"},
				{"tool that does not exist", graph(arr{greet, obj{"id": "t", "type": "tool", "tool_id": noTool}}, arr{obj{"from": "greet", "to": "t"}}), "graph.nodes[1].tool_id"},
				{"knowledge without base", graph(arr{greet, obj{"id": "k", "type": "knowledge"}}, arr{obj{"from": "greet", "to": "k"}}), "graph.nodes[1].knowledge_base_id"},
				{"knowledge base that does not exist", graph(arr{greet, obj{"id": "k", "type": "knowledge", "knowledge_base_id": "kb_" + strings.Repeat("0", 26)}}, arr{obj{"from": "greet", "to": "k"}}), "graph.nodes[1].knowledge_base_id"},
				{"query on a say node", graph(arr{obj{"id": "greet", "type": "say", "text": "Hi", "query": "x"}}, nil), "graph.nodes[0].query"},
				{"no name", obj{"graph": obj{"start": "greet", "nodes": arr{greet}}}, "name"},
			},
			"tools": {
				{"parameters not an object", with(toolBase, "parameters", "a string"), "parameters"},
				{"parameters null", with(toolBase, "parameters", nil), "parameters"},
				{"parameters not of an object", with(toolBase, "parameters", obj{"type": "array"}), "parameters.type"},
				{"parameters unknown type", with(toolBase, "parameters", obj{"type": "object", "properties": obj{"q": obj{"type": "strng"}}}), "parameters.properties.q.type"},
				{"parameters properties not an object", with(toolBase, "parameters", obj{"type": "object", "properties": arr{}}), "parameters.properties"},
				{"parameters property not a schema", with(toolBase, "parameters", obj{"type": "object", "properties": obj{"q": 5}}), "parameters.properties.q"},
				{"parameters required names no property", with(toolBase, "parameters", obj{"type": "object", "properties": obj{"q": obj{"type": "string"}}, "required": arr{"r"}}), "parameters.required[0]"},
				{"parameters required not an array", with(toolBase, "parameters", obj{"type": "object", "required": "q"}), "parameters.required"},
				{"parameters bound not a number", with(toolBase, "parameters", obj{"type": "object", "properties": obj{"n": obj{"type": "number", "minimum": "0"}}}), "parameters.properties.n.minimum"},
				{"parameters empty enum", with(toolBase, "parameters", obj{"type": "object", "properties": obj{"c": obj{"enum": arr{}}}}), "parameters.properties.c.enum"},
				{"name with a space", with(toolBase, "name", "look up"), "name"},
				{"no webhook url", obj{"name": "x"}, "webhook.url"},
				{"webhook not http", with(toolBase, "webhook", obj{"url": "ftp://example.com/x"}), "webhook.url"},
				{"webhook with credentials", with(toolBase, "webhook", obj{"url": "https://u:p@example.com/x"}), "webhook.url"},
				{"webhook method", with(toolBase, "webhook", obj{"url": "https://example.com/x", "method": "TRACE"}), "webhook.method"},
				{"webhook timeout", with(toolBase, "webhook", obj{"url": "https://example.com/x", "timeout_ms": 10}), "webhook.timeout_ms"},
				{"webhook header name", with(toolBase, "webhook", obj{"url": "https://example.com/x", "headers": obj{"Bad Header": "x"}}), "webhook.headers"},
				{"webhook header value with CRLF", with(toolBase, "webhook", obj{"url": "https://example.com/x", "headers": obj{"X-Foo": "a\r\nX-Injected: 1"}}), "webhook.headers.X-Foo"},
				{"webhook header value with LF", with(toolBase, "webhook", obj{"url": "https://example.com/x", "headers": obj{"X-Foo": "a\nb"}}), "webhook.headers.X-Foo"},
				{"webhook header value with NUL", with(toolBase, "webhook", obj{"url": "https://example.com/x", "headers": obj{"X-Foo": "a\x00b"}}), "webhook.headers.X-Foo"},
				{"webhook header name with CRLF", with(toolBase, "webhook", obj{"url": "https://example.com/x", "headers": obj{"X-Foo\r\nX-Bar": "1"}}), "webhook.headers"},
				{"webhook header name with a slash", with(toolBase, "webhook", obj{"url": "https://example.com/x", "headers": obj{"X/Foo": "1"}}), "webhook.headers"},
			},
			"phone-numbers": {
				{"not E.164: leading zero", with(pnBase, "number", "+0123"), "number"},
				{"not E.164: spaces", with(pnBase, "number", "+1 415 555 0100"), "number"},
				{"not E.164: too long", with(pnBase, "number", "+1234567890123456"), "number"},
				{"not a SIP user", with(pnBase, "number", "front desk!"), "number"},
				{"no number", obj{"destination": "echo"}, "number"},
				{"unknown destination", with(pnBase, "destination", "voicemail"), "destination"},
				{"agent and destination", with(pnBase, "agent_id", agent), "destination"},
				{"agent that does not exist", obj{"number": "+14155550100", "agent_id": noAgent}, "agent_id"},
				{"agent id malformed", obj{"number": "+14155550100", "agent_id": "front-desk"}, "agent_id"},
				{"trunk that does not exist", with(pnBase, "trunk_id", noTrunk), "trunk_id"},
			},
			"trunks": {
				{"bad CIDR prefix", with(trunkBase, "inbound", obj{"allowed_cidrs": arr{"10.0.0.0/33"}}), "inbound.allowed_cidrs[0]"},
				{"not an address", with(trunkBase, "inbound", obj{"allowed_cidrs": arr{"203.0.113.0/24", "300.1.1.1"}}), "inbound.allowed_cidrs[1]"},
				{"hostname as CIDR", with(trunkBase, "inbound", obj{"allowed_cidrs": arr{"carrier.example.com"}}), "inbound.allowed_cidrs[0]"},
				{"direction", with(trunkBase, "direction", "sideways"), "direction"},
				{"inbound admits nobody", with(trunkBase, "inbound", obj{}), "inbound"},
				{"username without password", with(trunkBase, "inbound", obj{"username": "u"}), "inbound.password"},
				{"outbound without address", with(trunkBase, "direction", "outbound"), "outbound.address"},
				{"outbound address not host", with(trunkBase, "direction", "both", "outbound", obj{"address": "sip:x@y"}), "outbound.address"},
				{"outbound transport", with(trunkBase, "outbound", obj{"transport": "sctp"}), "outbound.transport"},
				{"outbound caller id", with(trunkBase, "outbound", obj{"caller_id": "not a number!"}), "outbound.caller_id"},
				{"register without credentials", with(trunkBase, "direction", "both", "outbound", obj{"address": "sip.example.com", "register": true}), "outbound.register"},
				{"no name", obj{"inbound": obj{"allowed_cidrs": arr{"203.0.113.0/24"}}}, "name"},
			},
			"users": {
				{"email", with(userBase, "email", "not-an-email"), "email"},
				{"email with a name", with(userBase, "email", "Ops <ops@example.com>"), "email"},
				{"short password", with(userBase, "password", "short"), "password"},
				{"no password", obj{"email": "a@example.com"}, "password"},
				{"unknown scope", with(userBase, "scopes", arr{"root"}), "scopes[0]"},
				{"no scopes", with(userBase, "scopes", arr{}), "scopes"},
			},
			"keys": {
				{"env", obj{"name": "ci", "env": "prod"}, "env"},
				{"unknown scope", obj{"name": "ci", "scopes": arr{"read", "root"}}, "scopes[1]"},
				{"no scopes", obj{"name": "ci", "scopes": arr{}}, "scopes"},
				{"no name", obj{"scopes": arr{"read"}}, "name"},
				{"expired already", obj{"name": "ci", "expires_at": time.Now().Add(-time.Minute).Format(time.RFC3339)}, "expires_at"},
				{"negative rate limit", obj{"name": "ci", "rate_limit": -1}, "rate_limit"},
			},
			"tenants": {
				{"slug with capitals and space", obj{"slug": "Acme Corp"}, "slug"},
				{"no slug", obj{"name": "Acme"}, "slug"},
				{"slug starting with a hyphen", obj{"slug": "-acme"}, "slug"},
				{"long name", obj{"slug": "acme", "name": strings.Repeat("n", 201)}, "name"},
			},
		}
		for plural, list := range cases {
			t.Run(plural, func(t *testing.T) {
				ts := ts.with(t)
				path := "/api/v1/" + plural
				before := ts.total(path, ts.Key)
				for _, c := range list {
					r := ts.do(http.MethodPost, path, ts.Key, c.body)
					if r.Status != http.StatusUnprocessableEntity {
						t.Fatalf("%s: status %d, want 422: %s", c.name, r.Status, r.Body)
					}
					wantError(t, r, http.StatusUnprocessableEntity, "validation_error", c.field)
				}
				if after := ts.total(path, ts.Key); after != before {
					t.Fatalf("refused creates wrote rows: total %d, was %d", after, before)
				}
			})
		}
	})
}
