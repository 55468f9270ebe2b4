package lifecycle

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// edgeHistories gives, for each edge (by its Mermaid line), a history that
// reaches From and the event that then moves the code To. Times are minutes
// after foldT0; the moving event comes last unless its time says otherwise.
var edgeHistories = map[string]struct {
	before []Event
	event  Event
}{
	"active --> awaiting_removal: deleted (set on the lock, or never seen created)": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("s", TypeSetOnDevice, 1)}, foldEv("d", TypeDeleted, 2)},
	"active --> deleted_not_programmed: deleted (created, never set)": {
		[]Event{foldEv("c", TypeCreated, 0)}, foldEv("d", TypeDeleted, 2)},
	"active --> removed: deleted_external_to_seam": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("s", TypeSetOnDevice, 1)}, foldEv("x", TypeDeletedExternally, 2)},
	"active --> removed: deleted after removed_from_device": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("s", TypeSetOnDevice, 1), foldEv("r", TypeRemovedFromDevice, 2)}, foldEv("d", TypeDeleted, 3)},
	"active --> delayed: deleted after a delay report (it still counts)": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("w", TypeDelayInRemoving, 2)}, foldEv("d", TypeDeleted, 3)},
	"active --> failed: deleted after a failure report (it still counts)": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("f", TypeFailedToRemove, 2)}, foldEv("d", TypeDeleted, 3)},
	"awaiting_removal --> delayed: delay_in_removing_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, foldEv("w", TypeDelayInRemoving, 3)},
	"awaiting_removal --> failed: failed_to_remove_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, foldEv("f", TypeFailedToRemove, 3)},
	"awaiting_removal --> removed: removed_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, foldEv("r", TypeRemovedFromDevice, 3)},
	"awaiting_removal --> removed: deleted_external_to_seam": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, foldEv("x", TypeDeletedExternally, 3)},
	// The deletion arrived alone; the code's creation, earlier, arrives late.
	"awaiting_removal --> deleted_not_programmed: created arriving late (never set)": {
		[]Event{foldEv("d", TypeDeleted, 2)}, foldEv("c", TypeCreated, 0)},
	"delayed --> failed: failed_to_remove_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("w", TypeDelayInRemoving, 3)}, foldEv("f", TypeFailedToRemove, 4)},
	"failed --> delayed: delay_in_removing_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("f", TypeFailedToRemove, 3)}, foldEv("w", TypeDelayInRemoving, 4)},
	"delayed --> removed: removed_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("w", TypeDelayInRemoving, 3)}, foldEv("r", TypeRemovedFromDevice, 4)},
	"delayed --> removed: deleted_external_to_seam": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("w", TypeDelayInRemoving, 3)}, foldEv("x", TypeDeletedExternally, 4)},
	"failed --> removed: removed_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("f", TypeFailedToRemove, 3)}, foldEv("r", TypeRemovedFromDevice, 4)},
	"failed --> removed: deleted_external_to_seam": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("f", TypeFailedToRemove, 3)}, foldEv("x", TypeDeletedExternally, 4)},
	"delayed --> awaiting_removal: set_on_device (new programming)": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("w", TypeDelayInRemoving, 3)}, foldEv("s2", TypeSetOnDevice, 4)},
	"failed --> awaiting_removal: set_on_device (new programming)": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("f", TypeFailedToRemove, 3)}, foldEv("s2", TypeSetOnDevice, 4)},
	"removed --> awaiting_removal: set_on_device after the confirmation": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("r", TypeRemovedFromDevice, 3)}, foldEv("s2", TypeSetOnDevice, 4)},
	"deleted_not_programmed --> awaiting_removal: set_on_device (arrived late)": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("d", TypeDeleted, 2)}, foldEv("s", TypeSetOnDevice, 1)},
	"deleted_not_programmed --> removed: removed_from_device": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("d", TypeDeleted, 2)}, foldEv("r", TypeRemovedFromDevice, 3)},
	"deleted_not_programmed --> delayed: delay_in_removing_from_device": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("d", TypeDeleted, 2)}, foldEv("w", TypeDelayInRemoving, 3)},
	"deleted_not_programmed --> failed: failed_to_remove_from_device": {
		[]Event{foldEv("c", TypeCreated, 0), foldEv("d", TypeDeleted, 2)}, foldEv("f", TypeFailedToRemove, 3)},
	"active --> deletion_requested: codewatch requests the deletion": {
		[]Event{foldEv("s", TypeSetOnDevice, 1)}, requestEv("r", "aa-1", 2)},
	"deletion_requested --> awaiting_removal: deleted": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 2)}, foldEv("d", TypeDeleted, 3)},
	"deletion_requested --> removed: poll: Seam answers 404": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 2)}, goneEv("g", 3)},
	"deletion_requested --> delayed: poll: lock offline or delay warning": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 2)}, polledEv("p", 3, "set", []string{"device_offline"}, nil)},
	"deletion_requested --> failed: poll: failed_to_remove_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 2)}, polledEv("p", 3, "set", []string{"failed_to_remove_from_device"}, nil)},
	"awaiting_removal --> removed: poll: Seam answers 404": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, goneEv("g", 3)},
	"awaiting_removal --> delayed: poll: lock offline or delay warning": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, polledEv("p", 3, "removing", nil, []string{"delay_in_removing_from_device"})},
	"awaiting_removal --> failed: poll: failed_to_remove_from_device": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}, polledEv("p", 3, "set", []string{"failed_to_remove_from_device"}, nil)},
	"delayed --> removed: poll: Seam answers 404": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("w", TypeDelayInRemoving, 3)}, goneEv("g", 4)},
	"failed --> removed: poll: Seam answers 404": {
		[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("f", TypeFailedToRemove, 3)}, goneEv("g", 4)},
}

