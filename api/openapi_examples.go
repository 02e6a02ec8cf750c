package api

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Examples of the OpenAPI document: what a client sends and gets back, with ids in
// Switchboard's format and real times, so that a reader of /docs or /redoc sees an answer as
// the server gives it. A test validates each against its operation's schema.

// opDoc is what the document says of one operation beyond its route: a short summary (the
// route's own when empty), a description of what it does, who may call it, what it changes
// and its notable errors, and examples of its request body and answer.
type opDoc struct {
	Summary     string
	Description string
	// Request and Response are examples: a jsonText literal, a string (the body of a
	// non-JSON answer, such as an HTML page or an event stream) or a Go value, encoded as
	// the handler would.
	Request, Response any
}

// jsonText is an example written as JSON.
type jsonText string

// exampleValue is an example as the document holds it: decoded JSON.
func exampleValue(v any) any {
	switch v := v.(type) {
	case jsonText:
		var x any
		if err := json.Unmarshal([]byte(v), &x); err != nil {
			// The test of the document fails on the string where an object belongs.
			return string(v)
		}
		return x
	case string:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var x any
	if json.Unmarshal(b, &x) != nil {
		return nil
	}
	return x
}

// page is the canonical list of items: its first page of 20.
func page(items ...jsonText) jsonText {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = string(it)
	}
	return jsonText(`{"items":[` + strings.Join(parts, ",") + `],"total":` + strconv.Itoa(len(items)) + `,"limit":20,"offset":0}`)
}

// with is an example object with some of its fields changed or added (a JSON object
// literal of them).
func with(base, fields jsonText) jsonText {
	var b, f map[string]any
	if json.Unmarshal([]byte(base), &b) != nil || json.Unmarshal([]byte(fields), &f) != nil {
		return base + fields // invalid on purpose: the document's test names it
	}
	for k, v := range f {
		b[k] = v
	}
	out, _ := json.Marshal(b)
	return jsonText(out)
}

const (
	exTenantID = "ten_01m98d65ak9s346q3d25vt4f5v"
	exAgentID  = "agt_01m98eg3ffzx45hy43kwjrp1xp"
	exCallID   = "call_01m98fjz1t1dq91k5gqapenecf"
)

const exTenant jsonText = `{"id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"Acme Dental","slug":"acme-dental","max_calls":20,
"balance_usd":null,"metadata":{"plan":"team"},"created_at":"2026-12-01T09:00:00Z","updated_at":"2026-12-01T09:00:00Z"}`

const exUser jsonText = `{"id":"usr_01m98d82tr7e3s3e28jt97kb6c","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","email":"dana@acme-dental.example",
"name":"Dana Reyes","scopes":["read","write"],"last_login_at":"2026-12-07T13:55:02Z",
"created_at":"2026-12-01T09:04:10Z","updated_at":"2026-12-01T09:04:10Z"}`

const exKey jsonText = `{"id":"key_01m98dm14q643dzvmxxqkfbf5k","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"Call center backend",
"kind":"as_live_","display":"as_live_3kq9…x7Pw","scopes":["read","write"],"rate_limit":60,"token_limit":0,"budget_usd":50,
"last_used_at":"2026-12-07T13:58:40Z","expires_at":null,"revoked_at":null,"created_at":"2026-12-02T10:15:00Z","updated_at":"2026-12-02T10:15:00Z"}`

