// Package lifecycle holds codewatch's domain: Seam events, the per-code
// deletion state machine, and the rules that say when a code needs
// troubleshooting. The rules (this file) are plain Go with no I/O; the
// Postgres store that runs them inside the ingest transaction sits beside them.
package lifecycle

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"
)

// Event types the state machine folds. Every other access_code.* event is kept
// in the code's history and keeps its ids current.
const (
	TypeCreated            = "access_code.created"
	TypeSetOnDevice        = "access_code.set_on_device"
	TypeRemovedFromDevice  = "access_code.removed_from_device"
	TypeDeleted            = "access_code.deleted"
	TypeDelayInRemoving    = "access_code.delay_in_removing_from_device"
	TypeFailedToRemove     = "access_code.failed_to_remove_from_device"
	TypeDeletedExternally  = "access_code.deleted_external_to_seam"
	accessCodeFamilyPrefix = "access_code."
)

// The lock's own evidence about a code (docs/lifecycle.md, "Evidence from
// the lock"). An unlock or refusal that names the code (access_code_id), or
// carries its PIN on its lock, joins the code's history.
const (
	TypeLockUnlocked     = "lock.unlocked"
	TypeLockAccessDenied = "lock.access_denied"
	// TypeUnmanagedCreated: a code Seam does not manage appeared on a lock.
	// With a deleted code's PIN, on its lock, after its deletion: the code
	// is still there.
	TypeUnmanagedCreated = "access_code.unmanaged.created"
	unmanagedPrefix      = "access_code.unmanaged."
	// TypeUnmanagedFound: codewatch found the deleted code's PIN among the
	// lock's unmanaged codes (access_codes/unmanaged/list).
	TypeUnmanagedFound = "codewatch.unmanaged_code_found"
)

// IsHistoryEvent reports whether an event that names a code joins that
// code's history: Seam's access_code.* events, codewatch's own, and the
// lock's unlocks and refusals.
func IsHistoryEvent(eventType string) bool {
	return IsAccessCodeEvent(eventType) || eventType == TypeLockUnlocked || eventType == TypeLockAccessDenied
}

// ownFamily reports whether e is one of the code's own events (as opposed
// to a lock's event or an unmanaged code's event matched by its PIN): only
// these set the code's ids.
func ownFamily(e *Event) bool {
	return IsAccessCodeEvent(e.Type) && !strings.HasPrefix(e.Type, unmanagedPrefix)
}

// Event types codewatch records of its own, from Seam's API (source
// "poll"). They join a code's history beside Seam's events and Fold reads
// them the same way, so replay and order independence hold for them too.
// Their details are JSON codewatch writes (see the Poll* types).
const (
	// TypeDeletionRequested: codewatch asked Seam to delete the code
	// (access_codes/delete answered with an action attempt).
	TypeDeletionRequested = "codewatch.deletion_requested"
	// TypeActionAttempt: the deletion's action attempt ended (success or
	// error), as action_attempts/get reported it.
	TypeActionAttempt = "codewatch.action_attempt"
	// TypeAccessCodePolled: access_codes/get found the code, with its
	// status, errors and warnings.
	TypeAccessCodePolled = "codewatch.access_code_polled"
	// TypeAccessCodeGone: access_codes/get answered Seam's own 404
	// (access_code_not_found in Seam's error shape) for a code in the API
	// key's workspace: Seam has no such code any more. Nothing else is
	// recorded as this type (docs/lifecycle.md, "What confirms a removal").
	TypeAccessCodeGone = "codewatch.access_code_not_found"
	// TypeLookupFailed: a lookup gave no evidence about the code: Seam's
	// API failed or answered something that is not Seam's word (an HTML
	// 404, a redirect, a 5xx...), or the code is in a workspace the API key
	// does not reach, or which workspace the key reaches is not known yet.
	// It confirms nothing; the code shows it under seam.error.
	TypeLookupFailed = "codewatch.lookup_failed"
	codewatchPrefix  = "codewatch."
)

