package lifecycle

import (
	"encoding/json"
	"time"
)

// Event is one stored Seam event, as the state machine sees it.
type Event struct {
	EventID            string
	Type               string
	OccurredAt         time.Time
	WorkspaceID        string
	AccessCodeID       string
	DeviceID           string
	ConnectedAccountID string
	// Source is SourceWebhook or SourcePoll ("" reads as webhook).
	Source string
	// MessageID is the delivery's message id: Svix's id for a webhook.
	MessageID string
	// PINMatch says the event carries the PIN of the code whose history it
	// is loaded into (the store compares keyed hashes; the PIN itself never
	// reaches the domain).
	PINMatch bool
	// SamePIN, on a lock's report matched by PIN, lists the other managed
	// codes on the lock whose own events carried the same PIN: the report
	// may have been one of them (lockEvidence judges which were on the lock
	// then).
	SamePIN []PINCode
	// Details holds the errors and warnings arrays of trouble events, and
	// the content of codewatch's own events.
	Details json.RawMessage
}

// PINCode is another managed code on a lock that carried the PIN of a
// lock's report, as the store found it (comparing keyed hashes: the PIN
// itself never reaches the domain).
type PINCode struct {
	AccessCodeID string `json:"access_code_id"`
	// Since is when its first event of its own occurred.
	Since *time.Time `json:"since"`
	// DeletedAt is when it was deleted (its first deletion event); nil
	// while it is not.
	DeletedAt *time.Time `json:"deleted_at"`
}

// Trouble is a removal problem Seam reported.
type Trouble struct {
	Reason     string
	EventID    string
	OccurredAt time.Time
	Details    json.RawMessage
}

// State is the fold of one code's events.
type State struct {
	AccessCodeID       string
	WorkspaceID        string
	DeviceID           string
	ConnectedAccountID string
	DeletionState      DeletionState
	// OnDevice is nil when the events do not tell.
	OnDevice *bool
	// Trouble is set for Delayed and Failed: the report that caused it.
	Trouble *Trouble
	// DeletedExternally is true when the removal came from outside Seam.
	DeletedExternally   bool
	DeletionEventID     string
	CreatedAt           *time.Time
	SetOnDeviceAt       *time.Time
	DeletedAt           *time.Time
	RemovedFromDeviceAt *time.Time
	LastEventAt         *time.Time
	// ConfirmedBy says where the confirmation of a removed code came from:
	// SourceWebhook (a Seam event, received as a webhook) or SourcePoll
	// (codewatch's own poll of the API, or a Seam event it backfilled).
	ConfirmedBy string
	// Confirmation names the evidence that confirmed a removed code.
	Confirmation *Confirmation
	// DeletionRequest is codewatch's own deletion request, if any.
	DeletionRequest *DeletionRequest
	// Seam is what Seam's API said of the code at the newest poll.
	Seam *SeamView
	// Polls counts the code's lookups in Seam's API since its deletion (or
	// codewatch's request): reconciliation waits longer after each.
	Polls int
	// LockEvidence is the lock's own evidence that the deleted code is still
	// on it (used_after_deletion, still_on_lock): it outranks every other
	// trouble, whatever the deletion state says.
	LockEvidence *Trouble
}

// MaxReconcileInterval caps the wait between lookups of a code that stays
// unconfirmed.
const MaxReconcileInterval = 6 * time.Hour

// NextReconcile is when reconciliation should next look the code up in
// Seam's API: after (CODEWATCH_RECONCILE_AFTER) past its newest evidence,
// doubling with each lookup already made, up to MaxReconcileInterval. nil
// when the code's deletion is not unconfirmed or after is 0 (off).
func NextReconcile(st State, after time.Duration) *time.Time {
	if after <= 0 || !st.DeletionState.Unconfirmed() || st.LastEventAt == nil {
		return nil
	}
	wait := after
	for i := 0; i < st.Polls && wait < MaxReconcileInterval; i++ {
		wait *= 2
	}
	wait = min(wait, MaxReconcileInterval)
	next := st.LastEventAt.Add(wait)
	return &next
}

