package lifecycle

import (
	"encoding/json"
	"slices"
	"sort"
	"time"
)

// liveAt reports whether the code was on its lock at t, as its events
// tell: it existed by then and was not deleted yet.
func (c PINCode) liveAt(t time.Time) bool {
	return (c.Since == nil || !c.Since.After(t)) && (c.DeletedAt == nil || c.DeletedAt.After(t))
}

// liveSharers lists, sorted, the codes of e.SamePIN that were live when e
// occurred.
func liveSharers(e *Event) []string {
	var out []string
	for _, c := range e.SamePIN {
		if c.AccessCodeID != "" && c.liveAt(e.OccurredAt) && !slices.Contains(out, c.AccessCodeID) {
			out = append(out, c.AccessCodeID)
		}
	}
	sort.Strings(out)
	return out
}

// lockEvidence returns the proof, among events, that the deleted code is
// still on its lock: an unlock with the code after its deletion on its lock
// (used_after_deletion, which outranks), or its PIN among the lock's
// unmanaged codes after the deletion (still_on_lock); the newest of them.
// nil without one.
//
// A report matched by PIN alone whose PIN a code live on the lock at the
// time shares (a PIN reused for the next guest) may have been that code:
// it is the evidence only when nothing surer is, it names the live codes,
// and the first such report is kept, so that the trouble, and an
// acknowledgement of it, stay the same while the live code goes on being
// used.
func lockEvidence(st *State, events []*Event) *Trouble {
	if st.DeletedAt == nil {
		return nil
	}
	var used, still, maybeUsed, maybeStill *Event
	var usedLive, stillLive []string
	for _, e := range events {
		if !e.OccurredAt.After(*st.DeletedAt) {
			continue // before the deletion, or at the same instant
		}
		onLock := st.DeviceID == "" || e.DeviceID == "" || e.DeviceID == st.DeviceID
		byPIN := e.AccessCodeID == "" && e.PINMatch
		names := e.AccessCodeID == st.AccessCodeID || byPIN
		switch e.Type {
		case TypeLockUnlocked:
			if !names || !onLock {
				continue
			}
			if live := liveSharers(e); byPIN && len(live) > 0 {
				if maybeUsed == nil { // sorted: the first
					maybeUsed, usedLive = e, live
				}
				continue
			}
			used = e // sorted: the newest wins
		case TypeUnmanagedCreated:
			if !e.PINMatch || !onLock {
				continue
			}
			if live := liveSharers(e); len(live) > 0 {
				if maybeStill == nil {
					maybeStill, stillLive = e, live
				}
				continue
			}
			still = e
		case TypeUnmanagedFound:
			if e.AccessCodeID == st.AccessCodeID {
				still = e
			}
		}
	}
	trouble := func(reason string, e *Event, live []string) *Trouble {
		return &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: e.OccurredAt, Details: lockDetails(e, live)}
	}
	switch {
	case used != nil:
		return trouble(ReasonUsedAfterDeletion, used, nil)
	case still != nil:
		return trouble(ReasonStillOnLock, still, nil)
	case maybeUsed != nil:
		return trouble(ReasonUsedAfterDeletion, maybeUsed, usedLive)
	case maybeStill != nil:
		return trouble(ReasonStillOnLock, maybeStill, stillLive)
	}
	return nil
}

// lockDetails says what the lock reported, for people: the event, how the
// code was matched, and the live codes on the lock with the same PIN, if
// any. Never the PIN.
func lockDetails(e *Event, live []string) json.RawMessage {
	match := "access_code_id"
	if e.AccessCodeID == "" || e.Type == TypeUnmanagedCreated {
		match = "pin"
	}
	if e.Type == TypeUnmanagedFound {
		match = "unmanaged_list"
	}
	ev := map[string]any{"event_id": e.EventID, "event_type": e.Type,
		"occurred_at": e.OccurredAt, "device_id": e.DeviceID, "matched_by": match}
	if len(live) > 0 {
		ev[livePINKey] = live
	}
	b, _ := json.Marshal(map[string]any{"lock_event": ev})
	return b
}

// the PIN of the lock's report.
const livePINKey = "live_codes_with_same_pin"