// Why a lookup gave no evidence (LookupError.Type).
const (
	// LookupSeamError: Seam's API failed or answered something that is not
	// Seam's word about the code.
	LookupSeamError = "seam_api_error"
	// LookupNotCovered: the code is in another workspace than SEAM_API_KEY's;
	// codewatch never looks it up, deletes it or backfills it with that key.
	LookupNotCovered = "workspace_not_covered"
	// LookupWorkspaceUnknown: Seam answered not found, but which workspace
	// SEAM_API_KEY belongs to is not known yet (workspaces/get failed), or
	// the code's workspace is not known: the answer may be about another
	// workspace, so it confirms nothing.
	LookupWorkspaceUnknown = "workspace_unknown"
)

// Event sources.
const (
	SourceWebhook = "webhook"
	SourcePoll    = "poll"
)

// IsAccessCodeEvent reports whether an event type belongs to the family whose
// events make up a code's history: Seam's access_code.* and codewatch's own.
func IsAccessCodeEvent(eventType string) bool {
	return strings.HasPrefix(eventType, accessCodeFamilyPrefix) || strings.HasPrefix(eventType, codewatchPrefix)
}

// DeletionState is where a code stands in its deletion.
type DeletionState string

// The deletion states; docs/lifecycle.md explains each.
const (
	Active DeletionState = "active"
	// DeletionRequested: codewatch asked Seam to delete the code and Seam's
	// access_code.deleted has not come yet.
	DeletionRequested    DeletionState = "deletion_requested"
	AwaitingRemoval      DeletionState = "awaiting_removal"
	Delayed              DeletionState = "delayed"
	Failed               DeletionState = "failed"
	Removed              DeletionState = "removed"
	DeletedNotProgrammed DeletionState = "deleted_not_programmed"
)

// States lists every deletion state, in lifecycle order.
var States = []DeletionState{Active, DeletionRequested, AwaitingRemoval, Delayed, Failed, Removed, DeletedNotProgrammed}

// Terminal reports whether no further removal is expected.
func (s DeletionState) Terminal() bool { return s == Removed || s == DeletedNotProgrammed }

// Unconfirmed reports whether the code is deleted and its removal from the
// lock is not confirmed.
func (s DeletionState) Unconfirmed() bool {
	return s == DeletionRequested || s == AwaitingRemoval || s == Delayed || s == Failed
}

// Reasons a code needs troubleshooting.
const (
	ReasonOverdue = "removal_overdue"
	ReasonDelayed = "removal_delayed"
	ReasonFailed  = "failed_to_remove"
	// ReasonDeleteFailed: the action attempt of codewatch's deletion
	// request ended in error.
	ReasonDeleteFailed = "delete_action_failed"
	// ReasonUsedAfterDeletion: the lock was unlocked with the code after
	// its deletion. The worst case: critical, outranks everything.
	ReasonUsedAfterDeletion = "used_after_deletion"
	// ReasonStillOnLock: the deleted code's PIN is on the lock as an
	// unmanaged code. Critical.
	ReasonStillOnLock = "still_on_lock"
)

// Severities of trouble and alerts.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// Severity is a reason's: critical when the lock itself shows the deleted
// code is still there, warning otherwise; "" without a reason.
func Severity(reason string) string {
	switch reason {
	case "":
		return ""
	case ReasonUsedAfterDeletion, ReasonStillOnLock:
		return SeverityCritical
	}
	return SeverityWarning
}

// Reasons lists every troubleshooting reason.
var Reasons = []string{ReasonOverdue, ReasonDelayed, ReasonFailed, ReasonDeleteFailed, ReasonUsedAfterDeletion, ReasonStillOnLock}

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

// liveAt reports whether the code was on its lock at t, as its events
// tell: it existed by then and was not deleted yet.
func (c PINCode) liveAt(t time.Time) bool {
	return (c.Since == nil || !c.Since.After(t)) && (c.DeletedAt == nil || c.DeletedAt.After(t))
}

