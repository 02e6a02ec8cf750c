package voice

import (
	"slices"
	"time"
)

// result builds the call's Result and publishes its report.
func (c *conversation) result() Result {
	reason := c.finalReason()
	c.mu.Lock()
	r := c.report
	transcript := slices.Clone(c.transcript)
	c.mu.Unlock()
	r.EndedReason = string(reason)
	r.DurationSeconds = time.Since(c.startAt).Seconds()
	var v2v []float64
	for _, t := range transcript {
		if t.Metrics != nil {
			v2v = append(v2v, t.Metrics.VoiceToVoiceMS)
		}
	}
	r.TurnLatenciesMS = v2v
	r.LatencyP50MS = percentile(v2v, 50)
	r.LatencyP90MS = percentile(v2v, 90)
	c.publish(EventReport, r)
	return Result{Reason: string(reason), Transcript: transcript, Report: r}
}

// percentile is the nearest-rank percentile p of xs, nil when there are none.
func percentile(xs []float64, p float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(float64(len(s))*p/100+0.999999) - 1
	return &s[max(0, min(k, len(s)-1))]
}