// Every edge of the table holds under Fold: its history folds to From, and
// with the event added to To, in every delivery order.
func TestEdgesHoldUnderFold(t *testing.T) {
	for _, e := range Edges {
		h, ok := edgeHistories[e.Mermaid()]
		if !ok {
			t.Errorf("no history for edge %q", e.Mermaid())
			continue
		}
		if h.event.Type != e.Event {
			t.Errorf("%q: the history's event is %s, the edge's %s", e.Mermaid(), h.event.Type, e.Event)
		}
		if got := Fold(h.before).DeletionState; got != e.From {
			t.Errorf("%q: the history folds to %s, want %s", e.Mermaid(), got, e.From)
		}
		all := append(slices.Clone(h.before), h.event)
		foldPermute(len(all), func(perm []int) {
			if got := Fold(foldApply(all, perm)).DeletionState; got != e.To {
				t.Errorf("%q: with the event, order %v folds to %s, want %s", e.Mermaid(), perm, got, e.To)
			}
		})
	}
	if len(edgeHistories) != len(Edges) {
		t.Errorf("%d histories for %d edges", len(edgeHistories), len(Edges))
	}
}

// docs/lifecycle.md's diagram draws exactly the edges of the table.
func TestLifecycleDocDrawsTheEdges(t *testing.T) {
	doc, err := os.ReadFile("../docs/lifecycle.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```mermaid\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/lifecycle.md has no mermaid diagram")
	}
	var drawn []string
	for _, l := range strings.Split(string(block[1]), "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "-->") && !strings.Contains(l, "[*]") {
			drawn = append(drawn, l)
		}
	}
	var want []string
	for _, e := range Edges {
		want = append(want, e.Mermaid())
	}
	if strings.Join(drawn, "\n") != strings.Join(want, "\n") {
		t.Errorf("the diagram differs from lifecycle.Edges:\n--- drawn\n%s\n--- Edges\n%s", strings.Join(drawn, "\n"), strings.Join(want, "\n"))
	}
}