// liveSharers lists, sorted, the codes of e.SamePIN that were live when e
// occurred.
func liveSharers(e *Event) []string {
	var out []string
	for _, c := range e.SamePIN {
		if c.AccessCodeID != "" && c.liveAt(e.OccurredAt) && !slices.Contains(out, c.AccessCodeID) {
			out = append(out, c.AccessCodeID)
		}
	}
	sort.Strings(out)
	return out
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

// Sort orders events the way Fold reads them: by occurred_at, then event_id.
// The order is total for distinct event ids, so any delivery order of the same
// set sorts the same.
func Sort(events []Event) {
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if !a.OccurredAt.Equal(b.OccurredAt) {
			return a.OccurredAt.Before(b.OccurredAt)
		}
		return a.EventID < b.EventID
	})
}

// Fold computes a code's state from all of its events, in any order and with
// duplicates. It recomputes from the whole set rather than applying one event
// to a previous state, so late and reordered deliveries give the same answer.
func Fold(events []Event) State {
	evs := dedupe(events)
	Sort(evs)

	var (
		st        State
		onDevice  *bool
		created   bool
		everSet   bool
		deleted   bool
		requested bool // codewatch asked Seam to delete it
		confirmed bool // off the lock by a confirmation not undone by a later set
		// lastConfirmedBy is the source of the newest confirmation, and
		// lastConfirmation its evidence.
		lastConfirmedBy  string
		lastConfirmation *Confirmation
		trouble          *Trouble
		// attempts are the action attempts' ends, by id: applied to the
		// request they belong to after the loop, whatever their order.
		attempts = map[string]Event{}
	)
	yes, no := true, false
	// The lock's evidence, judged once the code's deletion and lock are
	// known (after the loop).
	var lockEvents []*Event
	for i := range evs {
		e := &evs[i]
		at := e.OccurredAt
		st.LastEventAt = &at
		if !ownFamily(e) {
			lockEvents = append(lockEvents, e)
			continue
		}
		if e.AccessCodeID != "" {
			st.AccessCodeID = e.AccessCodeID
		}
		if e.WorkspaceID != "" {
			st.WorkspaceID = e.WorkspaceID
		}
		if e.DeviceID != "" {
			st.DeviceID = e.DeviceID
		}
		if e.ConnectedAccountID != "" {
			st.ConnectedAccountID = e.ConnectedAccountID
		}

		switch e.Type {
		case TypeCreated:
			created = true
			if st.CreatedAt == nil {
				st.CreatedAt = &at
			}
			// Created means "not on the lock yet", unless a set (with a
			// skewed clock) already said otherwise.
			if onDevice == nil {
				onDevice = &no
			}
		case TypeSetOnDevice:
			everSet = true
			onDevice = &yes
			st.SetOnDeviceAt = &at
			// A new programming starts a new episode: earlier confirmations
			// and removal trouble no longer describe the lock.
			confirmed = false
			trouble = nil
		case TypeRemovedFromDevice:
			onDevice = &no
			confirmed = true
			trouble = nil
			st.RemovedFromDeviceAt = &at
			lastConfirmedBy, lastConfirmation = sourceOf(e), eventConfirmation(e)
		case TypeDeletedExternally:
			onDevice = &no
			confirmed = true
			trouble = nil
			st.DeletedExternally = true
			st.RemovedFromDeviceAt = &at
			lastConfirmedBy, lastConfirmation = sourceOf(e), eventConfirmation(e)
			if !deleted {
				deleted = true
				st.DeletedAt = &at
				st.DeletionEventID = e.EventID
			}
		case TypeDeleted:
			if !deleted {
				deleted = true
				st.DeletedAt = &at
				st.DeletionEventID = e.EventID
			}
		case TypeDelayInRemoving, TypeFailedToRemove:
			// A report after a confirmed removal stays in the history only.
			if confirmed {
				continue
			}
			reason := ReasonDelayed
			if e.Type == TypeFailedToRemove {
				reason = ReasonFailed
			}
			trouble = &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: at, Details: e.Details}
		case TypeDeletionRequested:
			var d AttemptDetails
			_ = json.Unmarshal(e.Details, &d)
			// The newest request is the one that counts (a request again
			// after a failed attempt).
			requested = true
			st.DeletionRequest = &DeletionRequest{RequestedAt: at, RequestedBy: d.RequestedBy,
				ActionAttemptID: d.ActionAttemptID, Status: "pending"}
		case TypeActionAttempt:
			var d AttemptDetails
			if json.Unmarshal(e.Details, &d) == nil && d.ActionAttemptID != "" {
				attempts[d.ActionAttemptID] = *e
			}
		case TypeAccessCodePolled:
			if deleted || requested {
				st.Polls++
			}
			var d PollDetails
			_ = json.Unmarshal(e.Details, &d)
			st.Seam = &SeamView{PolledAt: at, Found: true, Status: d.Status, Errors: nonNil(d.Errors), Warnings: nonNil(d.Warnings),
				RequestID: d.RequestID}
			// What the lock's code looks like in Seam counts like Seam's
			// own reports, once the code is being deleted.
			if (deleted || requested) && !confirmed {
				if reason := PollReason(d); reason != "" {
					trouble = &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: at, Details: pollTroubleDetails(d)}
				}
			}
		case TypeUnmanagedFound:
			lockEvents = append(lockEvents, e)
		case TypeLookupFailed:
			var d LookupError
			_ = json.Unmarshal(e.Details, &d)
			if (deleted || requested) && d.Type != LookupNotCovered {
				st.Polls++ // a failing API is asked again later, not sooner
			}
			d.At = at
			v := SeamView{PolledAt: at, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}
			if st.Seam != nil {
				v = *st.Seam
			}
			v.Error = &d
			st.Seam = &v
		case TypeAccessCodeGone:
			if deleted || requested {
				st.Polls++
			}
			var d PollDetails
			_ = json.Unmarshal(e.Details, &d)
			st.Seam = &SeamView{PolledAt: at, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}, RequestID: d.RequestID}
			// A 404 after the deletion (or codewatch's request) confirms it.
			// After a request alone, Seam's deletion event has not come: the
			// 404 is the first evidence of the deletion too.
			if deleted || requested {
				if !deleted {
					deleted = true
					st.DeletedAt = &at
					st.DeletionEventID = e.EventID
				}
				onDevice = &no
				confirmed = true
				trouble = nil
				st.RemovedFromDeviceAt = &at
				lastConfirmedBy = SourcePoll
				lastConfirmation = &Confirmation{ConfirmedBy: SourcePoll, EventID: e.EventID, EventType: e.Type,
					At: at, SeamRequestID: d.RequestID}
			}
		}
	}
	var attemptTrouble *Trouble
	if r := st.DeletionRequest; r != nil {
		if e, ok := attempts[r.ActionAttemptID]; ok {
			var d AttemptDetails
			_ = json.Unmarshal(e.Details, &d)
			end := e.OccurredAt
			r.Status, r.Error, r.EndedAt = d.Status, d.Error, &end
			if d.Status == "error" {
				details, _ := json.Marshal(map[string]any{"action_attempt_id": d.ActionAttemptID, "action_attempt_error": d.Error})
				attemptTrouble = &Trouble{Reason: ReasonDeleteFailed, EventID: e.EventID, OccurredAt: end, Details: details}
			}
		}
	}

	st.OnDevice = onDevice
	switch {
	case !deleted && !requested:
		st.DeletionState = Active
	case confirmed:
		st.DeletionState = Removed
		st.OnDevice = &no
		st.ConfirmedBy = lastConfirmedBy
		st.Confirmation = lastConfirmation
	case trouble != nil && trouble.Reason == ReasonFailed:
		st.DeletionState = Failed
		st.Trouble = trouble
	case trouble != nil:
		st.DeletionState = Delayed
		st.Trouble = trouble
	case !deleted:
		// Requested, and Seam has not said it deleted the code yet.
		st.DeletionState = DeletionRequested
		st.Trouble = attemptTrouble
	case created && !everSet:
		st.DeletionState = DeletedNotProgrammed
		st.OnDevice = &no
	default:
		st.DeletionState = AwaitingRemoval
	}
	// Whatever Seam reported, the lock says the code is still there (or,
	// when a live code shares the PIN, may be: until someone checks, it
	// counts as there).
	if ev := lockEvidence(&st, lockEvents); ev != nil {
		st.LockEvidence = ev
		st.OnDevice = &yes
	}
	return st
}

