package lifecycle

import (
	"encoding/json"
	"time"
)

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
