package netguard

import (
	"fmt"
	"strings"
)

// ValidHeader checks a header that a tenant configured for the node to send (a webhook's
// headers): a name of RFC 9110 token characters, and a value without CR, LF, NUL or other
// control characters but tab, which could otherwise end the header and write others of
// the tenant's choosing into the request. It returns a message that names the fault, or "".
func ValidHeader(name, value string) string {
	if name == "" {
		return "header name is empty"
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Sprintf("header name %q has a character not allowed in a header name", name)
		}
	}
	if i := strings.IndexFunc(value, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }); i >= 0 {
		switch value[i] {
		case '\r', '\n':
			return "value must not contain CR or LF"
		case 0:
			return "value must not contain NUL"
		}
		return "value must not contain control characters"
	}
	return ""
}

// isTokenChar reports whether c may appear in a header name (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