// lockEvidence returns the proof, among events, that the deleted code is
// still on its lock: an unlock with the code after its deletion on its lock
// (used_after_deletion, which outranks), or its PIN among the lock's
// unmanaged codes after the deletion (still_on_lock); the newest of them.
// nil without one.
//
// A report matched by PIN alone whose PIN a code live on the lock at the
// time shares (a PIN reused for the next guest) may have been that code:
// it is the evidence only when nothing surer is, it names the live codes,
// and the first such report is kept, so that the trouble, and an
// acknowledgement of it, stay the same while the live code goes on being
// used.
func lockEvidence(st *State, events []*Event) *Trouble {
	if st.DeletedAt == nil {
		return nil
	}
	var used, still, maybeUsed, maybeStill *Event
	var usedLive, stillLive []string
	for _, e := range events {
		if !e.OccurredAt.After(*st.DeletedAt) {
			continue // before the deletion, or at the same instant
		}
		onLock := st.DeviceID == "" || e.DeviceID == "" || e.DeviceID == st.DeviceID
		byPIN := e.AccessCodeID == "" && e.PINMatch
		names := e.AccessCodeID == st.AccessCodeID || byPIN
		switch e.Type {
		case TypeLockUnlocked:
			if !names || !onLock {
				continue
			}
			if live := liveSharers(e); byPIN && len(live) > 0 {
				if maybeUsed == nil { // sorted: the first
					maybeUsed, usedLive = e, live
				}
				continue
			}
			used = e // sorted: the newest wins
		case TypeUnmanagedCreated:
			if !e.PINMatch || !onLock {
				continue
			}
			if live := liveSharers(e); len(live) > 0 {
				if maybeStill == nil {
					maybeStill, stillLive = e, live
				}
				continue
			}
			still = e
		case TypeUnmanagedFound:
			if e.AccessCodeID == st.AccessCodeID {
				still = e
			}
		}
	}
	trouble := func(reason string, e *Event, live []string) *Trouble {
		return &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: e.OccurredAt, Details: lockDetails(e, live)}
	}
	switch {
	case used != nil:
		return trouble(ReasonUsedAfterDeletion, used, nil)
	case still != nil:
		return trouble(ReasonStillOnLock, still, nil)
	case maybeUsed != nil:
		return trouble(ReasonUsedAfterDeletion, maybeUsed, usedLive)
	case maybeStill != nil:
		return trouble(ReasonStillOnLock, maybeStill, stillLive)
	}
	return nil
}

