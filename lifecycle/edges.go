package lifecycle

import "fmt"

// Edge is one way an event moves a code from one deletion state to another:
// the transitions docs/lifecycle.md draws. The fold has no transition
// function (it recomputes the state from all events), so this table is a
// description of Fold's results, checked against Fold in lifecycle_test and
// against the document's diagram.
type Edge struct {
	From, To DeletionState
	// Event is the event type that moves it; Label says when.
	Event string
	Label string
}

// Edges lists every transition, in the diagram's order.
var Edges = []Edge{
	{Active, AwaitingRemoval, TypeDeleted, "deleted (set on the lock, or never seen created)"},
	{Active, DeletedNotProgrammed, TypeDeleted, "deleted (created, never set)"},
	{Active, Removed, TypeDeletedExternally, "deleted_external_to_seam"},
	{Active, Removed, TypeDeleted, "deleted after removed_from_device"},
	{Active, Delayed, TypeDeleted, "deleted after a delay report (it still counts)"},
	{Active, Failed, TypeDeleted, "deleted after a failure report (it still counts)"},
	{AwaitingRemoval, Delayed, TypeDelayInRemoving, "delay_in_removing_from_device"},
	{AwaitingRemoval, Failed, TypeFailedToRemove, "failed_to_remove_from_device"},
	{AwaitingRemoval, Removed, TypeRemovedFromDevice, "removed_from_device"},
	{AwaitingRemoval, Removed, TypeDeletedExternally, "deleted_external_to_seam"},
	{AwaitingRemoval, DeletedNotProgrammed, TypeCreated, "created arriving late (never set)"},
	{Delayed, Failed, TypeFailedToRemove, "failed_to_remove_from_device"},
	{Failed, Delayed, TypeDelayInRemoving, "delay_in_removing_from_device"},
	{Delayed, Removed, TypeRemovedFromDevice, "removed_from_device"},
	{Delayed, Removed, TypeDeletedExternally, "deleted_external_to_seam"},
	{Failed, Removed, TypeRemovedFromDevice, "removed_from_device"},
	{Failed, Removed, TypeDeletedExternally, "deleted_external_to_seam"},
	{Delayed, AwaitingRemoval, TypeSetOnDevice, "set_on_device (new programming)"},
	{Failed, AwaitingRemoval, TypeSetOnDevice, "set_on_device (new programming)"},
	{Removed, AwaitingRemoval, TypeSetOnDevice, "set_on_device after the confirmation"},
	{DeletedNotProgrammed, AwaitingRemoval, TypeSetOnDevice, "set_on_device (arrived late)"},
	{DeletedNotProgrammed, Removed, TypeRemovedFromDevice, "removed_from_device"},
	{DeletedNotProgrammed, Delayed, TypeDelayInRemoving, "delay_in_removing_from_device"},
	{DeletedNotProgrammed, Failed, TypeFailedToRemove, "failed_to_remove_from_device"},
	// codewatch's own requests and polls of Seam's API.
	{Active, DeletionRequested, TypeDeletionRequested, "codewatch requests the deletion"},
	{DeletionRequested, AwaitingRemoval, TypeDeleted, "deleted"},
	{DeletionRequested, Removed, TypeAccessCodeGone, "poll: Seam answers 404"},
	{DeletionRequested, Delayed, TypeAccessCodePolled, "poll: lock offline or delay warning"},
	{DeletionRequested, Failed, TypeAccessCodePolled, "poll: failed_to_remove_from_device"},
	{AwaitingRemoval, Removed, TypeAccessCodeGone, "poll: Seam answers 404"},
	{AwaitingRemoval, Delayed, TypeAccessCodePolled, "poll: lock offline or delay warning"},
	{AwaitingRemoval, Failed, TypeAccessCodePolled, "poll: failed_to_remove_from_device"},
	{Delayed, Removed, TypeAccessCodeGone, "poll: Seam answers 404"},
	{Failed, Removed, TypeAccessCodeGone, "poll: Seam answers 404"},
}

// Mermaid is the edge as a line of a mermaid stateDiagram.
func (e Edge) Mermaid() string {
	return fmt.Sprintf("%s --> %s: %s", e.From, e.To, e.Label)
}
