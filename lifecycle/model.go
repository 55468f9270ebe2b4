package lifecycle

import (
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/internal/ids"
)

// AccessCode is a code as the status API shows it.
type AccessCode struct {
	AccessCodeID           string          `json:"access_code_id"`
	WorkspaceID            *string         `json:"workspace_id"`
	DeviceID               *string         `json:"device_id"`
	ConnectedAccountID     *string         `json:"connected_account_id"`
	DeletionState          DeletionState   `json:"deletion_state"`
	OnDevice               *bool           `json:"on_device"`
	NeedsTroubleshooting   bool            `json:"needs_troubleshooting"`
	TroubleshootingReason  *string         `json:"troubleshooting_reason"`
	TroubleshootingDetails json.RawMessage `json:"troubleshooting_details"`
	CreatedAt              *time.Time      `json:"created_at"`
	SetOnDeviceAt          *time.Time      `json:"set_on_device_at"`
	DeletedAt              *time.Time      `json:"deleted_at"`
	RemovedFromDeviceAt    *time.Time      `json:"removed_from_device_at"`
	LastEventAt            *time.Time      `json:"last_event_at"`
	UpdatedAt              time.Time       `json:"updated_at"`
	AcknowledgedAt         *time.Time      `json:"acknowledged_at"`
	AcknowledgedBy         *string         `json:"acknowledged_by"`
	AcknowledgementNote    *string         `json:"acknowledgement_note"`
	// Events is the code's history, oldest first; only a single-code read
	// fills it.
	Events []EventRef `json:"events,omitempty"`
}

// EventRef is one entry of a code's history.
type EventRef struct {
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	OccurredAt time.Time `json:"occurred_at"`
	ReceivedAt time.Time `json:"received_at"`
}

// AlertPayload is the body of an alert, as stored in the outbox and sent to
// the webhook sink.
type AlertPayload struct {
	Type                   string          `json:"type"`
	AlertID                string          `json:"alert_id"`
	AccessCodeID           string          `json:"access_code_id"`
	WorkspaceID            string          `json:"workspace_id"`
	DeviceID               string          `json:"device_id"`
	ConnectedAccountID     string          `json:"connected_account_id"`
	DeletionState          DeletionState   `json:"deletion_state"`
	TroubleshootingReason  *string         `json:"troubleshooting_reason"`
	TroubleshootingDetails json.RawMessage `json:"troubleshooting_details"`
	DeletedAt              *time.Time      `json:"deleted_at"`
	AgeSeconds             int64           `json:"age_seconds"`
	// Resolution says how a deletion.resolved alert resolved: the code's
	// state ("removed") or "acknowledged".
	Resolution     string    `json:"resolution,omitempty"`
	AcknowledgedBy string    `json:"acknowledged_by,omitempty"`
	Note           string    `json:"note,omitempty"`
	Message        string    `json:"message"`
	NextStep       string    `json:"next_step,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// NextStep is Seam's troubleshooting guidance for a reason.
func NextStep(reason string) string {
	switch reason {
	case ReasonFailed:
		return "Seam keeps retrying in case the error was temporary. Read the error message, then check in the lock maker's app whether the code is still on the lock (someone may have removed it already). Acknowledge in codewatch once checked."
	case ReasonDelayed:
		return "Seam reports a delay: the lock may be offline (see device_errors). Check the lock's power and connection; Seam removes the code when the lock is reachable again."
	case ReasonOverdue:
		return "Seam has not confirmed the removal. Check that the lock is online and, in the lock maker's app, whether the code is still on it; if it is, remove it there or retry the deletion."
	}
	return ""
}

type pendingAlert struct {
	AlertPayload
}

func (s *Store) newAlert(now time.Time, typ string, st State, flag *Flag, resolution string) *pendingAlert {
	p := AlertPayload{
		Type:               typ,
		AlertID:            ids.NewTimeOrdered(now),
		AccessCodeID:       st.AccessCodeID,
		WorkspaceID:        st.WorkspaceID,
		DeviceID:           st.DeviceID,
		ConnectedAccountID: st.ConnectedAccountID,
		DeletionState:      st.DeletionState,
		DeletedAt:          st.DeletedAt,
		Resolution:         resolution,
		CreatedAt:          now,
	}
	if st.DeletedAt != nil {
		p.AgeSeconds = int64(now.Sub(*st.DeletedAt) / time.Second)
	}
	if flag != nil {
		p.TroubleshootingReason = &flag.Reason
		p.TroubleshootingDetails = json.RawMessage(troubleDetails(flag))
		p.NextStep = NextStep(flag.Reason)
	}
	p.Message = alertMessage(p)
	return &pendingAlert{p}
}

func alertMessage(p AlertPayload) string {
	reason := ""
	if p.TroubleshootingReason != nil {
		reason = *p.TroubleshootingReason
	}
	switch p.Type {
	case AlertTrouble:
		return "Deleted access code " + p.AccessCodeID + " is not confirmed off the lock: " + reason
	case AlertReminder:
		return "Still unresolved: deleted access code " + p.AccessCodeID + " is not confirmed off the lock: " + reason
	default:
		if p.Resolution == "acknowledged" {
			return "Acknowledged: access code " + p.AccessCodeID + " was checked by " + p.AcknowledgedBy
		}
		return "Resolved: access code " + p.AccessCodeID + " is " + string(p.DeletionState)
	}
}

// queueAlerts writes alerts to the outbox with one delivery per sink, in the
// caller's transaction.
func (s *Store) queueAlerts(b *pgx.Batch, alerts []*pendingAlert) {
	if len(alerts) == 0 {
		return
	}
	ids, codes, types, payloads := alertArrays(alerts)
	b.Queue(`INSERT INTO alerts (alert_id, access_code_id, type, payload, created_at)
		SELECT id, code, type, payload::jsonb, $5
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS t(id, code, type, payload)`,
		ids, codes, types, payloads, alerts[0].CreatedAt)
	b.Queue(`INSERT INTO alert_deliveries (alert_id, sink, next_attempt_at)
		SELECT a, s, $3 FROM unnest($1::uuid[]) AS a CROSS JOIN unnest($2::text[]) AS s`,
		ids, s.cfg.Sinks, alerts[0].CreatedAt)
}

// alertArrays lays alerts out as columns for unnest.
func alertArrays(alerts []*pendingAlert) (ids, codes, types, payloads []string) {
	for _, a := range alerts {
		body, _ := json.Marshal(a.AlertPayload)
		ids, codes = append(ids, a.AlertID), append(codes, a.AccessCodeID)
		types, payloads = append(types, a.Type), append(payloads, string(body))
	}
	return ids, codes, types, payloads
}
