package store

import (
	"context"
	"time"
)

// Channels of a call recording (RecordingSettings.Channels).
const (
	// RecordStereo keeps the caller on the left and Switchboard's side on the right.
	RecordStereo = "stereo"
	// RecordMono mixes both sides into one channel: half the size.
	RecordMono = "mono"
)

// MaxRecordingRetentionDays bounds an agent's retention_days: ten years.
const MaxRecordingRetentionDays = 3650

// RecordingSettings are an agent's wishes for the recordings of its calls, whatever
// carries them (SIP, WebRTC, media-stream sockets). A node that records every call
// (SWITCHBOARD_RECORD_CALLS) records the agent's calls too, in its channels.
type RecordingSettings struct {
	// Enabled records every answered call of the agent.
	Enabled bool `json:"enabled"`
	// Channels is RecordStereo (when empty) or RecordMono.
	Channels string `json:"channels"`
	// RetentionDays is how long the agent's recordings are kept after their call ends
	// (0: the node's SWITCHBOARD_RECORDING_RETENTION).
	RetentionDays int `json:"retention_days"`
}

// WithDefaults is s with its zero fields set to the defaults.
func (s RecordingSettings) WithDefaults() RecordingSettings {
	if s.Channels == "" {
		s.Channels = RecordStereo
	}
	return s
}

func (s RecordingSettings) validate(fe *fieldErrors) {
	fe.oneOf("recording.channels", s.Channels, RecordStereo, RecordMono)
	fe.rangeInt("recording.retention_days", s.RetentionDays, 0, MaxRecordingRetentionDays)
}

// ExpiredRecordings are the IDs of at most limit calls carried by node whose recording's
// retention ran out by now: the recordings that node holds on its disk and must delete.
func ExpiredRecordings(ctx context.Context, s *Store, node string, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.NewSelect().Model((*Call)(nil)).Column("id").
		Where("node = ?", node).Where("recording_expires_at IS NOT NULL").Where("recording_expires_at <= ?", now.UTC()).
		Order("recording_expires_at").Limit(int64(limit)).Scan(ctx, &ids)
	if err != nil {
		return nil, classify(err)
	}
	return ids, nil
}

// ClearRecording forgets the recording of call id (its file was deleted): the record no
// longer links one.
func ClearRecording(ctx context.Context, s *Store, id string) error {
	_, err := s.db.NewUpdate().Model((*Call)(nil)).Set("recording_url = ''").Set("recording_expires_at = NULL").
		Where("id = ?", id).Exec(ctx)
	return classify(err)
}

// RecordingURL is where the recording of call id is served.
func RecordingURL(id string) string { return "/api/v1/calls/" + id + "/recording" }
