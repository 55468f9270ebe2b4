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
