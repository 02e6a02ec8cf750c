package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// TestToolWebhookHeaders: a webhook header that could end itself and start another (CR, LF),
// or that no HTTP request can carry (NUL, controls, a name that is not a token), is refused
// with the header named; ordinary headers pass.
func TestToolWebhookHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header, value string
		field               string // "" when valid
	}{
		{"bearer", "Authorization", "Bearer s3cret", ""},
		{"tab in value", "X-Foo", "a\tb", ""},
		{"unicode value", "X-Foo", "café", ""},
		{"token punctuation in name", "X-A.b_c~1!", "v", ""},
		{"CRLF in value", "X-Foo", "a\r\nX-Injected: 1", "webhook.headers.X-Foo"},
		{"CR in value", "X-Foo", "a\rb", "webhook.headers.X-Foo"},
		{"LF in value", "X-Foo", "a\nb", "webhook.headers.X-Foo"},
		{"NUL in value", "X-Foo", "a\x00b", "webhook.headers.X-Foo"},
		{"DEL in value", "X-Foo", "a\x7fb", "webhook.headers.X-Foo"},
		{"other control in value", "X-Foo", "a\x01b", "webhook.headers.X-Foo"},
		{"empty name", "", "v", "webhook.headers"},
		{"space in name", "X Foo", "v", "webhook.headers"},
		{"colon in name", "X-Foo:", "v", "webhook.headers"},
		{"CRLF in name", "X-Foo\r\nX-Bar", "v", "webhook.headers"},
		{"NUL in name", "X-Foo\x00", "v", "webhook.headers"},
		{"non-ASCII name", "X-Föö", "v", "webhook.headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tool := store.NewTool()
			tool.Name, tool.Webhook.URL = "lookup", "https://example.com/hook"
			tool.Webhook.Headers = map[string]string{tc.header: tc.value}
			err := tool.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *store.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want a validation error naming %s", err, tc.field)
			}
			if len(ve.Fields) != 1 || ve.Fields[0].Field != tc.field {
				t.Fatalf("fields %+v, want %s", ve.Fields, tc.field)
			}
			if strings.ContainsAny(ve.Fields[0].Message, "\r\n\x00") {
				t.Errorf("the message carries the bad bytes: %q", ve.Fields[0].Message)
			}
		})
	}
}