// lockDetails says what the lock reported, for people: the event, how the
// code was matched, and the live codes on the lock with the same PIN, if
// any. Never the PIN.
func lockDetails(e *Event, live []string) json.RawMessage {
	match := "access_code_id"
	if e.AccessCodeID == "" || e.Type == TypeUnmanagedCreated {
		match = "pin"
	}
	if e.Type == TypeUnmanagedFound {
		match = "unmanaged_list"
	}
	ev := map[string]any{"event_id": e.EventID, "event_type": e.Type,
		"occurred_at": e.OccurredAt, "device_id": e.DeviceID, "matched_by": match}
	if len(live) > 0 {
		ev[livePINKey] = live
	}
	b, _ := json.Marshal(map[string]any{"lock_event": ev})
	return b
}

// eventConfirmation is the evidence a Seam event gives of a removal: its
// ids, and the Svix message id when it came as a webhook.
func eventConfirmation(e *Event) *Confirmation {
	c := &Confirmation{ConfirmedBy: sourceOf(e), EventID: e.EventID, EventType: e.Type, At: e.OccurredAt}
	if c.ConfirmedBy == SourceWebhook {
		c.SvixID = e.MessageID
	}
	return c
}

// livePINKey names, in a trouble's lock_event, the live codes that share
// the PIN of the lock's report.
const livePINKey = "live_codes_with_same_pin"

