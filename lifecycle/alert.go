package lifecycle

// An alert: its payload, its text, the guidance it gives and the evidence it
// names.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// AlertPayload is the body of an alert, as stored in the outbox and sent to
// the webhook sink.
type AlertPayload struct {
	Type               string `json:"type"`
	AlertID            string `json:"alert_id"`
	AccessCodeID       string `json:"access_code_id"`
	WorkspaceID        string `json:"workspace_id"`
	DeviceID           string `json:"device_id"`
	ConnectedAccountID string `json:"connected_account_id"`
	// Names (names.go), taken when the alert is delivered.
	AccessCodeName         *string         `json:"access_code_name"`
	DeviceName             *string         `json:"device_name"`
	LocationName           *string         `json:"location_name"`
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
	// Severity: "critical" when the lock itself shows the deleted code is
	// still there (used_after_deletion, still_on_lock), "warning" for other
	// trouble, "info" for a resolution.
	Severity string `json:"severity"`
	// LockOnline is the lock's connectivity when the alert was raised (null
	// when no event told).
	LockOnline *bool `json:"lock_online"`
	// TroubleID is the trouble's trouble_id (trouble and reminder alerts,
	// and the trouble a resolution resolves): acknowledging with it
	// acknowledges this trouble and nothing newer.
	TroubleID string `json:"trouble_id,omitempty"`
	// PreviousTroubleID is the trouble a trouble alert replaces: sinks that
	// keep incidents open (PagerDuty, Opsgenie) close it first.
	PreviousTroubleID string `json:"previous_trouble_id,omitempty"`
	// Confirmation names the evidence of a removal, on a resolution that a
	// confirmed removal brought.
	Confirmation *Confirmation `json:"confirmation,omitempty"`
}

// TroubleID is the opaque id of a code's trouble, as the API and console
// show it (trouble_id): an acknowledgement that names it covers that
// trouble and nothing newer. It is derived from the trouble's key, so it is
// the same on every replica and changes exactly when the trouble does.
func TroubleID(accessCodeID, troubleKey string) string {
	sum := sha256.Sum256([]byte(accessCodeID + "\x00" + troubleKey))
	return "trouble_" + fmt.Sprintf("%x", sum[:12])
}

// NextStep is the troubleshooting guidance for a reason, on a lock in the
// given state: an overdue or delayed removal on an offline lock waits for
// the lock.
func NextStep(reason string, lock LockStatus) string {
	if (reason == ReasonOverdue || reason == ReasonDelayed) && lock.Online != nil && !*lock.Online {
		since := ""
		if lock.OnlineChangedAt != nil {
			since = " since " + lock.OnlineChangedAt.UTC().Format(time.RFC3339)
		}
		why := ""
		if lock.ErrorCode != "" {
			why = " (" + lock.ErrorCode + ")"
		}
		return "The lock has been offline" + since + why + ", removal will happen when it reconnects. Check the lock's power and its hub or Wi-Fi; if it stays offline, remove the code at the lock."
	}
	switch reason {
	case ReasonUsedAfterDeletion:
		return "The lock opened with this code after it was deleted: the code is still on the lock. Remove it at the lock now (the lock maker's app or keypad), check who entered, then acknowledge in codewatch."
	case ReasonStillOnLock:
		return "The deleted code's PIN is on the lock as a code Seam does not manage: remove it at the lock now (the lock maker's app or keypad), then acknowledge in codewatch."
	case ReasonFailed:
		return "Seam keeps retrying in case the error was temporary. Read the error message, then check in the lock maker's app whether the code is still on the lock (someone may have removed it already). Acknowledge in codewatch once checked."
	case ReasonDelayed:
		return "Seam reports a delay: the lock may be offline (see device_errors). Check the lock's power and connection; Seam removes the code when the lock is reachable again."
	case ReasonDeleteFailed:
		return "Seam's deletion request ended in an error (see action_attempt_error). Check that the lock and its account are connected, then request the deletion again; if it keeps failing, remove the code in the lock maker's app."
	case ReasonOverdue:
		return "Seam has not confirmed the removal. Check that the lock is online and, in the lock maker's app, whether the code is still on it; if it is, remove it there or retry the deletion."
	}
	return ""
}

// LiveCodesWithSamePIN returns the live codes on the lock whose PIN is also
// that of the lock's report behind a trouble (its details' lock_event, as
// the fold writes them and as TroubleDetails keeps them): the report may
// have been one of them. nil when none shares it.
func LiveCodesWithSamePIN(details json.RawMessage) []string {
	var d struct {
		LockEvent struct {
			Live []string `json:"live_codes_with_same_pin"`
		} `json:"lock_event"`
	}
	if len(details) == 0 || json.Unmarshal(details, &d) != nil {
		return nil
	}
	return d.LockEvent.Live
}

// codesPhrase names codes for a sentence: "live code X" or "live codes X, Y".
func codesPhrase(codes []string) string {
	if len(codes) == 1 {
		return "live code " + codes[0]
	}
	return "live codes " + strings.Join(codes, ", ")
}

