package lifecycle

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"strings"
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
	// ConfirmedBy is "webhook" or "poll" on a removed code: how its removal
	// was confirmed; null otherwise.
	ConfirmedBy *string `json:"confirmed_by"`
	// Confirmation names the evidence that confirmed a removed code (a Seam
	// event with its svix id, or a lookup with its seam-request-id); null
	// otherwise.
	Confirmation *Confirmation `json:"confirmation"`
	// DeletionRequest is codewatch's own deletion request, if it made one.
	DeletionRequest *DeletionRequest `json:"deletion_request"`
	// Seam is what Seam's API said of the code when codewatch last looked.
	Seam *SeamView `json:"seam"`
	// NextReconcileAt is when codewatch will next look the code up in
	// Seam's API (null: it will not).
	NextReconcileAt *time.Time `json:"next_reconcile_at"`
	// TroubleshootingSeverity is the current trouble's: "critical" (the
	// lock shows the deleted code is still there), "warning", or null.
	TroubleshootingSeverity *string `json:"troubleshooting_severity"`
	// TroubleID is an opaque id of the code's current trouble (null
	// without one): acknowledging with it acknowledges that trouble only.
	TroubleID *string `json:"trouble_id"`
	// LockOnline is the lock's connectivity (null when no event told).
	LockOnline *bool `json:"lock_online"`
	// Names people use (names.go): Seam's, null where unknown.
	AccessCodeName *string `json:"access_code_name"`
	DeviceName     *string `json:"device_name"`
	LocationName   *string `json:"location_name"`
	TimeZone       *string `json:"time_zone"`
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
	// Source is "webhook" (Seam sent it) or "poll" (codewatch got it from
	// Seam's API, or recorded its own request or lookup).
	Source string `json:"source"`
	// Details is what the event says of trouble (Seam's errors and
	// warnings arrays) or, for codewatch's own events, their content.
	Details json.RawMessage `json:"details,omitempty"`
	// PinHint is the hint ("••34") of the PIN the event carried, if any.
	PinHint *string `json:"pin_hint,omitempty"`
}

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
	// Source is SourceWebhook ("" reads as webhook) or SourcePoll: an event
	// codewatch fetched from Seam's API, or one of its own.
	Source string
	// own marks one of codewatch's own events: only OwnEvent sets it, so
	// no body from outside (a webhook, a backfill, a quarantine retry) can
	// claim a codewatch.* type, whatever its Source (see Admit).
	own bool
}

// BackfillMessagePrefix begins the message id of an event a backfill read
// from Seam's events/list (seamsync), so that a quarantine retry stores it
// with source "poll" as the backfill would have.
const BackfillMessagePrefix = "backfill:"

// ReservedEventType is the quarantine reason of a webhook that claims one of
// codewatch's own event types.
const ReservedEventType = "reserved_event_type: codewatch.* events are codewatch's own; Seam does not send them"

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
	// OccurredAt is when Seam says a stored event happened (zero when it
	// was not stored): codewatch_ingest_lag_seconds.
	OccurredAt time.Time
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
	// Reason selects codes whose troubleshooting_reason is this one.
	Reason string
	// Query: ?q=, part of the code's, its lock's or location's name.
	Query string
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
var ReasonsByUrgency = []string{ReasonUsedAfterDeletion, ReasonStillOnLock, ReasonFailed, ReasonDeleteFailed, ReasonDelayed, ReasonOverdue}

// MaxListLimit caps a page.
const MaxListLimit = 500

// StatusSummary is the state of all tracked codes at a glance.
type StatusSummary struct {
	// AsOf is when the figures were read; each is exact at that moment.
	AsOf                 time.Time               `json:"as_of"`
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
	// LocksOfflineWithUnconfirmedDeletions counts offline locks that have
	// codes whose deletion is not confirmed: removals waiting on a lock.
	LocksOfflineWithUnconfirmedDeletions int64 `json:"locks_offline_with_unconfirmed_deletions"`
	// CodesUsedAfterDeletion24h counts codes the lock was unlocked with,
	// after their deletion, in the last 24 hours.
	CodesUsedAfterDeletion24h int64 `json:"codes_used_after_deletion_24h"`
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

// Device is a lock as the API shows it.
type Device struct {
	DeviceID    string  `json:"device_id"`
	WorkspaceID *string `json:"workspace_id"`
	// Online is null when no event told.
	Online          *bool      `json:"online"`
	OnlineChangedAt *time.Time `json:"online_changed_at"`
	// ConnectivityErrorCode is Seam's reason the lock is offline.
	ConnectivityErrorCode *string    `json:"connectivity_error_code"`
	ConnectionFlaky       bool       `json:"connection_flaky"`
	LastEventAt           *time.Time `json:"last_event_at"`
	// CodesAwaitingRemoval counts the lock's codes whose deletion is
	// unconfirmed (deletion_requested, awaiting_removal, delayed, failed).
	CodesAwaitingRemoval        int64 `json:"codes_awaiting_removal"`
	CodesNeedingTroubleshooting int64 `json:"codes_needing_troubleshooting"`
	// Names (names.go), null where unknown; CustomMetadata and Provider
	// are not in the API.
	DeviceName     *string         `json:"device_name"`
	LocationName   *string         `json:"location_name"`
	TimeZone       *string         `json:"time_zone"`
	CustomMetadata json.RawMessage `json:"-"`
	Provider       *string         `json:"-"`
	// AccessCodes are the lock's codes, most urgent first; only on a
	// single-lock read, at most DeviceCodesLimit of them.
	AccessCodes []AccessCode `json:"access_codes,omitempty"`
	// AccessCodesNext is where the lock's next codes start when it has
	// more (sort=urgency); the API shows it as AccessCodesNextCursor, a
	// cursor for GET /v1/access_codes?device_id=...
	AccessCodesNext       *ListCursor `json:"-"`
	AccessCodesNextCursor *string     `json:"access_codes_next_cursor,omitempty"`
}

// DeviceCodesLimit is how many of its codes a single-lock read carries (a
// lock gains a code per stay, thousands over the years); the rest are a
// list away.
const DeviceCodesLimit = 100

// DeviceFilter selects locks.
type DeviceFilter struct {
	HasUnconfirmedDeletions *bool
	Online                  *bool
	WorkspaceID             string
	// Query selects locks whose name or location contains it,
	// case-insensitively (?q=).
	Query string
	Limit int
	// Cursor is the previous page's next cursor (0: the first page).
	Cursor int64
}