const exAgent jsonText = `{"id":"agt_01m98eg3ffzx45hy43kwjrp1xp","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"Front desk",
"instructions":"You answer the phone for Acme Dental. Book, move and cancel appointments with the booking tool; answer questions from the clinic's documents; keep answers to two sentences.",
"first_message":"Thank you for calling Acme Dental, this is the front desk. How can I help?",
"language":"en","model":"openai/gpt-4o-mini","temperature":0.7,
"voice":{"provider":"espeak","voice":"en-us","speed":1},"transcriber":{"provider":"openai","model":"whisper-1","language":"en"},
"tool_ids":["tool_01m98f3abwhtpre95b9ee0zbgj"],"knowledge_base_ids":["kb_01m98gx9563fch26w14wmchwyf"],
"knowledge":{"mode":"auto","limit":3,"max_chars":2000},"workflow_id":null,"transfer_targets":["+14155550123"],
"limits":{"max_duration_s":1800,"idle_timeout_s":30},
"turn":{"endpointing_ms":600,"interruptions":true,"min_interruption_ms":250,"first_message_interruptible":true},
"metadata":{"team":"clinic-ops"},"config":{"prompt":{"system":"You answer the phone for Acme Dental. Book, move and cancel appointments with the booking tool; answer questions from the clinic's documents; keep answers to two sentences."}},
"server":null,"recording":{"enabled":true,"channels":"stereo","retention_days":30},
"created_at":"2026-12-03T08:30:00Z","updated_at":"2026-12-06T17:12:45Z"}`

const exAgentCreate jsonText = `{"name":"Front desk",
"instructions":"You answer the phone for Acme Dental. Book, move and cancel appointments with the booking tool; answer questions from the clinic's documents; keep answers to two sentences.",
"first_message":"Thank you for calling Acme Dental, this is the front desk. How can I help?",
"model":"openai/gpt-4o-mini","voice":{"provider":"espeak","voice":"en-us"},
"tool_ids":["tool_01m98f3abwhtpre95b9ee0zbgj"],"knowledge_base_ids":["kb_01m98gx9563fch26w14wmchwyf"],
"transfer_targets":["+14155550123"],"recording":{"enabled":true,"retention_days":30},"metadata":{"team":"clinic-ops"}}`

const exWorkflow jsonText = `{"id":"wf_01m98engha7z3dj8fssz5awsh8","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"Opening hours menu",
"description":"Press 1 for opening hours, 2 for the front desk",
"graph":{"start":"welcome","nodes":[
{"id":"welcome","type":"gather","text":"Press 1 for our opening hours, or 2 to speak to the front desk.","input":"dtmf","max_digits":1,"timeout_ms":5000},
{"id":"hours","type":"say","text":"We are open Monday to Friday, eight to six."},
{"id":"desk","type":"transfer","to":"+14155550123"},
{"id":"bye","type":"hangup"}],
"edges":[{"from":"welcome","to":"hours","when":{"dtmf":"1"}},{"from":"welcome","to":"desk","when":{"dtmf":"2"}},{"from":"hours","to":"bye"}]},
"metadata":{},"created_at":"2026-12-03T09:00:00Z","updated_at":"2026-12-03T09:00:00Z"}`

const exTool jsonText = `{"id":"tool_01m98f3abwhtpre95b9ee0zbgj","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"book_appointment",
"description":"Book an appointment for the caller at a free slot",
"parameters":{"type":"object","properties":{"patient_name":{"type":"string"},"start":{"type":"string","format":"date-time"}},"required":["patient_name","start"]},
"webhook":{"url":"https://booking.acme-dental.example/hooks/book","method":"POST","headers":{"Authorization":"Bearer booking-hook-token"},"timeout_ms":10000},
"created_at":"2026-12-03T08:20:00Z","updated_at":"2026-12-03T08:20:00Z"}`

const exPhoneNumber jsonText = `{"id":"pn_01m98f3fh89tqm83xssss6ys3c","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","number":"+14155550100",
"name":"Main line","agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp","destination":"","trunk_id":"trk_01m98f5nfbdwa7n36096q14dr9",
"metadata":{},"server":null,"routable":true,"created_at":"2026-12-03T08:40:00Z","updated_at":"2026-12-03T08:40:00Z"}`

