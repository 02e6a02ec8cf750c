package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Sealer encrypts the secrets Switchboard must be able to read back (a trunk's SIP password,
// which digest authentication needs in the clear) with a key derived from the server secret.
// What never needs reading back (API keys, passwords of users) is hashed instead.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer derives an AES-256-GCM key from the server secret.
func NewSealer(secret []byte) (*Sealer, error) {
	if len(secret) < 16 {
		return nil, errors.New("store: server secret shorter than 16 bytes")
	}
	key := sha256.Sum256(append([]byte("switchboard/sealer/v1:"), secret...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext; the empty string stays empty.
func (s *Sealer) Seal(plaintext string) string {
	if plaintext == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return "v1:" + base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts what Seal produced.
func (s *Sealer) Open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if len(sealed) < 3 || sealed[:3] != "v1:" {
		return "", errors.New("store: sealed value of unknown version")
	}
	raw, err := base64.RawStdEncoding.DecodeString(sealed[3:])
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("store: sealed value is corrupt")
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", fmt.Errorf("store: sealed value does not open with this server secret: %w", err)
	}
	return string(pt), nil
}
