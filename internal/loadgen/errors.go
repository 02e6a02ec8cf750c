package loadgen

import "errors"

var (
	// ErrConfig is a Config that cannot be run; the message says which field.
	ErrConfig = errors.New("loadgen: bad configuration")
	// ErrAnswer is a 200 whose SDP answer gives no usable RTP address or codec.
	ErrAnswer = errors.New("loadgen: unusable SDP answer")
	// ErrNoCPU is a process whose CPU time cannot be read (no /proc, or it has exited).
	ErrNoCPU = errors.New("loadgen: process CPU time unavailable")
)