const exTrunk jsonText = `{"id":"trk_01m98f5nfbdwa7n36096q14dr9","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"Carrier A",
"direction":"both","inbound":{"allowed_cidrs":["203.0.113.0/24"],"username":"","has_password":false},
"outbound":{"address":"sip.carrier-a.example:5061","transport":"tls","username":"acme-dental","has_password":true,"caller_id":"+14155550100","register":false,"register_expires":0,"registrar":""},
"srtp":"offer","price_per_minute_usd":0.006,"registration":null,"created_at":"2026-12-03T08:35:00Z","updated_at":"2026-12-03T08:35:00Z"}`

const exProvider jsonText = `{"id":"prv_01m98fdrrjpqy77zxyyk596ngy","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"groq","kind":"openai",
"base_url":"https://api.groq.example/openai/v1","has_api_key":true,"models":["llama-3.3-70b-versatile"],"aliases":{"fast":"llama-3.3-70b-versatile"},
"prices":{"llama-3.3-70b-versatile":{"input_per_mtok":0.59,"output_per_mtok":0.79}},"fallbacks":{},"speech_prices":{"stt_per_minute":0,"tts_per_million_characters":0},
"created_at":"2026-12-02T11:00:00Z","updated_at":"2026-12-02T11:00:00Z"}`

const exCall jsonText = `{"id":"call_01m98fjz1t1dq91k5gqapenecf","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","direction":"inbound","status":"completed",
"from":"+14155550199","to":"+14155550100","agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp","trunk_id":"trk_01m98f5nfbdwa7n36096q14dr9","destination":"",
"sip_call_id":"7f3c2a91-55e0-4c0b-9a38-2d7e51c0f1a4@203.0.113.10","node":"sb-node-1","codec":"PCMU","media_security":"none",
"started_at":"2026-12-07T14:02:11Z","answered_at":"2026-12-07T14:02:12Z","ended_at":"2026-12-07T14:04:03Z","ended_reason":"caller-hangup",
"duration_seconds":111.4,"timeout_seconds":0,"turns":6,"interruptions":1,"tool_calls":1,"tool_failures":0,"latency_p50_ms":640,
"input_tokens":3120,"output_tokens":412,"stt_seconds":48.2,"tts_characters":611,"cost_usd":0.0241,
"cost":{"currency":"USD","telephony":0.0111,"model":0.0007,"stt":0.0048,"tts":0.0075,"total":0.0241},
"quality":{"packets_received":5570,"packets_sent":5566,"packets_lost":3,"packets_late":1,"jitter_ms":4.2,"loss_percent":0.05,"rtt_ms":38},
"amd":null,"recording_url":"/api/v1/calls/call_01m98fjz1t1dq91k5gqapenecf/recording","recording_expires_at":"2027-01-06T14:04:03Z",
"metadata":{},"report":{"ended_reason":"caller-hangup","duration_seconds":111.4,"turns":6,"latency_p50_ms":640,"latency_p90_ms":910},
"created_at":"2026-12-07T14:02:11Z","updated_at":"2026-12-07T14:04:03Z"}`

const exOutboundCall jsonText = `{"id":"call_01m98fztapeczp11hygcpwpq5e","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","direction":"outbound","status":"queued",
"from":"+14155550100","to":"+14155550142","agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp","trunk_id":"trk_01m98f5nfbdwa7n36096q14dr9","destination":"",
"sip_call_id":"","node":"sb-node-1","codec":"","media_security":"","started_at":null,"answered_at":null,"ended_at":null,"ended_reason":"",
"duration_seconds":0,"timeout_seconds":30,"turns":0,"interruptions":0,"tool_calls":0,"tool_failures":0,"latency_p50_ms":null,
"input_tokens":0,"output_tokens":0,"stt_seconds":0,"tts_characters":0,"cost_usd":0,
"cost":{"currency":"USD","telephony":0,"model":0,"stt":0,"tts":0,"total":0},
"quality":{"packets_received":0,"packets_sent":0,"packets_lost":0,"packets_late":0,"jitter_ms":0,"loss_percent":0,"rtt_ms":0},
"amd":null,"recording_url":"","recording_expires_at":null,"metadata":{"campaign":"recall-december"},"report":{},
"created_at":"2026-12-07T14:10:00Z","updated_at":"2026-12-07T14:10:00Z"}`

