package lifecycle

import (
	"encoding/json"
	"strings"
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

// sharedPIN is an unlock (or an unmanaged code) matched by PIN whose PIN
// the code live also carried on the lock, from since until deleted
// (minutes after foldT0; deleted < 0: not deleted).
func sharedPIN(e Event, live string, since, deleted int) Event {
	c := PINCode{AccessCodeID: live, Since: foldP(since)}
	if deleted >= 0 {
		c.DeletedAt = foldP(deleted)
	}
	e.SamePIN = append(e.SamePIN, c)
	return e
}

// reusedPINScenarios (issue "Never a false all-clear", 5): an unlock by a
// PIN that the deleted code and a live code on the lock share may have been
// the live code. Still used_after_deletion (and on the lock until someone
// checks), naming the live code; anything surer outranks it, and the first
// such unlock stays the trouble while the live code goes on being used.
func reusedPINScenarios() []foldScenario {
	set, del := foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10)
	awaiting := func(last int) foldWant {
		return foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(10), last: foldP(last)}
	}
	flagged := func(w foldWant, reason, ev string, live ...string) foldWant {
		w.lockReason, w.lockEventID, w.lockLive = reason, ev, live
		return w
	}
	const x, y = "live-code-x", "live-code-y"
	return []foldScenario{
		{name: "the PIN is also a live code's: used_after_deletion, naming it",
			events: []Event{set, del, sharedPIN(unlockByPIN("u", 20, true), x, 12, -1)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u", x)},
		{name: "the other code was deleted before the unlock: the deleted code is blamed",
			events: []Event{set, del, sharedPIN(unlockByPIN("u", 20, true), x, 2, 15)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u")},
		{name: "the other code was set only after the unlock: the deleted code is blamed",
			events: []Event{set, del, sharedPIN(unlockByPIN("u", 20, true), x, 25, -1)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u")},
		{name: "the other code was deleted after the unlock: it may have been it",
			events: []Event{set, del, sharedPIN(unlockByPIN("u", 20, true), x, 2, 30)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u", x)},
		{name: "two live codes share it: both named",
			events: []Event{set, del, sharedPIN(sharedPIN(unlockByPIN("u", 20, true), y, 5, -1), x, 12, -1)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u", x, y)},
		{name: "the live code used again: the first unlock stays the trouble",
			events: []Event{set, del, sharedPIN(unlockByPIN("u1", 20, true), x, 12, -1), sharedPIN(unlockByPIN("u2", 25, true), x, 12, -1)},
			want:   flagged(awaiting(25), ReasonUsedAfterDeletion, "u1", x)},
		{name: "then an unlock the live code cannot explain: that one",
			events: []Event{set, del, sharedPIN(unlockByPIN("u1", 20, true), x, 12, 22), sharedPIN(unlockByPIN("u2", 25, true), x, 12, 22)},
			want:   flagged(awaiting(25), ReasonUsedAfterDeletion, "u2")},
		{name: "an unlock naming the code outranks one by a shared PIN",
			events: []Event{set, del, unlockEv("u1", 15, foldCodeID), sharedPIN(unlockByPIN("u2", 20, true), x, 12, -1)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u1")},
		{name: "Seam named the code: a live code with its PIN changes nothing",
			events: []Event{set, del, sharedPIN(unlockEv("u", 20, foldCodeID), x, 12, -1)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u")},
		{name: "removed, then an unlock by a shared PIN: flagged all the same",
			events: []Event{set, del, foldEv("r", TypeRemovedFromDevice, 12), sharedPIN(unlockByPIN("u", 30, true), x, 14, -1)},
			want: flagged(foldWant{state: Removed, deletionEventID: "d", set: foldP(1), deleted: foldP(10),
				removed: foldP(12), last: foldP(30)}, ReasonUsedAfterDeletion, "u", x)},
		{name: "an unmanaged code with a PIN a live code has: still_on_lock, naming it",
			events: []Event{set, del, sharedPIN(unmanagedCreated("m", 20, true), x, 12, -1)},
			want:   flagged(awaiting(20), ReasonStillOnLock, "m", x)},
		{name: "still on the lock for sure outranks a shared-PIN unlock",
			events: []Event{set, del, sharedPIN(unlockByPIN("u", 15, true), x, 12, -1), unmanagedCreated("m", 20, true)},
			want:   flagged(awaiting(20), ReasonStillOnLock, "m")},
		{name: "a shared-PIN unlock outranks a shared-PIN unmanaged code",
			events: []Event{set, del, sharedPIN(unmanagedCreated("m", 15, true), x, 12, -1), sharedPIN(unlockByPIN("u", 20, true), x, 12, -1)},
			want:   flagged(awaiting(20), ReasonUsedAfterDeletion, "u", x)},
		{name: "another PIN, whoever shares it: nothing",
			events: []Event{set, del, sharedPIN(unlockByPIN("u", 20, false), x, 12, -1)}, want: awaiting(20)},
	}
}

func TestFoldReusedPINScenarios(t *testing.T) {
	for _, sc := range reusedPINScenarios() {
		t.Run(sc.name, func(t *testing.T) { foldCheckScenario(t, sc) })
	}
}

// The alert and next step of a trouble a live code may explain name it and
// ask to check the lock, never to remove the code now; the details, as
// stored, still carry the names; nothing else changes.
func TestReusedPINAlert(t *testing.T) {
	const x = "live-code-x"
	st := Fold([]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10), sharedPIN(unlockByPIN("u", 20, true), x, 12, -1)})
	f := Assess(st.Summary(), foldAt(21), time.Hour)
	if f == nil || f.Reason != ReasonUsedAfterDeletion || f.Key != "u" || Severity(f.Reason) != SeverityCritical {
		t.Fatalf("flag %+v", f)
	}
	stored := json.RawMessage(TroubleDetails(f))
	for _, d := range []json.RawMessage{f.Details, stored} {
		if live := LiveCodesWithSamePIN(d); len(live) != 1 || live[0] != x {
			t.Fatalf("live codes in %s: %v", d, live)
		}
	}
	for _, typ := range []string{AlertTrouble, AlertReminder} {
		flag := f
		if typ == AlertReminder { // the sweeper's: from the stored row
			flag = &Flag{Reason: f.Reason, Key: f.Key, Since: f.Since, Details: stored}
		}
		a := NewAlert(foldAt(21), "a", 1, typ, st, flag, "", LockStatus{})
		if !strings.Contains(a.NextStep, x) || strings.Contains(a.NextStep, "Remove it at the lock now") ||
			!strings.Contains(a.NextStep, "still on the lock") || a.Severity != SeverityCritical {
			t.Errorf("%s: next step %q", typ, a.NextStep)
		}
		if typ == AlertTrouble && (!strings.Contains(a.Message, x) || strings.Contains(a.Message, "still opens the door")) {
			t.Errorf("message %q", a.Message)
		}
	}
	// Without a live code: as before.
	st = Fold([]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10), unlockByPIN("u", 20, true)})
	f = Assess(st.Summary(), foldAt(21), time.Hour)
	a := NewAlert(foldAt(21), "a", 1, AlertTrouble, st, f, "", LockStatus{})
	if a.NextStep != NextStep(ReasonUsedAfterDeletion, LockStatus{}) || !strings.Contains(a.Message, "still opens the door") ||
		LiveCodesWithSamePIN(json.RawMessage(TroubleDetails(f))) != nil {
		t.Errorf("a PIN no live code has: %q %q", a.NextStep, a.Message)
	}
	if !strings.Contains(TroubleDetails(f), `"lock_event":{`) {
		t.Errorf("the stored details lose the lock's event: %s", TroubleDetails(f))
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
