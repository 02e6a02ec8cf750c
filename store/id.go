package store

import (
	"strings"

	"github.com/oklog/ulid/v2"
)

// ID prefixes: an ID says what it names, and sorts by creation time.
const (
	prefixTenant       = "ten_"
	prefixUser         = "usr_"
	prefixKey          = "key_"
	prefixRefreshToken = "rtk_"
	prefixAgent        = "agt_"
	prefixWorkflow     = "wf_"
	prefixTool         = "tool_"
	prefixPhoneNumber  = "pn_"
	prefixTrunk        = "trk_"
)

// newID returns a prefixed, lower-case ULID such as "agt_01jdq3…".
func newID(prefix string) string {
	return prefix + strings.ToLower(ulid.Make().String())
}

// validID reports whether s looks like an ID of the given prefix; a malformed ID can then be
// answered as not found without a query.
func validID(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix) || len(s) != len(prefix)+26 {
		return false
	}
	for _, c := range s[len(prefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
