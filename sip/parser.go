package sip

import (
	"github.com/emiago/sipgo/sip"
)

// lenientHeaders are the header fields whose malformed value makes a request answerable
// rather than unreadable. sipgo's parser drops a whole message when one of its header
// fields does not parse: a request with CSeq "36893488147419103232 REGISTER" or
// Max-Forwards "-1" was dropped in silence (RFC 4475 §3.1.2.4 wants 400). Through
// lenientParser such a field is kept as plain text: the typed accessor (CSeq(),
// MaxForwards()…) finds none, so the transaction layer (Via, CSeq) or the guard (the
// others) answers 400 naming it. Via, Route, Record-Route and Content-Length stay strict:
// without them a response cannot be routed or the message cannot be framed.
var lenientHeaders = map[string]string{
	"from": "From", "f": "From",
	"to": "To", "t": "To",
	"call-id": "Call-ID", "i": "Call-ID",
	"cseq":         "CSeq",
	"max-forwards": "Max-Forwards",
	"contact":      "Contact", "m": "Contact",
}

// newParser is sipgo's parser with lenientHeaders.
func newParser() *sip.Parser {
	m := map[string]sip.HeaderParser{}
	for name, p := range sip.DefaultHeadersParser() {
		m[name] = p
		if canonical, ok := lenientHeaders[name]; ok {
			m[name] = lenient(canonical, p)
		}
	}
	return sip.NewParser(sip.WithHeadersParsers(m))
}

func lenient(name string, p sip.HeaderParser) sip.HeaderParser {
	return func(headerName []byte, text string) (sip.Header, error) {
		h, err := p(headerName, text)
		if err == nil || err.Error() == "comma detected" { // sipgo's way of splitting a list
			return h, err
		}
		return sip.NewHeader(name, text), nil
	}
}