// sourceOf names the source of an event ("" reads as webhook).
func sourceOf(e *Event) string {
	if e.Source == SourcePoll {
		return SourcePoll
	}
	return SourceWebhook
}

func nonNil(v []json.RawMessage) []json.RawMessage {
	if v == nil {
		return []json.RawMessage{}
	}
	return v
}

// PollReason maps what access_codes/get shows of a code being deleted to a
// troubleshooting reason ("" for none). docs/lifecycle.md has the table.
func PollReason(d PollDetails) string {
	codes := func(items []json.RawMessage, key string) []string {
		var out []string
		for _, it := range items {
			var m map[string]any
			if json.Unmarshal(it, &m) == nil {
				if c, ok := m[key].(string); ok {
					out = append(out, c)
				}
			}
		}
		return out
	}
	reason := ""
	for _, c := range codes(d.Errors, "error_code") {
		switch c {
		case "failed_to_remove_from_device":
			return ReasonFailed
		case "device_offline", "device_disconnected", "hub_disconnected", "account_disconnected", "provider_issue":
			reason = ReasonDelayed
		}
	}
	for _, c := range codes(d.Warnings, "warning_code") {
		if c == "delay_in_removing_from_device" {
			reason = ReasonDelayed
		}
	}
	return reason
}

// pollTroubleDetails shows a poll's errors and warnings the way Seam's own
// trouble events show theirs.
func pollTroubleDetails(d PollDetails) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"access_code_errors": nonNil(d.Errors), "access_code_warnings": nonNil(d.Warnings)})
	return b
}

// dedupe copies events, keeping one of each event_id. Redeliveries are
// identical, so which copy is kept does not matter for them; should two
// different bodies ever share an event_id, the one that sorts first by
// content is kept, so that the result does not depend on the input order.
func dedupe(events []Event) []Event {
	seen := make(map[string]int, len(events))
	out := make([]Event, 0, len(events))
	for _, e := range events {
		if i, ok := seen[e.EventID]; ok {
			if contentBefore(e, out[i]) {
				out[i] = e
			}
			continue
		}
		seen[e.EventID] = len(out)
		out = append(out, e)
	}
	return out
}

// contentBefore orders two events that share an event_id by their content.
func contentBefore(a, b Event) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.Before(b.OccurredAt)
	}
	for _, f := range [][2]string{
		{a.Type, b.Type}, {a.AccessCodeID, b.AccessCodeID}, {a.WorkspaceID, b.WorkspaceID},
		{a.DeviceID, b.DeviceID}, {a.ConnectedAccountID, b.ConnectedAccountID}, {a.MessageID, b.MessageID},
	} {
		if f[0] != f[1] {
			return f[0] < f[1]
		}
	}
	return bytes.Compare(a.Details, b.Details) < 0
}

// Flag is what a code's trouble looks like at a moment: the reason, and a key
// naming this particular trouble so that an acknowledgement covers it and
// nothing newer.
type Flag struct {
	Reason  string
	Key     string
	Since   time.Time
	Details json.RawMessage
}

