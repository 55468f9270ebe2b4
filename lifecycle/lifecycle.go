// Package lifecycle holds codewatch's domain: Seam events, the per-code
// deletion state machine, and the rules that say when a code needs
// troubleshooting. The rules (fold.go, lock.go, assess.go) are plain Go
// with no I/O; the Postgres store (package postgres) runs them inside the
// ingest transaction.
package lifecycle

import "strings"

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
