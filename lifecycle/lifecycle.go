// Package lifecycle holds codewatch's domain: Seam events, the per-code
// deletion state machine, and the rules that say when a code needs
// troubleshooting. The rules (this file) are plain Go with no I/O; the
// Postgres store that runs them inside the ingest transaction sits beside them.
package lifecycle

import (
	"bytes"
	"encoding/json"
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

// IsAccessCodeEvent reports whether an event type belongs to the family whose
// events make up a code's history.
func IsAccessCodeEvent(eventType string) bool {
	return strings.HasPrefix(eventType, accessCodeFamilyPrefix)
}

// DeletionState is where a code stands in its deletion.
type DeletionState string

// The deletion states; docs/lifecycle.md explains each.
const (
	Active               DeletionState = "active"
	AwaitingRemoval      DeletionState = "awaiting_removal"
	Delayed              DeletionState = "delayed"
	Failed               DeletionState = "failed"
	Removed              DeletionState = "removed"
	DeletedNotProgrammed DeletionState = "deleted_not_programmed"
)

// States lists every deletion state, in lifecycle order.
var States = []DeletionState{Active, AwaitingRemoval, Delayed, Failed, Removed, DeletedNotProgrammed}

// Terminal reports whether no further removal is expected.
func (s DeletionState) Terminal() bool { return s == Removed || s == DeletedNotProgrammed }

// Unconfirmed reports whether the code is deleted and its removal from the
// lock is not confirmed.
func (s DeletionState) Unconfirmed() bool {
	return s == AwaitingRemoval || s == Delayed || s == Failed
}

// Reasons a code needs troubleshooting.
const (
	ReasonOverdue = "removal_overdue"
	ReasonDelayed = "removal_delayed"
	ReasonFailed  = "failed_to_remove"
)

// Reasons lists every troubleshooting reason.
var Reasons = []string{ReasonOverdue, ReasonDelayed, ReasonFailed}

// Event is one stored Seam event, as the state machine sees it.
type Event struct {
	EventID            string
	Type               string
	OccurredAt         time.Time
	WorkspaceID        string
	AccessCodeID       string
	DeviceID           string
	ConnectedAccountID string
	// Details holds the errors and warnings arrays of trouble events.
	Details json.RawMessage
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
		confirmed bool // off the lock by a confirmation not undone by a later set
		trouble   *Trouble
	)
	yes, no := true, false
	for i := range evs {
		e := &evs[i]
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
		at := e.OccurredAt
		st.LastEventAt = &at

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
		case TypeDeletedExternally:
			onDevice = &no
			confirmed = true
			trouble = nil
			st.DeletedExternally = true
			st.RemovedFromDeviceAt = &at
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
		}
	}

	st.OnDevice = onDevice
	switch {
	case !deleted:
		st.DeletionState = Active
	case confirmed:
		st.DeletionState = Removed
		st.OnDevice = &no
	case trouble != nil && trouble.Reason == ReasonFailed:
		st.DeletionState = Failed
		st.Trouble = trouble
	case trouble != nil:
		st.DeletionState = Delayed
		st.Trouble = trouble
	case created && !everSet:
		st.DeletionState = DeletedNotProgrammed
		st.OnDevice = &no
	default:
		st.DeletionState = AwaitingRemoval
	}
	return st
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
		{a.DeviceID, b.DeviceID}, {a.ConnectedAccountID, b.ConnectedAccountID},
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
}

// Summary returns the fields Assess reads.
func (s State) Summary() Summary {
	return Summary{DeletionState: s.DeletionState, DeletedAt: s.DeletedAt,
		DeletionEventID: s.DeletionEventID, Trouble: s.Trouble}
}

// Assess returns the code's current trouble at now, or nil. Delays and
// failures count at once; a deletion awaiting removal becomes overdue once
// removalTimeout has passed since the deletion occurred (0 disables it).
func Assess(s Summary, now time.Time, removalTimeout time.Duration) *Flag {
	switch s.DeletionState {
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