// UnconfirmedSince is when the code's unconfirmed deletion began: its
// deletion, or codewatch's request before Seam's deletion came; nil when
// its deletion is not unconfirmed.
func (s State) UnconfirmedSince() *time.Time {
	switch {
	case !s.DeletionState.Unconfirmed():
		return nil
	case s.DeletedAt != nil:
		return s.DeletedAt
	case s.DeletionRequest != nil:
		t := s.DeletionRequest.RequestedAt
		return &t
	}
	return nil
}

// DeletionRequest is a deletion codewatch asked Seam for, and its action
// attempt as last seen.
type DeletionRequest struct {
	RequestedAt     time.Time `json:"requested_at"`
	RequestedBy     string    `json:"requested_by,omitempty"`
	ActionAttemptID string    `json:"action_attempt_id"`
	// Status is the action attempt's: pending, success or error.
	Status  string        `json:"status"`
	Error   *AttemptError `json:"error,omitempty"`
	EndedAt *time.Time    `json:"ended_at,omitempty"`
}

// AttemptError is an action attempt's error, as Seam gives it.
type AttemptError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// SeamView is a live code as access_codes/get showed it, at PolledAt.
type SeamView struct {
	PolledAt time.Time         `json:"polled_at"`
	Found    bool              `json:"found"`
	Status   string            `json:"status,omitempty"`
	Errors   []json.RawMessage `json:"errors"`
	Warnings []json.RawMessage `json:"warnings"`
	// RequestID is Seam's seam-request-id of the lookup at PolledAt.
	RequestID string `json:"request_id,omitempty"`
	// Error is set when the newest lookup gave no evidence (its answer was
	// not Seam's word, or the code is outside the key's workspace); the
	// fields above are then the last lookup that did, if any.
	Error *LookupError `json:"error,omitempty"`
}

// LookupError is a lookup that gave no evidence about the code.
type LookupError struct {
	// At is when the lookup was made (the event's occurred_at).
	At time.Time `json:"at,omitzero"`
	// Type is LookupSeamError, LookupNotCovered or LookupWorkspaceUnknown.
	Type string `json:"type"`
	// Message says what came back, for people.
	Message string `json:"message"`
	// HTTPStatus is the answer's status (0: no answer).
	HTTPStatus int `json:"http_status,omitempty"`
	// SeamErrorType is the error type an answer in Seam's shape carried.
	SeamErrorType string `json:"seam_error_type,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
}

// Confirmation is the evidence that confirmed a code's removal: a Seam
// event (its event id, and its Svix message id when it came as a webhook)
// or a lookup whose answer was Seam's own not-found (its seam-request-id).
type Confirmation struct {
	// ConfirmedBy is SourceWebhook or SourcePoll, as AccessCode.ConfirmedBy.
	ConfirmedBy string `json:"confirmed_by"`
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	// At is the event's occurred_at, or when the lookup was made.
	At time.Time `json:"at"`
	// SvixID is the webhook's message id (svix-id); empty for events read
	// from Seam's API.
	SvixID string `json:"svix_id,omitempty"`
	// SeamRequestID is the lookup's seam-request-id.
	SeamRequestID string `json:"seam_request_id,omitempty"`
}

// PollDetails is the details of TypeAccessCodePolled and
// TypeAccessCodeGone: what the poll saw.
type PollDetails struct {
	Status   string            `json:"status,omitempty"`
	Errors   []json.RawMessage `json:"errors"`
	Warnings []json.RawMessage `json:"warnings"`
	// RequestID is the lookup's seam-request-id.
	RequestID string `json:"request_id,omitempty"`
}

// AttemptDetails is the details of TypeDeletionRequested and
// TypeActionAttempt.
type AttemptDetails struct {
	ActionAttemptID string        `json:"action_attempt_id"`
	Status          string        `json:"status"`
	Error           *AttemptError `json:"error,omitempty"`
	RequestedBy     string        `json:"requested_by,omitempty"`
}
