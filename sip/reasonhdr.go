package sip

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// peerReason is one value of a Reason header (RFC 3326) that a peer's BYE or CANCEL
// carried: why a carrier or PBX ended the call.
type peerReason struct {
	Protocol string // "Q.850", "SIP", or whatever the peer named
	Cause    int    // -1 when the value had no usable cause
	Text     string
}

// Bounds on what a peer's Reason header can put on a call's record: a header is free text
// from the network, and the record is read by dashboards.
const (
	maxReasonValues = 8
	maxReasonText   = 128
	maxReasonHeader = 256
)

// parseReasons reads the values of Reason headers, several per header or several headers,
// tolerantly: a value without a protocol or with a bad cause is skipped, never an error,
// since a hang-up is never refused for its Reason.
func parseReasons(headers []string) []peerReason {
	var out []peerReason
	for _, h := range headers {
		for _, v := range splitQuoted(h, ',') {
			if len(out) == maxReasonValues {
				return out
			}
			if r, ok := parseReason(v); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

// parseReason reads one value: `protocol *(; param)`, with cause and text as parameters.
func parseReason(v string) (peerReason, bool) {
	parts := splitQuoted(v, ';')
	r := peerReason{Protocol: strings.TrimSpace(parts[0]), Cause: -1}
	if r.Protocol == "" || !isToken(r.Protocol) {
		return peerReason{}, false
	}
	if strings.EqualFold(r.Protocol, "q.850") {
		r.Protocol = "Q.850"
	} else if strings.EqualFold(r.Protocol, "sip") {
		r.Protocol = "SIP"
	}
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(p, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		switch name {
		case "cause":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 && n <= 999 && len(val) <= 3 {
				r.Cause = n
			}
		case "text":
			r.Text = cleanReasonText(unquote(val))
		}
	}
	if r.Cause < 0 && r.Text == "" {
		return peerReason{}, false
	}
	return r, true
}

// splitQuoted splits s at sep outside double quotes (a quoted text may hold commas and
// semicolons, and escape a quote with a backslash).
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote takes a quoted-string's content, undoing its backslash escapes; a value that is
// not quoted is taken as it is.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return strings.Trim(v, `"`)
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// cleanReasonText makes a peer's text fit for a record: valid UTF-8, no control
// characters, at most maxReasonText bytes.
func cleanReasonText(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxReasonText {
		s = strings.ToValidUTF8(s[:maxReasonText], "")
	}
	return s
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// reasonHeaders are the values of a request's Reason headers.
func reasonHeaders(req *sip.Request) []string {
	var vs []string
	for _, h := range req.GetHeaders("Reason") {
		vs = append(vs, h.Value())
	}
	return vs
}

// notePeerReason keeps why the far end ended the call, from the Reason headers of its BYE
// or CANCEL, on the call's record (metadata sip_reason, q850_cause, q850_text,
// sip_reason_cause) and so in call.ended: an operator sees that a carrier cleared the call
// as busy or as a network failure, not just that it hung up. A header that says nothing
// usable leaves the record as it was.
func (c *Call) notePeerReason(req *sip.Request) {
	rs := parseReasons(reasonHeaders(req))
	if len(rs) == 0 {
		return
	}
	vals := make([]string, 0, len(rs))
	q850, sipCause := -1, -1
	q850Text := ""
	for _, r := range rs {
		v := r.Protocol
		if r.Cause >= 0 {
			v += ";cause=" + strconv.Itoa(r.Cause)
		}
		if r.Text != "" {
			v += ";text=" + strconv.Quote(r.Text)
		}
		vals = append(vals, v)
		switch {
		case r.Protocol == "Q.850" && q850 < 0 && r.Cause >= 0 && r.Cause <= 127:
			q850, q850Text = r.Cause, r.Text
		case r.Protocol == "SIP" && sipCause < 0 && r.Cause >= 100 && r.Cause <= 699:
			sipCause = r.Cause
		}
	}
	header := strings.Join(vals, ", ")
	if len(header) > maxReasonHeader {
		header = strings.ToValidUTF8(header[:maxReasonHeader], "")
	}
	c.Edit(func(rec *store.Call) {
		if rec.Metadata == nil {
			rec.Metadata = map[string]any{}
		}
		rec.Metadata["sip_reason"] = header
		if q850 >= 0 {
			rec.Metadata["q850_cause"] = q850
			if q850Text != "" {
				rec.Metadata["q850_text"] = q850Text
			}
		}
		if sipCause >= 0 {
			rec.Metadata["sip_reason_cause"] = sipCause
		}
	})
	c.log.Info("far end gave a reason", "sip_reason", header)
}

// reasonHeader is the Reason header of a BYE or CANCEL by which Switchboard ends a call
// with reason.
func reasonHeader(reason call.Reason) sip.Header {
	return sip.NewHeader("Reason", reason.SIP().ReasonHeader())
}