const exSession jsonText = `{"id":"ses_01m98g33xdeycndy0yp57rcybv","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp",
"agentId":"agt_01m98eg3ffzx45hy43kwjrp1xp","label":"Website chat","name":"Website chat","status":"active","metadata":{"visitor":"v-2291"},
"message_count":2,"messageCount":2,"input_tokens":812,"output_tokens":64,"cost_usd":0.00016,"created_by_key_id":"key_01m98dm14q643dzvmxxqkfbf5k","created_by_user_id":"",
"closed_at":null,"closedAt":null,"created_at":"2026-12-07T14:20:00Z","createdAt":"2026-12-07T14:20:00Z","updated_at":"2026-12-07T14:20:03Z","updatedAt":"2026-12-07T14:20:03Z"}`

const exUserMessage jsonText = `{"id":"msg_01m98gdscj5sxs5aa819x9yp98","session_id":"ses_01m98g33xdeycndy0yp57rcybv","role":"user","status":"completed",
"content":"Are you open on Saturday?","parts":[{"type":"text","text":"Are you open on Saturday?"}],"metadata":{},"created_at":"2026-12-07T14:20:01Z"}`

const exAnswerMessage jsonText = `{"id":"msg_01m98geg8y068vcd1gdjfmgt83","session_id":"ses_01m98g33xdeycndy0yp57rcybv","role":"assistant","status":"completed",
"content":"We are open Saturdays from nine to one. Would you like to book a visit?","parts":[{"type":"text","text":"We are open Saturdays from nine to one. Would you like to book a visit?"}],
"model":"openai/gpt-4o-mini","finish_reason":"stop","input_tokens":812,"output_tokens":64,"cost_usd":0.00016,"metadata":{},"created_at":"2026-12-07T14:20:03Z"}`

const exDeployment jsonText = `{"id":"dep_01m98gsvgzxt891wb09b9y73my","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp",
"version":3,"label":"December hours","agent":` + exAgent + `,"tools":[` + exTool + `],"created_at":"2026-12-06T17:15:00Z","updated_at":"2026-12-06T17:15:00Z"}`

const exKnowledgeBase jsonText = `{"id":"kb_01m98gx9563fch26w14wmchwyf","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","name":"Clinic handbook",
"description":"Opening hours, prices, insurance and aftercare","chunk_size":800,"chunk_overlap":100,"embedding_model":"",
"created_at":"2026-12-03T08:10:00Z","updated_at":"2026-12-03T08:10:00Z"}`

const exDocument jsonText = `{"id":"kdoc_01m98he1wzgcw8t7swm4fv4dk7","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","knowledge_base_id":"kb_01m98gx9563fch26w14wmchwyf",
"file_name":"price-list-2027.pdf","media_type":"application/pdf","size_bytes":184320,"checksum":"9f2c6a1e0b7d4c3f8a5e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a",
"status":"ready","chunk_count":42,"page_count":6,"created_at":"2026-12-03T08:12:00Z","updated_at":"2026-12-03T08:12:09Z"}`

const exHit jsonText = `{"chunk_id":"kdoc_01m98he1wzgcw8t7swm4fv4dk7:7","document_id":"kdoc_01m98he1wzgcw8t7swm4fv4dk7","document_name":"price-list-2027.pdf",
"knowledge_base_id":"kb_01m98gx9563fch26w14wmchwyf","heading_path":["Opening hours","Weekends"],"page":2,"position":7,"score":0.83,
"text":"Saturdays: 9:00 to 13:00, emergencies only after 12:00. Sundays closed."}`

