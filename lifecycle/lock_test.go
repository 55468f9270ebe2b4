package lifecycle

import (
	"testing"
	"time"
)

// Lock events, m minutes after foldT0, on the default lock.
func unlockEv(id string, m int, code string) Event {
	e := foldEv(id, TypeLockUnlocked, m)
	e.AccessCodeID = code
	return e
}

func unlockByPIN(id string, m int, match bool) Event {
	e := unlockEv(id, m, "")
	e.PINMatch = match
	return e
}

func onDevice(e Event, dev string) Event { e.DeviceID = dev; return e }

func unmanagedCreated(id string, m int, match bool) Event {
	e := foldEv(id, TypeUnmanagedCreated, m)
	e.AccessCodeID = "unmanaged-" + id
	e.PINMatch = match
	return e
}

// lockScenarios: the lock's own evidence, under every order like the rest.
func lockScenarios() []foldScenario {
	set, del := foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10)
	awaiting := func(last int) foldWant {
		return foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(10), last: foldP(last)}
	}
	used := func(last int, ev string) foldWant {
		w := awaiting(last)
		w.lockReason, w.lockEventID = ReasonUsedAfterDeletion, ev
		return w
	}
	return []foldScenario{
		{name: "unlocked with the code after its deletion: used_after_deletion",
			events: []Event{set, del, unlockEv("u", 20, foldCodeID)}, want: used(20, "u")},
		{name: "unlocked before the deletion: nothing",
			events: []Event{set, unlockEv("u", 5, foldCodeID), del}, want: awaiting(10)},
		{name: "unlocked at the deletion's instant: nothing",
			events: []Event{set, del, unlockEv("u", 10, foldCodeID)}, want: awaiting(10)},
		{name: "unlocked on another lock: nothing",
			events: []Event{set, del, onDevice(unlockEv("u", 20, foldCodeID), "another-lock")}, want: awaiting(20)},
		{name: "unlocked by another code: nothing",
			events: []Event{set, del, unlockEv("u", 20, "another-code")}, want: awaiting(20)},
		{name: "another code with the same PIN: still another code",
			events: []Event{set, del, func() Event { e := unlockEv("u", 20, "another-code"); e.PINMatch = true; return e }()}, want: awaiting(20)},
		{name: "no access_code_id, the same PIN on the lock: used_after_deletion",
			events: []Event{set, del, unlockByPIN("u", 20, true)}, want: used(20, "u")},
		{name: "no access_code_id, another PIN: nothing",
			events: []Event{set, del, unlockByPIN("u", 20, false)}, want: awaiting(20)},
		{name: "no access_code_id, the same PIN on another lock: nothing",
			events: []Event{set, del, onDevice(unlockByPIN("u", 20, true), "another-lock")}, want: awaiting(20)},
		{name: "access denied after the deletion: history only",
			events: []Event{set, del, func() Event { e := foldEv("x", TypeLockAccessDenied, 20); return e }()}, want: awaiting(20)},
		{name: "removed, then used: the lock outranks Seam",
			events: []Event{set, del, foldEv("r", TypeRemovedFromDevice, 12), unlockEv("u", 30, foldCodeID)},
			want: foldWant{state: Removed, deletionEventID: "d", set: foldP(1), deleted: foldP(10), removed: foldP(12), last: foldP(30),
				lockReason: ReasonUsedAfterDeletion, lockEventID: "u"}},
		{name: "used twice: the newest unlock is the evidence",
			events: []Event{set, del, unlockEv("u1", 20, foldCodeID), unlockEv("u2", 25, foldCodeID)}, want: used(25, "u2")},
		{name: "an unmanaged code with its PIN after the deletion: still_on_lock",
			events: []Event{set, del, unmanagedCreated("m", 20, true)},
			want:   func() foldWant { w := awaiting(20); w.lockReason, w.lockEventID = ReasonStillOnLock, "m"; return w }()},
		{name: "an unmanaged code with another PIN: nothing",
			events: []Event{set, del, unmanagedCreated("m", 20, false)}, want: awaiting(20)},
		{name: "an unmanaged code with its PIN before the deletion: nothing",
			events: []Event{set, unmanagedCreated("m", 5, true), del}, want: awaiting(10)},
		{name: "found among the lock's unmanaged codes by a lookup: still_on_lock",
			events: []Event{set, del, pollEv("f", TypeUnmanagedFound, 20, map[string]string{"unmanaged_access_code_id": "um1"})},
			want: func() foldWant {
				w := awaiting(20)
				w.lockReason, w.lockEventID = ReasonStillOnLock, "f"
				return w
			}()},
		{name: "used and still on the lock: used outranks",
			events: []Event{set, del, unlockEv("u", 15, foldCodeID), unmanagedCreated("m", 20, true)}, want: used(20, "u")},
		{name: "never deleted, used: nothing",
			events: []Event{set, unlockEv("u", 20, foldCodeID)},
			want:   foldWant{state: Active, onDevice: "true", set: foldP(1), last: foldP(20)}},
	}
}

func TestFoldLockScenarios(t *testing.T) {
	for _, sc := range lockScenarios() {
		t.Run(sc.name, func(t *testing.T) { foldCheckScenario(t, sc) })
	}
}

func TestAssessLockEvidence(t *testing.T) {
	st := Fold([]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10), foldEv("r", TypeRemovedFromDevice, 12),
		unlockEv("u", 30, foldCodeID)})
	f := Assess(st.Summary(), foldAt(31), 0)
	if f == nil || f.Reason != ReasonUsedAfterDeletion || f.Key != "u" || !f.Since.Equal(foldAt(30)) {
		t.Fatalf("flag %+v", f)
	}
	if Severity(f.Reason) != SeverityCritical || Severity(ReasonFailed) != SeverityWarning || Severity("") != "" {
		t.Fatal("severity")
	}
	// Acknowledged, it stays acknowledged; a new unlock flags again.
	if NeedsTroubleshooting(f, "u") {
		t.Fatal("acknowledged flag still needs troubleshooting")
	}
	st2 := Fold([]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10), unlockEv("u", 30, foldCodeID), unlockEv("u2", 40, foldCodeID)})
	if f2 := Assess(st2.Summary(), foldAt(41), time.Hour); !NeedsTroubleshooting(f2, "u") {
		t.Fatal("a new unlock after the acknowledgement must flag again")
	}
}
