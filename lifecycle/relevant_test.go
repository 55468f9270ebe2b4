package lifecycle

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// Issue 21, point 1: a store refolds a code from its own events and the
// lock's events Relevant keeps, keeping LastEventAt as the newest it has
// folded. These hold that refold equal to Fold of the whole history, over
// random histories (own events, unlocks naming the code on its lock, on
// another and on none, refusals, reports matched by PIN with and without a
// live code sharing it, unmanaged codes) and random arrival orders.

// relevantTypes are the code's own event types drawn from.
var relevantTypes = []string{TypeCreated, TypeSetOnDevice, TypeDeleted, TypeRemovedFromDevice,
	TypeDelayInRemoving, TypeFailedToRemove, TypeDeletedExternally, foldTypeChanged,
	TypeDeletionRequested, TypeAccessCodeGone, TypeAccessCodePolled, TypeUnmanagedFound}

// relevantHistory draws a code's history: a few own events and up to 60
// of the lock's, over 30 minutes (so times tie), on one of two locks.
func relevantHistory(r *rand.Rand) []Event {
	locks := []string{foldDevice, "another-lock", ""}
	at := func() int { return r.IntN(30) }
	var out []Event
	n := 0
	id := func() string { n++; return fmt.Sprintf("ev-%03d", n) }
	// Sometimes the code's own events name no lock (its lock unknown).
	noLock := r.IntN(4) == 0
	for range 1 + r.IntN(6) {
		typ := relevantTypes[r.IntN(len(relevantTypes))]
		var e Event
		switch typ {
		case TypeDeletionRequested:
			e = requestEv(id(), "aa-1", at())
		case TypeAccessCodeGone, TypeAccessCodePolled, TypeUnmanagedFound:
			e = pollEv(id(), typ, at(), map[string]string{"request_id": "req"})
		default:
			e = foldEv(id(), typ, at())
		}
		if r.IntN(4) == 0 {
			e.DeviceID = locks[r.IntN(2)]
		}
		if noLock {
			e.DeviceID = ""
		}
		out = append(out, e)
	}
	for range r.IntN(60) {
		var e Event
		switch k := r.IntN(10); {
		case k < 5:
			e = unlockEv(id(), at(), foldCodeID)
		case k < 6:
			e = foldEv(id(), TypeLockAccessDenied, at())
		case k < 8:
			e = unlockByPIN(id(), at(), true)
		case k < 9:
			e = unmanagedCreated(id(), at(), true)
		default:
			e = unlockEv(id(), at(), "another-code")
		}
		e.DeviceID = locks[r.IntN(len(locks))]
		if e.PINMatch && r.IntN(2) == 0 {
			deleted := -1
			if r.IntN(2) == 0 {
				deleted = at()
			}
			e = sharedPIN(e, "live-code-x", at(), deleted)
		}
		out = append(out, e)
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// withoutLast is st with LastEventAt cleared.
func withoutLast(st State) State { st.LastEventAt = nil; return st }

// relevantCheck folds one history whole and as a store refolds it, after
// every split of it into what arrived before and what arrives now.
func relevantCheck(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	h := relevantHistory(r)
	whole := Fold(h)
	rel := Relevant(h)
	if d := foldStateDiff(withoutLast(Fold(rel)), withoutLast(whole)); d != "" {
		t.Fatalf("seed %d: Relevant folds otherwise: %s\nhistory %v\nrelevant %v", seed, d, h, rel)
	}
	// Any set between Relevant and the whole history folds the same.
	var between []Event
	for _, e := range h {
		if r.IntN(3) == 0 {
			between = append(between, e)
		}
	}
	between = append(between, rel...)
	if d := foldStateDiff(withoutLast(Fold(between)), withoutLast(whole)); d != "" {
		t.Fatalf("seed %d: a set between Relevant and the whole folds otherwise: %s\nhistory %v", seed, d, h)
	}
	// Arrival: the first k events were folded before (the row keeps their
	// LastEventAt); the store loads Relevant of everything stored and the
	// events newer than the row's last; the row's LastEventAt is the later.
	for k := 0; k <= len(h); k += 1 + r.IntN(4) {
		before := Fold(h[:k])
		var loaded []Event
		loaded = append(loaded, rel...)
		for _, e := range h {
			if before.LastEventAt == nil || e.OccurredAt.After(*before.LastEventAt) {
				loaded = append(loaded, e)
			}
		}
		got := Fold(loaded)
		got.LastEventAt = Latest(before.LastEventAt, got.LastEventAt)
		if d := foldStateDiff(got, whole); d != "" {
			t.Fatalf("seed %d, %d events before: %s\nhistory %v", seed, k, d, h)
		}
	}
}

func TestRelevantFoldsAsTheWhole(t *testing.T) {
	n := 600
	if testing.Short() {
		n = 150
	}
	for seed := range uint64(n) {
		relevantCheck(t, seed)
	}
}

// FuzzRelevant is TestRelevantFoldsAsTheWhole from any seed (make fuzz).
func FuzzRelevant(f *testing.F) {
	f.Add(uint64(1))
	f.Fuzz(func(t *testing.T, seed uint64) { relevantCheck(t, seed) })
}

// The scenarios (hand-written, with their expected states) refold the same
// from Relevant.
func TestRelevantScenarios(t *testing.T) {
	var all []foldScenario
	all = append(all, foldScenarios()...)
	all = append(all, lockScenarios()...)
	all = append(all, reusedPINScenarios()...)
	for _, sc := range all {
		whole := Fold(sc.events)
		if d := foldStateDiff(withoutLast(Fold(Relevant(sc.events))), withoutLast(whole)); d != "" {
			t.Errorf("%s: %s", sc.name, d)
		}
	}
}

// A staff code's thousands of unlocks before its deletion, and after it,
// leave a handful of relevant events.
func TestRelevantIsSmall(t *testing.T) {
	h := []Event{foldEv("s", TypeSetOnDevice, 1)}
	for i := range 5000 {
		h = append(h, unlockEv(fmt.Sprintf("u%05d", i), 2+i, foldCodeID))
	}
	if got := Relevant(h); len(got) != 1 {
		t.Fatalf("active code with 5,000 unlocks: %d relevant events, want 1 (its own)", len(got))
	}
	h = append(h, foldEv("d", TypeDeleted, 6000))
	for i := range 5000 {
		h = append(h, unlockEv(fmt.Sprintf("v%05d", i), 6001+i, foldCodeID))
	}
	got := Relevant(h)
	if len(got) != 3 {
		t.Fatalf("deleted code used 5,000 times since: %d relevant events, want 3 (set, deleted, the newest unlock)", len(got))
	}
	if st := Fold(got); st.LockEvidence == nil || st.LockEvidence.EventID != "v04999" {
		t.Fatalf("evidence %+v, want the newest unlock", st.LockEvidence)
	}
}

func TestLatest(t *testing.T) {
	a, b := foldP(1), foldP(2)
	for _, c := range []struct{ x, y, want *time.Time }{{nil, nil, nil}, {a, nil, a}, {nil, b, b}, {a, b, b}, {b, a, b}} {
		if got := Latest(c.x, c.y); got != c.want {
			t.Errorf("Latest(%v, %v) = %v", c.x, c.y, got)
		}
	}
}
