package api

import "github.com/switchboard-go/switchboard/sip"

// SIPListeners is what /health asks of the SIP server: the state of each listener.
type SIPListeners interface {
	Listeners() []sip.ListenerStatus
}

// SIPChecks reports the SIP listeners to /health (Config.Checks): a node whose SIP stopped
// answering is not healthy, whatever its HTTP and database say.
func SIPChecks(s SIPListeners) func() []HealthCheck {
	return func() []HealthCheck {
		ls := s.Listeners()
		out := make([]HealthCheck, 0, len(ls))
		for _, l := range ls {
			detail := l.Addr
			if l.Reason != "" {
				detail += ": " + l.Reason
			}
			out = append(out, HealthCheck{Name: "sip-" + l.Transport, Healthy: l.Serving, Detail: detail})
		}
		return out
	}
}
