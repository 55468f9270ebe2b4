package postgres_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// sort=urgency: codes needing troubleshooting first (by reason: failures,
// delays, overdue; oldest deletion first within each), then the other
// unconfirmed deletions oldest first, then every other code newest first;
// paging through it at every page size shows each code once, in order.
func TestListByUrgency(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	t0 := e.clock.Now()
	var want []string
	mk := func(name string, types ...string) string {
		code := fmt.Sprintf("%s-%s", name, seamevent.NewID()[:8])
		for i, typ := range types {
			e.send(typ, code, t0.Add(time.Duration(i)*time.Second))
		}
		return code
	}
	at := func(code string, d time.Duration, types ...string) {
		for _, typ := range types {
			e.send(typ, code, t0.Add(d))
		}
	}
	// Created in an order unlike the urgency order.
	active1 := mk("active1", lifecycle.TypeCreated, lifecycle.TypeSetOnDevice)
	delayedLate := mk("delayed-late")
	at(delayedLate, -10*time.Minute, lifecycle.TypeDeleted)
	at(delayedLate, -9*time.Minute, lifecycle.TypeDelayInRemoving)
	overdue := mk("overdue")
	at(overdue, -2*time.Hour, lifecycle.TypeDeleted) // overdue on arrival
	failedLate := mk("failed-late")
	at(failedLate, -5*time.Minute, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove)
	awaitingNew := mk("awaiting-new")
	at(awaitingNew, -time.Minute, lifecycle.TypeDeleted)
	removed := mk("removed", lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice)
	failedEarly := mk("failed-early")
	at(failedEarly, -20*time.Minute, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove)
	awaitingOld := mk("awaiting-old")
	at(awaitingOld, -3*time.Minute, lifecycle.TypeDeleted)
	delayedEarly := mk("delayed-early")
	at(delayedEarly, -30*time.Minute, lifecycle.TypeDeleted)
	at(delayedEarly, -29*time.Minute, lifecycle.TypeDelayInRemoving)
	active2 := mk("active2", lifecycle.TypeCreated)
	want = []string{failedEarly, failedLate, delayedEarly, delayedLate, overdue, awaitingOld, awaitingNew,
		active2, removed, active1}

	list := func(f lifecycle.ListFilter, size int) []string {
		t.Helper()
		var got []string
		f.Limit = size
		for page := 0; page < 50; page++ {
			codes, next, err := e.store.ListAccessCodes(e.ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range codes {
				got = append(got, c.AccessCodeID)
			}
			if next == nil {
				return got
			}
			f.Cursor = next
		}
		t.Fatal("more than 50 pages")
		return nil
	}
	for size := 1; size <= 11; size++ {
		if got := list(lifecycle.ListFilter{Sort: lifecycle.SortUrgency}, size); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("page size %d:\n got %v\nwant %v", size, got, want)
		}
	}
	yes := true
	if got := list(lifecycle.ListFilter{Sort: lifecycle.SortUrgency, NeedsTroubleshooting: &yes}, 2); fmt.Sprint(got) != fmt.Sprint(want[:5]) {
		t.Fatalf("needs_troubleshooting=true:\n got %v\nwant %v", got, want[:5])
	}
	if got := list(lifecycle.ListFilter{Sort: lifecycle.SortUrgency, States: []lifecycle.DeletionState{lifecycle.AwaitingRemoval}}, 2); fmt.Sprint(got) != fmt.Sprint([]string{overdue, awaitingOld, awaitingNew}) {
		t.Fatalf("awaiting_removal: %v", got)
	}
	recent := list(lifecycle.ListFilter{Sort: lifecycle.SortRecent}, 3)
	wantRecent := []string{active2, delayedEarly, awaitingOld, failedEarly, removed, awaitingNew, failedLate, overdue, delayedLate, active1}
	if fmt.Sprint(recent) != fmt.Sprint(wantRecent) {
		t.Fatalf("sort=recent:\n got %v\nwant %v", recent, wantRecent)
	}
	// Several states: each state's pages merged into the same order, at
	// every page size.
	only := func(codes []string, keep ...string) []string {
		var out []string
		for _, c := range codes {
			if slices.Contains(keep, c) {
				out = append(out, c)
			}
		}
		return out
	}
	unconfirmed := []lifecycle.DeletionState{lifecycle.Failed, lifecycle.AwaitingRemoval, lifecycle.Delayed}
	done := []lifecycle.DeletionState{lifecycle.Removed, lifecycle.Active}
	for size := 1; size <= 8; size++ {
		if got, w := list(lifecycle.ListFilter{States: unconfirmed}, size), want[:7]; fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("deletion_state=failed,awaiting_removal,delayed, page size %d:\n got %v\nwant %v", size, got, w)
		}
		if got, w := list(lifecycle.ListFilter{States: done}, size), want[7:]; fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("deletion_state=removed,active, page size %d:\n got %v\nwant %v", size, got, w)
		}
		if got, w := list(lifecycle.ListFilter{States: []lifecycle.DeletionState{lifecycle.Delayed, lifecycle.Active}}, size),
			only(want, delayedEarly, delayedLate, active2, active1); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("deletion_state=delayed,active, page size %d:\n got %v\nwant %v", size, got, w)
		}
		if got, w := list(lifecycle.ListFilter{Sort: lifecycle.SortRecent, States: done}, size),
			only(wantRecent, active2, removed, active1); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("sort=recent&deletion_state=removed,active, page size %d:\n got %v\nwant %v", size, got, w)
		}
	}
}
