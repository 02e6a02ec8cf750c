package api_test

import (
	"net/http"
	"testing"
)

// TestInvalidUTF8: a body with bytes that are not UTF-8 is refused with 422 naming the field
// that holds them (never stored as U+FFFD), and nothing is written.
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ts *testServer) {
		for _, tc := range []struct {
			body, field string
		}{
			{"{\"name\":\"a\xffb\"}", "name"},
			{"{\"name\":\"truncated \xc3\"}", "name"},
			{"{\"name\":\"ok\",\"instructions\":\"\xed\xa0\x80 a surrogate\"}", "instructions"},
			{"{\"name\":\"ok\",\"metadata\":{\"note\":\"\xfe\"}}", "metadata.note"},
			{"{\"name\":\"ok\",\"metadata\":{\"deep\":{\"list\":[1,\"x\",\"\x80\"]}}}", "metadata.deep.list[2]"},
			{"{\"name\":\"ok\",\"metadata\":{\"\xff\":\"a key\"}}", "metadata"},
			{"{\"na\xffme\":\"ok\"}", "body"},
			{"{\"name\":\xff}", "body"}, // not JSON either
		} {
			r := ts.do(http.MethodPost, "/api/v1/agents", ts.Key, []byte(tc.body))
			wantError(t, r, http.StatusUnprocessableEntity, "validation_error", tc.field)
		}
		if m := ts.get("/api/v1/agents", ts.Key); m["total"] != 0.0 {
			t.Fatalf("agents written from bodies that were refused: %v", m)
		}
		// Valid UTF-8 beyond ASCII is kept as sent.
		got := ts.create("/api/v1/agents", ts.Key, obj{"name": "Zoë – 日本 🎧"})
		if got["name"] != "Zoë – 日本 🎧" {
			t.Fatalf("name stored as %q", got["name"])
		}
	})
}
