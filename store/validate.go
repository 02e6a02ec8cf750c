package store

import (
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"
)

const (
	maxNameLen     = 200
	maxTextLen     = 100_000 // instructions, descriptions: a long system prompt fits
	maxMetadataLen = 16 << 10
)

var (
	reModel    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*/[^\s]+$`)
	reLanguage = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$`)
	reE164     = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	reSIPUser  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._~+-]{0,63}$`)
	reSlug     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	reToolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
)

func (fe *fieldErrors) requireName(field, v string) {
	switch {
	case strings.TrimSpace(v) == "":
		fe.add(field, "is required")
	case utf8.RuneCountInString(v) > maxNameLen:
		fe.add(field, "must be at most %d characters", maxNameLen)
	}
}

func (fe *fieldErrors) maxText(field, v string) {
	if len(v) > maxTextLen {
		fe.add(field, "must be at most %d bytes", maxTextLen)
	}
}

func (fe *fieldErrors) metadata(field string, m map[string]any) {
	if b, _ := json.Marshal(m); len(b) > maxMetadataLen {
		fe.add(field, "must be at most %d bytes of JSON", maxMetadataLen)
	}
}

func (fe *fieldErrors) rangeInt(field string, v, lo, hi int) {
	if v < lo || v > hi {
		fe.add(field, "must be between %d and %d", lo, hi)
	}
}

func (fe *fieldErrors) rangeFloat(field string, v, lo, hi float64) {
	if v < lo || v > hi {
		fe.add(field, "must be between %g and %g", lo, hi)
	}
}

func (fe *fieldErrors) oneOf(field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	fe.add(field, "must be one of %s", strings.Join(allowed, ", "))
}
