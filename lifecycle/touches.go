package lifecycle

import "sort"

// Touched is what a batch of new events touches: the codes to lock and
// refold, and the locks to refold. Touches works it out from the events
// alone; the codes a lock's report by PIN matches are known only once the
// store has looked them up (AddMatched).
type Touched struct {
	// Own are the codes with an event of their own in the batch
	// (IsAccessCodeEvent), each with the ids of its newest such event in
	// Fold's order: a new row starts with them.
	Own map[string]CodeRef
	// LockOnly are the other codes the batch names: by a lock's event
	// (lock.unlocked, lock.access_denied) or by a lock's report matched by
	// PIN. A lock's event touches a code only if codewatch has it: an
	// unlock by a code it never heard of makes no row (the code's own
	// first event, if it comes, reads the unlock from its history).
	LockOnly map[string]bool
	// PINReports are the indexes, among the events, of the lock's reports
	// matched by PIN (IsPINReport): the codes on their lock that carried
	// their PIN are touched too (AddMatched).
	PINReports []int
	// Named are the locks the events name (rows created if new); Devices
	// the locks with a new device.* event, and Accounts the connected
	// accounts with a new connected_account.* event, whose every lock is
	// refolded (the store fans an account out to its locks). Each sorted.
	Named, Devices, Accounts []string
}

// Touches returns what events, a batch to store, touch.
func Touches(events []*Parsed) Touched {
	t := Touched{Own: make(map[string]CodeRef, len(events)), LockOnly: map[string]bool{}}
	newest := make(map[string]*Parsed, len(events))
	named, devs, accts := make(map[string]bool, len(events)), map[string]bool{}, map[string]bool{}
	for i, p := range events {
		if IsPINReport(p) {
			t.PINReports = append(t.PINReports, i)
		}
		switch {
		case IsAccountEvent(p.EventType) && IsDeviceEvent(p.EventType) && p.ConnectedAccountID != "":
			accts[p.ConnectedAccountID] = true
		case IsDeviceEvent(p.EventType) && p.DeviceID != "":
			devs[p.DeviceID] = true
			named[p.DeviceID] = true
		case p.DeviceID != "":
			// Every lock an event names is listed, reported or not.
			named[p.DeviceID] = true
		}
		if p.AccessCodeID == "" || !IsHistoryEvent(p.EventType) {
			continue
		}
		if !IsAccessCodeEvent(p.EventType) {
			if _, own := t.Own[p.AccessCodeID]; !own {
				t.LockOnly[p.AccessCodeID] = true
			}
			continue
		}
		delete(t.LockOnly, p.AccessCodeID)
		if n := newest[p.AccessCodeID]; n == nil || parsedLater(p, n) {
			newest[p.AccessCodeID] = p
			t.Own[p.AccessCodeID] = CodeRef{AccessCodeID: p.AccessCodeID, WorkspaceID: p.WorkspaceID,
				DeviceID: p.DeviceID, ConnectedAccountID: p.ConnectedAccountID}
		}
	}
	t.Named, t.Devices, t.Accounts = sortedKeys(named), sortedKeys(devs), sortedKeys(accts)
	return t
}

// AddMatched adds the codes the batch's lock's reports by PIN matched: lock
// only, unless an event of their own is in the batch too.
func (t *Touched) AddMatched(codes []string) {
	for _, id := range codes {
		if _, own := t.Own[id]; !own {
			t.LockOnly[id] = true
		}
	}
}

// Codes lists every code touched, sorted: the order their rows are locked in.
func (t *Touched) Codes() []string {
	out := make([]string, 0, len(t.Own)+len(t.LockOnly))
	for id := range t.Own {
		out = append(out, id)
	}
	for id := range t.LockOnly {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// IsPINReport reports whether an event is a lock's report matched by PIN:
// an unlock that names no code, or an unmanaged code appearing on a lock.
func IsPINReport(p *Parsed) bool {
	return (p.EventType == TypeLockUnlocked && p.AccessCodeID == "") || p.EventType == TypeUnmanagedCreated
}

// parsedLater reports whether a sorts after b in Fold's order (occurred_at,
// then event_id; an event without occurred_at first).
func parsedLater(a, b *Parsed) bool {
	at, bt := a.OccurredAt, b.OccurredAt
	switch {
	case at == nil || bt == nil:
		return at != nil
	case !at.Equal(*bt):
		return at.After(*bt)
	}
	return a.EventID > b.EventID
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
