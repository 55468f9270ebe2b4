package lifecycle

import "time"

// A code's history grows with the lock: a staff or cleaner code used every
// day collects thousands of unlocks, and a code's lock reports keep coming
// after it is gone. Fold's verdict reads few of them. What it decides from
// the code's own events (access_code.*, codewatch.*: a handful even for an
// old code) does not depend on the lock's events at all; the lock's
// evidence (lockEvidence) reads only events after the deletion, and of the
// unlocks that name the code only the newest on its lock; only
// LastEventAt reads every event. So a store can refold a code from its own
// events and the lock's events Relevant keeps, and keep LastEventAt as the
// newest time it has folded (TestRelevantFoldsAsTheWhole holds the two
// folds equal): the cost of an event then does not grow with the history.

// EvidenceFloor is the earliest deletion or deletion request among a code's
// own events (nil without one). Fold's DeletedAt is never before it (a
// deletion is its own event, or a not-found lookup after one or after a
// request), and the lock's evidence counts only events after DeletedAt, so
// a lock's event at or before the floor never changes the verdict.
func EvidenceFloor(events []Event) *time.Time {
	var floor *time.Time
	for i := range events {
		e := &events[i]
		if e.PINMatch || !ownFamily(e) {
			continue
		}
		switch e.Type {
		case TypeDeleted, TypeDeletedExternally, TypeDeletionRequested:
			if floor == nil || e.OccurredAt.Before(*floor) {
				t := e.OccurredAt
				floor = &t
			}
		}
	}
	return floor
}

// Relevant returns the events of a code's history (as a store loads it:
// the events that name the code, and the lock's reports matched by its PIN,
// PINMatch) that can change Fold's verdict: every event that names the code
// but the lock's; after EvidenceFloor, every report matched by PIN (the
// first one a live code may explain counts, and liveness is per report)
// and, of the unlocks that name the code, the newest that names no lock,
// the newest on each lock the code's own events name (the evidence is the
// newest unlock on the code's lock, or on none) and, when they name none,
// the newest on any lock. Folding
// any set between Relevant(h) and h gives Fold(h) but for LastEventAt.
// The store's loader (postgres/history.go) reads the same from SQL.
func Relevant(events []Event) []Event {
	events = dedupe(events)
	floor := EvidenceFloor(events)
	ownLocks := map[string]bool{}
	for i := range events {
		if e := &events[i]; !e.PINMatch && ownFamily(e) && e.DeviceID != "" {
			ownLocks[e.DeviceID] = true
		}
	}
	// The newest unlock naming the code after the floor: with no lock, per
	// lock of the code's own, and overall when they name no lock.
	newest := map[string]int{}
	pick := func(key string, i int) {
		if j, ok := newest[key]; !ok || sortsAfter(&events[i], &events[j]) {
			newest[key] = i
		}
	}
	var out []Event
	for i := range events {
		e := &events[i]
		switch {
		case e.PINMatch:
			if floor != nil && e.OccurredAt.After(*floor) {
				out = append(out, *e)
			}
		case IsAccessCodeEvent(e.Type):
			out = append(out, *e)
		case e.Type == TypeLockUnlocked && floor != nil && e.OccurredAt.After(*floor):
			// Per code named (a store loads only the code's own).
			k := e.AccessCodeID + "\x00"
			if len(ownLocks) == 0 {
				pick(k+"any", i) // the code's lock unknown: any lock's
			}
			switch {
			case e.DeviceID == "":
				pick(k+"none", i)
			case ownLocks[e.DeviceID]:
				pick(k+"lock:"+e.DeviceID, i)
			}
		}
	}
	kept := map[int]bool{}
	for _, i := range newest {
		if !kept[i] {
			kept[i] = true
			out = append(out, events[i])
		}
	}
	return out
}

// sortsAfter reports whether a comes after b in Fold's order (Sort).
func sortsAfter(a, b *Event) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.After(b.OccurredAt)
	}
	return a.EventID > b.EventID
}

// Latest returns the later of two times (either may be nil): a refold from
// the relevant events keeps the row's LastEventAt when it is later than
// anything it read.
func Latest(a, b *time.Time) *time.Time {
	switch {
	case a == nil:
		return b
	case b == nil || !b.After(*a):
		return a
	}
	return b
}
