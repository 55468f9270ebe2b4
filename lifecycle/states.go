package lifecycle

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