// TroubleNextStep is the guidance for a trouble given its details: as
// NextStep, except that the lock's evidence that a live code sharing the
// deleted code's PIN may explain asks staff to check the lock for the
// deleted code, not to remove what may be the live one.
func TroubleNextStep(reason string, details json.RawMessage, lock LockStatus) string {
	live := LiveCodesWithSamePIN(details)
	if len(live) == 0 {
		return NextStep(reason, lock)
	}
	codes := codesPhrase(live)
	them := strings.Join(live, ", ")
	switch reason {
	case ReasonUsedAfterDeletion:
		return "The lock opened after this code's deletion with its PIN, which is also the PIN of " + codes +
			" on this lock: the unlock may have been " + them + ". Check in the lock maker's app whether this deleted code is still on the lock; if it is, remove it there (not " +
			them + "), then acknowledge in codewatch. Later unlocks with this PIN while " + them + " is live do not alert again."
	case ReasonStillOnLock:
		return "A code Seam does not manage appeared on the lock with this deleted code's PIN, which is also the PIN of " + codes +
			" on this lock: it may be " + them + "'s, entered at the lock. Check in the lock maker's app whether this deleted code is still on the lock; if it is, remove it there (not " +
			them + "), then acknowledge in codewatch."
	}
	return NextStep(reason, lock)
}

// NewAlert builds the alert a change calls for. id is the alert's unique id
// (time-ordered), seq its place among the code's alerts.
func NewAlert(now time.Time, id string, seq int64, typ string, st State, flag *Flag, resolution string, lock LockStatus) AlertPayload {
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
		LockOnline:         lock.Online,
		Severity:           SeverityInfo,
	}
	if st.DeletedAt != nil {
		p.AgeSeconds = AgeSeconds(now, *st.DeletedAt)
	}
	if flag != nil {
		p.TroubleshootingReason = &flag.Reason
		p.TroubleshootingDetails = json.RawMessage(TroubleDetails(flag))
		p.NextStep = TroubleNextStep(flag.Reason, flag.Details, lock)
		if typ != AlertResolved {
			p.Severity = Severity(flag.Reason)
			p.TroubleID = TroubleID(st.AccessCodeID, flag.Key)
		}
	}
	if typ == AlertResolved && st.DeletionState == Removed {
		p.Confirmation = st.Confirmation
	}
	p.Message = AlertMessage(p)
	return p
}

// ConfirmationText names the evidence of a removal in one line, for people.
func ConfirmationText(c *Confirmation) string {
	if c.EventType == TypeAccessCodeGone {
		s := "Seam's API answered access_code_not_found to a lookup at " + c.At.UTC().Format(time.RFC3339)
		if c.SeamRequestID != "" {
			s += " (seam-request-id " + c.SeamRequestID + ")"
		}
		return s
	}
	s := "Seam's " + c.EventType + " event " + c.EventID
	if c.SvixID != "" {
		s += " (webhook, svix id " + c.SvixID + ")"
	} else {
		s += " (read from Seam's API)"
	}
	return s
}

// AgeSeconds is the whole seconds from t to now (negative when t is later).
// time.Time.Sub saturates at about 292 years, less than the times codewatch
// stores span (MinTime), so longer spans count in Unix seconds.
func AgeSeconds(now, t time.Time) int64 {
	if d := now.Sub(t); d > math.MinInt64 && d < math.MaxInt64 {
		return int64(d / time.Second)
	}
	secs, frac := now.Unix()-t.Unix(), now.Nanosecond()-t.Nanosecond()
	switch { // truncated toward zero, as the division above
	case secs > 0 && frac < 0:
		secs--
	case secs < 0 && frac > 0:
		secs++
	}
	return secs
}

// AlertMessage is the one-line summary of an alert.
func AlertMessage(p AlertPayload) string {
	reason := ""
	if p.TroubleshootingReason != nil {
		reason = *p.TroubleshootingReason
	}
	// The code by name and id, and its lock, when known (names.go).
	code, short := alertCode(p), CodeLabel(p.AccessCodeID, p.AccessCodeName)
	switch p.Type {
	case AlertTrouble:
		if live := LiveCodesWithSamePIN(p.TroubleshootingDetails); len(live) > 0 {
			switch reason {
			case ReasonUsedAfterDeletion:
				return "CRITICAL: the lock was unlocked after the deletion of access code " + code + " with its PIN, which " +
					codesPhrase(live) + " on the same lock shares: check whether " + short + " is still on the lock (the unlock may have been " + strings.Join(live, ", ") + ")"
			case ReasonStillOnLock:
				return "CRITICAL: a code Seam does not manage appeared on the lock with the PIN of deleted access code " + code + ", which " +
					codesPhrase(live) + " on the same lock shares: check whether " + short + " is still on the lock"
			}
		}
		switch reason {
		case ReasonUsedAfterDeletion:
			return "CRITICAL: deleted access code " + code + " still opens the door: the lock was unlocked with it after its deletion"
		case ReasonStillOnLock:
			return "CRITICAL: deleted access code " + code + " is still on the lock (as a code Seam does not manage)"
		}
		if reason == ReasonDeleteFailed {
			return "Seam could not delete access code " + code + ": " + reason
		}
		return "Deleted access code " + code + " is not confirmed off the lock: " + reason
	case AlertReminder:
		return "Still unresolved: deleted access code " + code + " is not confirmed off the lock: " + reason
	default:
		if p.Resolution == "acknowledged" {
			return "Acknowledged: access code " + code + " was checked by " + p.AcknowledgedBy
		}
		if p.Confirmation != nil {
			return "Resolved: access code " + code + " is " + string(p.DeletionState) + ", confirmed by " + ConfirmationText(p.Confirmation)
		}
		return "Resolved: access code " + code + " is " + string(p.DeletionState)
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
	// A failed deletion request carries its action attempt and Seam's
	// error; the lock's evidence, the lock's event (lockDetails).
	for _, k := range []string{"action_attempt_id", "action_attempt_error", "lock_event"} {
		if v, ok := d[k]; ok {
			out[k] = v
		}
	}
	if f.Reason != ReasonOverdue {
		out["event_id"] = f.Key
	}
	b, _ := json.Marshal(out)
	return string(b)
}
