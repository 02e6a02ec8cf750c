package sip

import (
	"crypto/tls"
	"fmt"
)

// LoadTLS is the Config.TLS of a certificate and its key (PEM files): TLS 1.2 at least;
// nil, with no error, when neither file is named (the node serves no SIP over TLS).
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("SIP TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
