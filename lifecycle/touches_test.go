package lifecycle

import (
	"reflect"
	"testing"
	"time"
)

func TestTouches(t *testing.T) {
	at := func(m int) *time.Time {
		v := time.Date(2026, 1, 1, 0, m, 0, 0, time.UTC)
		return &v
	}
	ref := func(code, ws, dev, acct string) CodeRef {
		return CodeRef{AccessCodeID: code, WorkspaceID: ws, DeviceID: dev, ConnectedAccountID: acct}
	}
	for _, tc := range []struct {
		name    string
		events  []*Parsed
		matched []string // AddMatched, after Touches
		want    Touched
		codes   []string
	}{
		{
			name:   "nothing",
			events: nil,
			want:   Touched{},
		},
		{
			name: "a code's own event, its lock named",
			events: []*Parsed{
				{EventID: "e1", EventType: TypeDeleted, AccessCodeID: "c1", WorkspaceID: "w", DeviceID: "d1", ConnectedAccountID: "a", OccurredAt: at(1)},
			},
			want:  Touched{Own: map[string]CodeRef{"c1": ref("c1", "w", "d1", "a")}, Named: []string{"d1"}},
			codes: []string{"c1"},
		},
		{
			name: "the newest own event gives the ids, in Fold's order",
			events: []*Parsed{
				{EventID: "e3", EventType: TypeSetOnDevice, AccessCodeID: "c1", DeviceID: "d-new", OccurredAt: at(5)},
				{EventID: "e1", EventType: TypeCreated, AccessCodeID: "c1", DeviceID: "d-old", OccurredAt: at(1)},
				{EventID: "e0", EventType: TypeCreated, AccessCodeID: "c1", DeviceID: "d-none"},
				{EventID: "e2", EventType: TypeDeleted, AccessCodeID: "c2", DeviceID: "d-a", OccurredAt: at(2)},
				// Same instant: the greater event id is newer.
				{EventID: "e9", EventType: TypeDeleted, AccessCodeID: "c2", DeviceID: "d-b", OccurredAt: at(2)},
				{EventID: "e4", EventType: TypeCreated, AccessCodeID: "c2", DeviceID: "d-c", OccurredAt: at(2)},
			},
			want: Touched{Own: map[string]CodeRef{"c1": ref("c1", "", "d-new", ""), "c2": ref("c2", "", "d-b", "")},
				Named: []string{"d-a", "d-b", "d-c", "d-new", "d-none", "d-old"}},
			codes: []string{"c1", "c2"},
		},
		{
			name: "codewatch's own events are a code's own",
			events: []*Parsed{
				{EventID: "cw1", EventType: TypeAccessCodeGone, AccessCodeID: "c1", WorkspaceID: "w", OccurredAt: at(1)},
			},
			want:  Touched{Own: map[string]CodeRef{"c1": ref("c1", "w", "", "")}},
			codes: []string{"c1"},
		},
		{
			name: "a lock's event names a code: lock only, unless the code's own event is here, before or after",
			events: []*Parsed{
				{EventID: "u1", EventType: TypeLockUnlocked, AccessCodeID: "c1", DeviceID: "d1"},
				{EventID: "u2", EventType: TypeLockAccessDenied, AccessCodeID: "c2", DeviceID: "d1"},
				{EventID: "e2", EventType: TypeDeleted, AccessCodeID: "c2", DeviceID: "d1", OccurredAt: at(1)},
				{EventID: "e3", EventType: TypeDeleted, AccessCodeID: "c3", DeviceID: "d1", OccurredAt: at(1)},
				{EventID: "u3", EventType: TypeLockUnlocked, AccessCodeID: "c3", DeviceID: "d1"},
			},
			want: Touched{Own: map[string]CodeRef{"c2": ref("c2", "", "d1", ""), "c3": ref("c3", "", "d1", "")},
				LockOnly: map[string]bool{"c1": true}, Named: []string{"d1"}},
			codes: []string{"c1", "c2", "c3"},
		},
		{
			name: "events outside a code's history touch no code",
			events: []*Parsed{
				{EventID: "l1", EventType: "lock.locked", AccessCodeID: "c1", DeviceID: "d1"},
				{EventID: "x1", EventType: "device.low_battery", AccessCodeID: "c2", DeviceID: "d2"},
			},
			want: Touched{Named: []string{"d1", "d2"}},
		},
		{
			name: "the lock's reports by PIN, and the codes they match",
			events: []*Parsed{
				{EventID: "u0", EventType: TypeLockUnlocked, DeviceID: "d1"},
				{EventID: "u1", EventType: TypeLockUnlocked, AccessCodeID: "c9", DeviceID: "d1"},
				{EventID: "m1", EventType: TypeUnmanagedCreated, AccessCodeID: "um1", DeviceID: "d1", OccurredAt: at(1)},
				{EventID: "e1", EventType: TypeDeleted, AccessCodeID: "c1", DeviceID: "d1", OccurredAt: at(1)},
			},
			matched: []string{"c1", "c2"},
			// An unmanaged code's appearance is an access_code.* event: its
			// own code is touched as such (as it always was).
			want: Touched{Own: map[string]CodeRef{"um1": ref("um1", "", "d1", ""), "c1": ref("c1", "", "d1", "")},
				LockOnly: map[string]bool{"c9": true, "c2": true}, PINReports: []int{0, 2}, Named: []string{"d1"}},
			codes: []string{"c1", "c2", "c9", "um1"},
		},
		{
			name: "locks and accounts to refold",
			events: []*Parsed{
				{EventID: "d1", EventType: TypeDeviceDisconnected, DeviceID: "dev-b", ConnectedAccountID: "acct-x"},
				{EventID: "d2", EventType: TypeDeviceConnected, DeviceID: "dev-a"},
				// An account's event fans out to its locks; the lock it
				// names is not listed on its own.
				{EventID: "a1", EventType: TypeAccountDisconnected, ConnectedAccountID: "acct-y", DeviceID: "dev-c"},
				// Without an account, it counts as the lock's.
				{EventID: "a2", EventType: TypeAccountConnected, DeviceID: "dev-d"},
				// A device event without a device: nothing to refold.
				{EventID: "d3", EventType: TypeDeviceFlaky},
				{EventID: "o1", EventType: "device.low_battery", DeviceID: "dev-e"},
			},
			want: Touched{Devices: []string{"dev-a", "dev-b", "dev-d"}, Accounts: []string{"acct-y"},
				Named: []string{"dev-a", "dev-b", "dev-d", "dev-e"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Touches(tc.events)
			if tc.matched != nil {
				got.AddMatched(tc.matched)
			}
			want := tc.want
			if want.Own == nil {
				want.Own = map[string]CodeRef{}
			}
			if want.LockOnly == nil {
				want.LockOnly = map[string]bool{}
			}
			for _, s := range []*[]string{&want.Named, &want.Devices, &want.Accounts} {
				if *s == nil {
					*s = []string{}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Touches:\n got  %+v\n want %+v", got, want)
			}
			codes := got.Codes()
			if tc.codes == nil {
				tc.codes = []string{}
			}
			if !reflect.DeepEqual(codes, tc.codes) {
				t.Errorf("Codes() = %v, want %v", codes, tc.codes)
			}
		})
	}
}

// Touches reads the batch as a set: any order of the same events touches
// the same codes with the same ids, and the same locks.
func TestTouchesOrderIndependent(t *testing.T) {
	at := func(m int) *time.Time {
		v := time.Date(2026, 1, 1, 0, m, 0, 0, time.UTC)
		return &v
	}
	events := []*Parsed{
		{EventID: "u1", EventType: TypeLockUnlocked, AccessCodeID: "c1", DeviceID: "d1"},
		{EventID: "e1", EventType: TypeCreated, AccessCodeID: "c1", DeviceID: "d0", OccurredAt: at(1)},
		{EventID: "e2", EventType: TypeDeleted, AccessCodeID: "c1", DeviceID: "d1", OccurredAt: at(2)},
		{EventID: "u2", EventType: TypeLockAccessDenied, AccessCodeID: "c2", DeviceID: "d1"},
		{EventID: "x1", EventType: TypeDeviceDisconnected, DeviceID: "d1"},
	}
	ref := Touches(events)
	ref.PINReports = nil
	foldPermute(len(events), func(perm []int) {
		in := make([]*Parsed, len(perm))
		for i, p := range perm {
			in[i] = events[p]
		}
		got := Touches(in)
		got.PINReports = nil // indexes: they move with the events
		if !reflect.DeepEqual(got, ref) {
			t.Errorf("order %v: %+v, want %+v", perm, got, ref)
		}
	})
}
