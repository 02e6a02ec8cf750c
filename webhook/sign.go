package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The headers of every delivery. The signature is HMAC-SHA256, keyed with the server's
// secret exactly as it was shown, over the timestamp header's value, a ".", and the body's
// bytes as received; it is sent as "v1=" and the lower-case hex of the MAC. README's "Call
// webhooks" section gives the recipe a receiver follows.
const (
	HeaderEvent     = "X-Switchboard-Event"
	HeaderDelivery  = "X-Switchboard-Delivery"
	HeaderTimestamp = "X-Switchboard-Timestamp"
	HeaderSignature = "X-Switchboard-Signature"
)

// signatureVersion prefixes the signature, so that another scheme can be added beside it.
const signatureVersion = "v1="

// DefaultTolerance is how old a delivery's timestamp Verify accepts by default: enough for
// clocks a little apart, short enough that a captured delivery cannot be replayed later.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrBadTimestamp = errors.New("webhook: timestamp missing, malformed or outside the tolerance")
)

// Sign is the signature header's value of body sent at timestamp (Unix seconds).
func Sign(secret string, timestamp int64, body []byte) string {
	return signatureVersion + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver does: the signature header (one or more
// comma-separated "v1=" values) must match the body and timestamp header under secret, and
// the timestamp must be within tolerance of now (0: DefaultTolerance).
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrBadTimestamp
	}
	want := mac(secret, timestamp, body)
	for _, part := range strings.Split(signature, ",") {
		got, ok := strings.CutPrefix(strings.TrimSpace(part), signatureVersion)
		if !ok {
			continue
		}
		if b, err := hex.DecodeString(got); err == nil && hmac.Equal(b, want) {
			return nil
		}
	}
	return ErrBadSignature
}