const exDelivery jsonText = `{"id":"whd_01m98hk114q9g8xe6szaeavsnt","tenant_id":"ten_01m98d65ak9s346q3d25vt4f5v","call_id":"call_01m98fjz1t1dq91k5gqapenecf",
"event":"call.ended","url":"https://crm.acme-dental.example/switchboard/events","source":"agent","source_id":"agt_01m98eg3ffzx45hy43kwjrp1xp",
"status":"delivered","attempts":1,"response_code":200,"last_error":"","next_attempt_at":null,"delivered_at":"2026-12-07T14:04:04Z",
"payload":{"type":"call.ended","call_id":"call_01m98fjz1t1dq91k5gqapenecf","ended_reason":"caller-hangup"},
"created_at":"2026-12-07T14:04:03Z","updated_at":"2026-12-07T14:04:04Z"}`

const exFigures jsonText = `"calls":128,"answered":121,"answer_rate":0.945,"avg_duration_seconds":96.3,"duration_p50_seconds":81,"duration_p90_seconds":190,
"duration_p99_seconds":402,"turns":911,"turn_latency_p50_ms":640,"turn_latency_p90_ms":930,"turn_latency_p99_ms":1480,"interruptions":57,
"tool_calls":64,"tool_failures":2,"input_tokens":402110,"output_tokens":51332,"cost_usd":3.18,"end_reasons":{"caller-hangup":103,"agent-hangup":12,"no-answer":7,"transferred":6}`

var exAnalytics = jsonText(`{"from":"2026-12-01T00:00:00Z","to":"2026-12-08T00:00:00Z","bucket":"day","agent_id":null,
"total":{` + exFigures + `},
"buckets":[{"start":"2026-12-07T00:00:00Z",` + exFigures + `}],
"agents":[{"agent_id":"` + exAgentID + `",` + exFigures + `}]}`)

const exAmplifierConfig jsonText = `{"config_id":"cfg_01m98hsaehpm5q1nxw1rnj47e6","name":"support-bot","description":"Answers billing questions",
"tags":{"team":"billing"},"agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp",
"yaml_content":"bundle:\n  name: support-bot\nproviders:\n  - module: provider-openai\n    config:\n      model: gpt-4o-mini\n",
"created_at":"2026-12-05T10:00:00Z","updated_at":"2026-12-05T10:00:00Z","message":"Config created"}`

const exAmplifierSession jsonText = `{"session_id":"ses_01m98g33xdeycndy0yp57rcybv","config_id":"cfg_01m98hsaehpm5q1nxw1rnj47e6","agent_id":"agt_01m98eg3ffzx45hy43kwjrp1xp",
"status":"active","message_count":0,"created_at":"2026-12-07T14:20:00Z","updated_at":"2026-12-07T14:20:00Z","message":"Session created"}`

const exAmplifierApp jsonText = `{"app_id":"billing-portal","app_name":"Billing portal","is_active":true,"key_id":"key_01m98e4vxkznwj47tan9zt24mn",
"created_at":"2026-12-05T11:00:00Z","updated_at":"2026-12-05T11:00:00Z"}`

const exSDPOffer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n…"

const exSDPAnswer = "v=0\r\no=- 8217735921430051201 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\na=candidate:1 1 udp 2130706431 198.51.100.7 40012 typ host\r\n…"

// dialectErrorExamples are the errors of the compatible surfaces, each in its own shape.
var dialectErrorExamples = map[string]jsonText{
	"FastAPIError":   `{"detail":[{"loc":["body","yaml_content"],"msg":"is required","type":"missing"}]}`,
	"AmaStudioError": `{"error":{"message":"Invalid API key","code":401}}`,
	"OpenAIError":    `{"error":{"message":"The model 'openai/gpt-5-turbo' does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
	"AnthropicError": `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: is required"}}`,
}

// errorExample is the canonical error answer: a 422 naming the field.
const errorExample jsonText = `{"error":{"code":"validation_error","message":"Invalid request: temperature must be between 0 and 2",
"details":[{"field":"temperature","message":"must be between 0 and 2"}]}}`

// jsonString is s as a JSON string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