// Summary is the part of a code's state that the troubleshooting rules read.
// The sweeper has it from the stored row without reloading events.
type Summary struct {
	DeletionState   DeletionState
	DeletedAt       *time.Time
	DeletionEventID string
	Trouble         *Trouble
	// RequestedAt and AttemptID are codewatch's own deletion request's.
	RequestedAt *time.Time
	AttemptID   string
	// LockEvidence outranks the rest (State.LockEvidence).
	LockEvidence *Trouble
}

// Summary returns the fields Assess reads.
func (s State) Summary() Summary {
	sum := Summary{DeletionState: s.DeletionState, DeletedAt: s.DeletedAt,
		DeletionEventID: s.DeletionEventID, Trouble: s.Trouble, LockEvidence: s.LockEvidence}
	if r := s.DeletionRequest; r != nil {
		at := r.RequestedAt
		sum.RequestedAt, sum.AttemptID = &at, r.ActionAttemptID
	}
	return sum
}

// Assess returns the code's current trouble at now, or nil. Delays and
// failures count at once; a deletion awaiting removal becomes overdue once
// removalTimeout has passed since the deletion occurred (0 disables it).
func Assess(s Summary, now time.Time, removalTimeout time.Duration) *Flag {
	if t := s.LockEvidence; t != nil {
		// The lock's own evidence, whatever the state: until acknowledged.
		return &Flag{Reason: t.Reason, Key: t.EventID, Since: t.OccurredAt, Details: t.Details}
	}
	switch s.DeletionState {
	case DeletionRequested:
		if s.Trouble != nil {
			return &Flag{Reason: s.Trouble.Reason, Key: s.Trouble.EventID,
				Since: s.Trouble.OccurredAt, Details: s.Trouble.Details}
		}
		// A request whose deletion Seam has not reported in time is
		// overdue like any other deletion.
		if removalTimeout <= 0 || s.RequestedAt == nil {
			return nil
		}
		due := s.RequestedAt.Add(removalTimeout)
		if !now.After(due) {
			return nil
		}
		return &Flag{Reason: ReasonOverdue, Key: "overdue:request:" + s.AttemptID, Since: due}
	case Delayed, Failed:
		if s.Trouble == nil {
			return nil
		}
		return &Flag{Reason: s.Trouble.Reason, Key: s.Trouble.EventID,
			Since: s.Trouble.OccurredAt, Details: s.Trouble.Details}
	case AwaitingRemoval:
		if removalTimeout <= 0 || s.DeletedAt == nil {
			return nil
		}
		due := s.DeletedAt.Add(removalTimeout)
		if now.Before(due) || now.Equal(due) {
			return nil
		}
		return &Flag{Reason: ReasonOverdue, Key: "overdue:" + s.DeletionEventID, Since: due}
	}
	return nil
}

// OverdueCutoff is the latest deleted_at that is overdue at now: the sweeper's
// query bound, kept here so it cannot drift from Assess.
func OverdueCutoff(now time.Time, removalTimeout time.Duration) time.Time {
	return now.Add(-removalTimeout)
}

// NeedsTroubleshooting reports whether flag is trouble nobody acknowledged.
func NeedsTroubleshooting(flag *Flag, acknowledgedKey string) bool {
	return flag != nil && flag.Key != acknowledgedKey
}

// Alert types.
const (
	AlertTrouble  = "deletion.needs_troubleshooting"
	AlertResolved = "deletion.resolved"
	AlertReminder = "deletion.reminder"
)

// Transition returns the alert a change of troubleshooting status calls for,
// or "": one alert when trouble begins (or a different trouble replaces it),
// one resolution when it ends.
func Transition(wasNeeding bool, oldKey string, nowNeeding bool, newKey string) string {
	switch {
	case nowNeeding && (!wasNeeding || oldKey != newKey):
		return AlertTrouble
	case wasNeeding && !nowNeeding:
		return AlertResolved
	}
	return ""
}
