package lifecycle

import (
	"encoding/json"
	"time"
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
	// PinHint is what people may see of the code's PIN: "••" and its last
	// two digits, from the newest event that carried the PIN; only a
	// single-code read fills it, and only when an event carried one.
	PinHint *string `json:"pin_hint,omitempty"`
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
	// PinHint is the hint ("••34") of the PIN the event carried, if any.
	PinHint *string `json:"pin_hint,omitempty"`
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
	Resolution     string `json:"resolution,omitempty"`
	AcknowledgedBy string `json:"acknowledged_by,omitempty"`
	Note           string `json:"note,omitempty"`
	Message        string `json:"message"`
	NextStep       string `json:"next_step,omitempty"`
	// CreatedAt is when codewatch raised the alert; Sequence numbers a code's
	// alerts 1, 2, 3... in that order. Each sink receives a code's alerts in
	// sequence order, so a receiver can also drop one older than the newest
	// it has seen.
	CreatedAt time.Time `json:"created_at"`
	Sequence  int64     `json:"sequence"`
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

// NewAlert builds the alert a change calls for. id is the alert's unique id
// (time-ordered), seq its place among the code's alerts.
func NewAlert(now time.Time, id string, seq int64, typ string, st State, flag *Flag, resolution string) AlertPayload {
	p := AlertPayload{
		Type:               typ,
		AlertID:            id,
		AccessCodeID:       st.AccessCodeID,
		WorkspaceID:        st.WorkspaceID,
		DeviceID:           st.DeviceID,
		ConnectedAccountID: st.ConnectedAccountID,
		DeletionState:      st.DeletionState,
		DeletedAt:          st.DeletedAt,
		Resolution:         resolution,
		CreatedAt:          now,
		Sequence:           seq,
	}
	if st.DeletedAt != nil {
		p.AgeSeconds = int64(now.Sub(*st.DeletedAt) / time.Second)
	}
	if flag != nil {
		p.TroubleshootingReason = &flag.Reason
		p.TroubleshootingDetails = json.RawMessage(TroubleDetails(flag))
		p.NextStep = NextStep(flag.Reason)
	}
	p.Message = AlertMessage(p)
	return p
}

// AlertMessage is the one-line summary of an alert.
func AlertMessage(p AlertPayload) string {
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

// Resolution is what a deletion.resolved alert reports: the code's state.
func Resolution(st State, alertType string) string {
	if alertType != AlertResolved {
		return ""
	}
	return string(st.DeletionState)
}

const noDetails = `{"access_code_errors":[],"access_code_warnings":[],"device_errors":[],"device_warnings":[]}`

// TroubleDetails is what ops staff see of a trouble: Seam's own errors and
// warnings from the event that caused it.
func TroubleDetails(f *Flag) string {
	if f.Reason == ReasonOverdue && len(f.Details) == 0 {
		// The sweeper flags thousands at once; no event, nothing to read.
		return noDetails
	}
	d := map[string]json.RawMessage{}
	if len(f.Details) > 0 {
		_ = json.Unmarshal(f.Details, &d)
	}
	out := map[string]any{}
	for _, k := range []string{"access_code_errors", "access_code_warnings", "device_errors", "device_warnings"} {
		if v, ok := d[k]; ok {
			out[k] = v
		} else {
			out[k] = []any{}
		}
	}
	if f.Reason != ReasonOverdue {
		out["event_id"] = f.Key
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// Delivery statuses.
const (
	DeliveryPending = "pending"
	DeliverySent    = "sent"
	DeliveryGivenUp = "given_up"
)

// AlertDelivery is one alert on its way to one sink: the outbox's record of
// what was sent, when, and what failed.
type AlertDelivery struct {
	AlertID       string          `json:"alert_id"`
	Sink          string          `json:"sink"`
	AccessCodeID  string          `json:"access_code_id"`
	Type          string          `json:"type"`
	Sequence      int64           `json:"sequence"`
	Status        string          `json:"status"`
	Attempts      int             `json:"attempts"`
	LastError     *string         `json:"last_error"`
	CreatedAt     time.Time       `json:"created_at"`
	NextAttemptAt *time.Time      `json:"next_attempt_at"`
	SentAt        *time.Time      `json:"sent_at"`
	GivenUpAt     *time.Time      `json:"given_up_at"`
	Payload       json.RawMessage `json:"-"`
}

// Delivery is one verified webhook (or an event read from Seam's API).
type Delivery struct {
	// MessageID is the svix-id (or webhook-id) header.
	MessageID string
	// Body is the raw body exactly as received.
	Body []byte
}

// Outcome is what happened to a delivery.
type Outcome string

// Outcomes.
const (
	Stored      Outcome = "stored"
	Duplicate   Outcome = "duplicate"
	Quarantined Outcome = "quarantined"
)

// Result reports a committed delivery.
type Result struct {
	Outcome   Outcome
	EventType string // "" when quarantined
	// Reason says why a delivery was quarantined.
	Reason string
}

// List orders.
const (
	// SortUrgency: codes needing troubleshooting first (most urgent reason
	// first, then the oldest deletion), then unconfirmed deletions oldest
	// first, then every other code, newest first.
	SortUrgency = "urgency"
	// SortRecent: newest first (by when codewatch first heard of the code).
	SortRecent = "recent"
)

// ListFilter selects codes for a list. Empty fields do not filter.
type ListFilter struct {
	States               []DeletionState
	NeedsTroubleshooting *bool
	WorkspaceID          string
	DeviceID             string
	// Sort is SortUrgency (the default) or SortRecent.
	Sort  string
	Limit int
	// Cursor is the NextCursor of the previous page (nil: the first).
	Cursor *ListCursor
}

// ListCursor is where a page of a list ends: the last row's place in the
// order (its segment, reason rank and deletion time for SortUrgency), and
// its id.
type ListCursor struct {
	Segment int
	Rank    int
	At      time.Time
	ID      int64
}

// ReasonRank orders troubleshooting reasons by urgency, most urgent first:
// what the triage list and sort=urgency show first.
func ReasonRank(reason string) int {
	for i, r := range ReasonsByUrgency {
		if r == reason {
			return i
		}
	}
	return len(ReasonsByUrgency)
}

// ReasonsByUrgency lists the reasons, most urgent first.
var ReasonsByUrgency = []string{ReasonFailed, ReasonDelayed, ReasonOverdue}

// MaxListLimit caps a page.
const MaxListLimit = 500

// StatusSummary is the state of all tracked codes at a glance.
type StatusSummary struct {
	DeletionStates       map[DeletionState]int64 `json:"deletion_states"`
	Total                int64                   `json:"total"`
	NeedsTroubleshooting int64                   `json:"needs_troubleshooting"`
	ByReason             map[string]int64        `json:"needs_troubleshooting_by_reason"`
	// OldestUnconfirmedDeletionAgeSeconds is null when every deletion is
	// confirmed.
	OldestUnconfirmedDeletionAgeSeconds *int64     `json:"oldest_unconfirmed_deletion_age_seconds"`
	OldestUnconfirmedDeletionAt         *time.Time `json:"oldest_unconfirmed_deletion_at"`
	// LastEventReceivedAt is when the newest stored event arrived.
	LastEventReceivedAt *time.Time `json:"last_event_received_at"`
	// OutboxDepth counts alert deliveries not yet made.
	OutboxDepth int64 `json:"outbox_depth"`
}

// QuarantinedDelivery is a verified delivery codewatch could not use.
type QuarantinedDelivery struct {
	ID         int64     `json:"quarantine_id"`
	MessageID  string    `json:"message_id"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
	SizeBytes  int       `json:"size_bytes"`
	// Body is the body with every PIN masked (••34), for a quick look;
	// nil when it is not valid UTF-8 or cannot be opened.
	Body *string `json:"body"`
	// BodyUnavailable says why a stored body cannot be opened (its data
	// key is no longer configured).
	BodyUnavailable *string `json:"body_unavailable,omitempty"`
}

// SweepResult counts what one sweep did.
type SweepResult struct {
	Overdue   int
	Reminders int
}

// DeliveryEnd is how an alert delivery ended.
type DeliveryEnd struct {
	AlertID, Sink string
	// Status is DeliverySent or DeliveryGivenUp.
	Status string
	// Error says why a delivery was given up.
	Error string
}
