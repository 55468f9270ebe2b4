package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// Pure tests of the deletion state machine: Fold, Assess, Transition and the
// helpers around them. No database. Helpers carry a fold prefix so they do not
// clash with other test files of this package.

// foldT0 is the instant the scenarios start at (Seam's examples' timestamp).
var foldT0 = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

// The ids every scenario event carries unless it says otherwise.
const (
	foldCodeID    = "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e"
	foldWorkspace = "680d7c60-0a92-4e78-85bd-cb45155576b9"
	foldDevice    = "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8"
	foldAccount   = "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"
)

// Event types outside the seven folded ones.
const (
	foldTypeDelayInSetting = "access_code.delay_in_setting_on_device"
	foldTypeFailedToSet    = "access_code.failed_to_set_on_device"
	foldTypeChanged        = "access_code.changed"
)

// foldAt is foldT0 plus m minutes.
func foldAt(m int) time.Time { return foldT0.Add(time.Duration(m) * time.Minute) }

// foldP is a pointer to foldAt(m).
func foldP(m int) *time.Time { t := foldAt(m); return &t }

// foldEv is an event of typ with the default ids, m minutes after foldT0.
func foldEv(id, typ string, m int) Event {
	e := Event{EventID: id, Type: typ, OccurredAt: foldAt(m), WorkspaceID: foldWorkspace,
		AccessCodeID: foldCodeID, DeviceID: foldDevice, ConnectedAccountID: foldAccount, MessageID: "msg_" + id}
	if typ == TypeDelayInRemoving || typ == TypeFailedToRemove {
		e.Details = json.RawMessage(`{"access_code_errors":[{"message":"` + id + `"}]}`)
	}
	return e
}

// foldPermute calls fn with every permutation of 0..n-1 (Heap's algorithm).
// fn must not keep perm.
func foldPermute(n int, fn func(perm []int)) {
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	c := make([]int, n)
	fn(perm)
	for i := 0; i < n; {
		if c[i] < i {
			if i%2 == 0 {
				perm[0], perm[i] = perm[i], perm[0]
			} else {
				perm[c[i]], perm[i] = perm[i], perm[c[i]]
			}
			fn(perm)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

// foldApply returns events in the order perm gives.
func foldApply(events []Event, perm []int) []Event {
	out := make([]Event, len(perm))
	for i, p := range perm {
		out[i] = events[p]
	}
	return out
}

func foldFmtTime(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func foldFmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

func foldFmtTrouble(t *Trouble) string {
	if t == nil {
		return "nil"
	}
	return fmt.Sprintf("{%s %s %s %s}", t.Reason, t.EventID, foldFmtTime(&t.OccurredAt), t.Details)
}

func foldSameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// foldStateDiff describes how a and b differ, or "" when they are the same
// state: every field, times compared as instants.
func foldStateDiff(a, b State) string {
	var d []string
	str := func(name, x, y string) {
		if x != y {
			d = append(d, fmt.Sprintf("%s %q != %q", name, x, y))
		}
	}
	str("access_code_id", a.AccessCodeID, b.AccessCodeID)
	str("workspace_id", a.WorkspaceID, b.WorkspaceID)
	str("device_id", a.DeviceID, b.DeviceID)
	str("connected_account_id", a.ConnectedAccountID, b.ConnectedAccountID)
	str("deletion_state", string(a.DeletionState), string(b.DeletionState))
	str("on_device", foldFmtBool(a.OnDevice), foldFmtBool(b.OnDevice))
	str("deleted_externally", fmt.Sprint(a.DeletedExternally), fmt.Sprint(b.DeletedExternally))
	str("deletion_event_id", a.DeletionEventID, b.DeletionEventID)
	for _, f := range []struct {
		name string
		x, y *time.Time
	}{
		{"created_at", a.CreatedAt, b.CreatedAt},
		{"set_on_device_at", a.SetOnDeviceAt, b.SetOnDeviceAt},
		{"deleted_at", a.DeletedAt, b.DeletedAt},
		{"removed_from_device_at", a.RemovedFromDeviceAt, b.RemovedFromDeviceAt},
		{"last_event_at", a.LastEventAt, b.LastEventAt},
	} {
		if !foldSameTime(f.x, f.y) {
			d = append(d, fmt.Sprintf("%s %s != %s", f.name, foldFmtTime(f.x), foldFmtTime(f.y)))
		}
	}
	str("confirmed_by", a.ConfirmedBy, b.ConfirmedBy)
	str("polls", fmt.Sprint(a.Polls), fmt.Sprint(b.Polls))
	str("lock_evidence", foldFmtTrouble(a.LockEvidence), foldFmtTrouble(b.LockEvidence))
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	str("deletion_request", js(a.DeletionRequest), js(b.DeletionRequest))
	str("confirmation", js(a.Confirmation), js(b.Confirmation))
	str("seam", js(a.Seam), js(b.Seam))
	switch {
	case a.Trouble == nil && b.Trouble == nil:
	case a.Trouble == nil || b.Trouble == nil:
		d = append(d, fmt.Sprintf("trouble %s != %s", foldFmtTrouble(a.Trouble), foldFmtTrouble(b.Trouble)))
	default:
		x, y := a.Trouble, b.Trouble
		str("trouble.reason", x.Reason, y.Reason)
		str("trouble.event_id", x.EventID, y.EventID)
		str("trouble.details", string(x.Details), string(y.Details))
		if !x.OccurredAt.Equal(y.OccurredAt) {
			d = append(d, fmt.Sprintf("trouble.occurred_at %s != %s", foldFmtTime(&x.OccurredAt), foldFmtTime(&y.OccurredAt)))
		}
	}
	return strings.Join(d, "; ")
}

// foldInvariants reports what in st contradicts the state machine's
// definitions, for events folded into st.
func foldInvariants(st State, events []Event) []string {
	var bad []string
	fail := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	known := false
	for _, s := range States {
		known = known || s == st.DeletionState
	}
	if !known {
		fail("unknown deletion_state %q", st.DeletionState)
	}
	// Without a deletion a code is active, or codewatch asked for one (and
	// Seam may have reported trouble with it already).
	switch {
	case st.DeletionState == Active && st.DeletedAt != nil,
		st.DeletedAt == nil && st.DeletionState != Active && st.DeletionRequest == nil,
		st.DeletedAt == nil && st.DeletionState != Active && st.DeletionState != DeletionRequested &&
			st.DeletionState != Delayed && st.DeletionState != Failed:
		fail("deletion_state %s with deleted_at %s", st.DeletionState, foldFmtTime(st.DeletedAt))
	}
	if st.DeletionState == Removed && st.ConfirmedBy != SourceWebhook && st.ConfirmedBy != SourcePoll {
		fail("removed with confirmed_by %q", st.ConfirmedBy)
	}
	if st.DeletionState != Removed && st.ConfirmedBy != "" {
		fail("%s with confirmed_by %q", st.DeletionState, st.ConfirmedBy)
	}
	if (st.DeletedAt == nil) != (st.DeletionEventID == "") {
		fail("deleted_at %s with deletion_event_id %q", foldFmtTime(st.DeletedAt), st.DeletionEventID)
	}
	if st.DeletedExternally && st.DeletedAt == nil {
		fail("deleted externally but no deleted_at")
	}
	if st.LockEvidence != nil {
		if st.OnDevice == nil || !*st.OnDevice || st.DeletedAt == nil || !st.LockEvidence.OccurredAt.After(*st.DeletedAt) {
			fail("lock evidence %s with on_device %s, deleted_at %s", foldFmtTrouble(st.LockEvidence), foldFmtBool(st.OnDevice), foldFmtTime(st.DeletedAt))
		}
	}
	switch st.DeletionState {
	case Removed:
		if st.LockEvidence == nil && (st.OnDevice == nil || *st.OnDevice) {
			fail("removed with on_device %s", foldFmtBool(st.OnDevice))
		}
		if st.RemovedFromDeviceAt == nil {
			fail("removed without removed_from_device_at")
		}
	case DeletedNotProgrammed:
		if st.LockEvidence == nil && (st.OnDevice == nil || *st.OnDevice) {
			fail("deleted_not_programmed with on_device %s", foldFmtBool(st.OnDevice))
		}
		if st.CreatedAt == nil || st.SetOnDeviceAt != nil {
			fail("deleted_not_programmed with created_at %s set_on_device_at %s",
				foldFmtTime(st.CreatedAt), foldFmtTime(st.SetOnDeviceAt))
		}
	}
	switch st.DeletionState {
	case Delayed, Failed:
		want := ReasonDelayed
		if st.DeletionState == Failed {
			want = ReasonFailed
		}
		if st.Trouble == nil || st.Trouble.Reason != want {
			fail("%s with trouble %s", st.DeletionState, foldFmtTrouble(st.Trouble))
		} else if st.SetOnDeviceAt != nil && st.Trouble.OccurredAt.Before(*st.SetOnDeviceAt) {
			fail("trouble at %s predates the last set at %s", foldFmtTime(&st.Trouble.OccurredAt), foldFmtTime(st.SetOnDeviceAt))
		}
	case DeletionRequested:
		if st.Trouble != nil && st.Trouble.Reason != ReasonDeleteFailed {
			fail("%s with trouble %s", st.DeletionState, foldFmtTrouble(st.Trouble))
		}
	default:
		if st.Trouble != nil {
			fail("%s with trouble %s", st.DeletionState, foldFmtTrouble(st.Trouble))
		}
	}
	var first, last *time.Time
	for i := range events {
		if last == nil || events[i].OccurredAt.After(*last) {
			last = &events[i].OccurredAt
		}
		if first == nil || events[i].OccurredAt.Before(*first) {
			first = &events[i].OccurredAt
		}
	}
	if _, distinct := foldDistinctIDs(events); distinct {
		if !foldSameTime(last, st.LastEventAt) {
			fail("last_event_at %s, latest event %s", foldFmtTime(st.LastEventAt), foldFmtTime(last))
		}
	} else if st.LastEventAt == nil || st.LastEventAt.Before(*first) || st.LastEventAt.After(*last) {
		// One body per event_id is folded; the others are ignored.
		fail("last_event_at %s outside the events' %s..%s", foldFmtTime(st.LastEventAt), foldFmtTime(first), foldFmtTime(last))
	}
	for _, t := range []*time.Time{st.CreatedAt, st.SetOnDeviceAt, st.DeletedAt, st.RemovedFromDeviceAt} {
		if t != nil && last != nil && t.After(*last) {
			fail("timestamp %s after last_event_at %s", foldFmtTime(t), foldFmtTime(last))
		}
	}
	return bad
}

// foldWant is a scenario's expected State. OnDevice is "true", "false" or
// "nil"; ids default to the fold* constants.
type foldWant struct {
	state           DeletionState
	onDevice        string
	troubleReason   string
	troubleEventID  string
	deletionEventID string
	external        bool
	created, set    *time.Time
	deleted         *time.Time
	removed         *time.Time
	last            *time.Time
	deviceID        string
	workspaceID     string
	// For codewatch's own events: troubleDetails replaces the trouble
	// event's details when the trouble's are derived from them.
	troubleDetails string
	confirmedBy    string
	request        *DeletionRequest
	seam           *SeamView
	polls          int
	// lock: the lock's evidence (used_after_deletion, still_on_lock) and
	// the event that gave it.
	lockReason, lockEventID string
	// lockLive: the live codes sharing the PIN of the lock's report, when
	// they may explain it.
	lockLive []string
}

func (w foldWant) state2() State {
	st := State{AccessCodeID: foldCodeID, WorkspaceID: foldWorkspace, DeviceID: foldDevice,
		ConnectedAccountID: foldAccount, DeletionState: w.state, DeletedExternally: w.external,
		DeletionEventID: w.deletionEventID, CreatedAt: w.created, SetOnDeviceAt: w.set,
		DeletedAt: w.deleted, RemovedFromDeviceAt: w.removed, LastEventAt: w.last,
		ConfirmedBy: w.confirmedBy, DeletionRequest: w.request, Seam: w.seam, Polls: w.polls}
	if w.state == Removed && w.confirmedBy == "" {
		st.ConfirmedBy = SourceWebhook
	}
	if w.deviceID != "" {
		st.DeviceID = w.deviceID
	}
	if w.workspaceID != "" {
		st.WorkspaceID = w.workspaceID
	}
	switch w.onDevice {
	case "true":
		b := true
		st.OnDevice = &b
	case "false":
		b := false
		st.OnDevice = &b
	}
	return st
}

type foldScenario struct {
	name   string
	events []Event
	want   foldWant
}

// foldScenarios are the Seam guide's cases and codewatch's own, each checked
// under every delivery order. docs/lifecycle.md lists the same table.
func foldScenarios() []foldScenario {
	// Seam's own examples share one timestamp, in a second zone for one event.
	plus2 := time.FixedZone("+02:00", 2*3600)
	tied := foldEv("ev-b-set", TypeSetOnDevice, 0)
	tied.OccurredAt = tied.OccurredAt.In(plus2)

	return []foldScenario{
		{
			name: "deleted then removed",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeRemovedFromDevice, 12),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(12), last: foldP(12)},
		},
		{
			name: "deleted then removed, one timestamp",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				// The removal sorts first by event_id: removal before deletion.
				foldEv("ev-z-deleted", TypeDeleted, 10), foldEv("ev-a-removed", TypeRemovedFromDevice, 10),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-z-deleted",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(10), last: foldP(10)},
		},
		{
			name:   "deleted never programmed",
			events: []Event{foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeDeleted, 5)},
			want: foldWant{state: DeletedNotProgrammed, onDevice: "false", deletionEventID: "ev-2",
				created: foldP(0), deleted: foldP(5), last: foldP(5)},
		},
		{
			name:   "deleted never programmed, one timestamp, deletion sorts first",
			events: []Event{foldEv("ev-b", TypeCreated, 0), foldEv("ev-a", TypeDeleted, 0)},
			want: foldWant{state: DeletedNotProgrammed, onDevice: "false", deletionEventID: "ev-a",
				created: foldP(0), deleted: foldP(0), last: foldP(0)},
		},
		{
			name: "delayed or failed in setting, then deleted",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", foldTypeDelayInSetting, 1),
				foldEv("ev-3", foldTypeFailedToSet, 2), foldEv("ev-4", TypeDeleted, 5),
			},
			want: foldWant{state: DeletedNotProgrammed, onDevice: "false", deletionEventID: "ev-4",
				created: foldP(0), deleted: foldP(5), last: foldP(5)},
		},
		{
			name: "delay",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeDelayInRemoving, 11),
			},
			want: foldWant{state: Delayed, onDevice: "true", deletionEventID: "ev-3",
				troubleReason: ReasonDelayed, troubleEventID: "ev-4",
				created: foldP(0), set: foldP(1), deleted: foldP(10), last: foldP(11)},
		},
		{
			name: "delay then removal",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeDelayInRemoving, 11),
				foldEv("ev-5", TypeRemovedFromDevice, 40),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(40), last: foldP(40)},
		},
		{
			name: "delay and removal at one timestamp, delay sorts first",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-2", TypeDeleted, 10),
				foldEv("ev-a-delay", TypeDelayInRemoving, 11), foldEv("ev-b-removed", TypeRemovedFromDevice, 11),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-2",
				set: foldP(1), deleted: foldP(10), removed: foldP(11), last: foldP(11)},
		},
		{
			name: "delay and removal at one timestamp, removal sorts first",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-2", TypeDeleted, 10),
				foldEv("ev-b-delay", TypeDelayInRemoving, 11), foldEv("ev-a-removed", TypeRemovedFromDevice, 11),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-2",
				set: foldP(1), deleted: foldP(10), removed: foldP(11), last: foldP(11)},
		},
		{
			name: "failure",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeFailedToRemove, 12),
			},
			want: foldWant{state: Failed, onDevice: "true", deletionEventID: "ev-3",
				troubleReason: ReasonFailed, troubleEventID: "ev-4",
				created: foldP(0), set: foldP(1), deleted: foldP(10), last: foldP(12)},
		},
		{
			name: "failure then removal",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeFailedToRemove, 12),
				foldEv("ev-5", TypeRemovedFromDevice, 90),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(90), last: foldP(90)},
		},
		{
			name: "removal arriving before deletion",
			events: []Event{
				// Delivered first and occurred first (the lock's clock runs early).
				foldEv("ev-4", TypeRemovedFromDevice, 9),
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(9), last: foldP(10)},
		},
		{
			name: "failure delivered after the confirmation",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-5", TypeRemovedFromDevice, 20),
				foldEv("ev-4", TypeFailedToRemove, 15),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(20), last: foldP(20)},
		},
		{
			name: "failure and delay occurring after the confirmation",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeRemovedFromDevice, 20),
				foldEv("ev-5", TypeFailedToRemove, 25), foldEv("ev-6", TypeDelayInRemoving, 26),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(20), last: foldP(26)},
		},
		{
			name: "external deletion",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeletedExternally, 30),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3", external: true,
				created: foldP(0), set: foldP(1), deleted: foldP(30), removed: foldP(30), last: foldP(30)},
		},
		{
			name: "external deletion after a delayed Seam deletion",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-2", TypeDeleted, 10),
				foldEv("ev-3", TypeDelayInRemoving, 11), foldEv("ev-4", TypeDeletedExternally, 30),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-2", external: true,
				set: foldP(1), deleted: foldP(10), removed: foldP(30), last: foldP(30)},
		},
		{
			name: "removal without deletion",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeRemovedFromDevice, 60),
			},
			want: foldWant{state: Active, onDevice: "false",
				created: foldP(0), set: foldP(1), removed: foldP(60), last: foldP(60)},
		},
		{
			name: "duplicates",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-3", TypeDeleted, 10),
				foldEv("ev-4", TypeRemovedFromDevice, 12), foldEv("ev-4", TypeRemovedFromDevice, 12),
				foldEv("ev-2", TypeSetOnDevice, 1),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), removed: foldP(12), last: foldP(12)},
		},
		{
			name: "set again after removal, then deleted",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeRemovedFromDevice, 5), foldEv("ev-4", TypeSetOnDevice, 7),
				foldEv("ev-5", TypeDeleted, 10),
			},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "ev-5",
				created: foldP(0), set: foldP(7), deleted: foldP(10), removed: foldP(5), last: foldP(10)},
		},
		{
			name: "set again after removal, deleted, then failure",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-2", TypeRemovedFromDevice, 5),
				foldEv("ev-3", TypeSetOnDevice, 7), foldEv("ev-4", TypeDeleted, 10),
				foldEv("ev-5", TypeFailedToRemove, 11),
			},
			want: foldWant{state: Failed, onDevice: "true", deletionEventID: "ev-4",
				troubleReason: ReasonFailed, troubleEventID: "ev-5",
				set: foldP(7), deleted: foldP(10), removed: foldP(5), last: foldP(11)},
		},
		{
			name: "set and removal at one timestamp, set sorts last",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-a-removed", TypeRemovedFromDevice, 5),
				foldEv("ev-b-set", TypeSetOnDevice, 5), foldEv("ev-4", TypeDeleted, 10),
			},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "ev-4",
				set: foldP(5), deleted: foldP(10), removed: foldP(5), last: foldP(10)},
		},
		{
			name: "set and removal at one timestamp, removal sorts last",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-b-removed", TypeRemovedFromDevice, 5),
				foldEv("ev-a-set", TypeSetOnDevice, 5), foldEv("ev-4", TypeDeleted, 10),
			},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "ev-4",
				set: foldP(5), deleted: foldP(10), removed: foldP(5), last: foldP(10)},
		},
		{
			name: "delay then failure",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10), foldEv("ev-4", TypeDelayInRemoving, 11),
				foldEv("ev-5", TypeFailedToRemove, 20),
			},
			want: foldWant{state: Failed, onDevice: "true", deletionEventID: "ev-3",
				troubleReason: ReasonFailed, troubleEventID: "ev-5",
				created: foldP(0), set: foldP(1), deleted: foldP(10), last: foldP(20)},
		},
		{
			name: "failure then delay: the latest report decides",
			events: []Event{
				foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-2", TypeDeleted, 10),
				foldEv("ev-3", TypeFailedToRemove, 11), foldEv("ev-4", TypeDelayInRemoving, 20),
			},
			want: foldWant{state: Delayed, onDevice: "true", deletionEventID: "ev-2",
				troubleReason: ReasonDelayed, troubleEventID: "ev-4",
				set: foldP(1), deleted: foldP(10), last: foldP(20)},
		},
		{
			name: "created, set, deleted",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDeleted, 10),
			},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "ev-3",
				created: foldP(0), set: foldP(1), deleted: foldP(10), last: foldP(10)},
		},
		{
			name: "created, set, deleted at one timestamp (Seam's examples), other zone",
			events: []Event{
				foldEv("ev-c-created", TypeCreated, 0), tied, foldEv("ev-a-deleted", TypeDeleted, 0),
			},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "ev-a-deleted",
				created: foldP(0), set: foldP(0), deleted: foldP(0), last: foldP(0)},
		},
		{
			name:   "unknown code deleted",
			events: []Event{foldEv("ev-1", TypeDeleted, 10)},
			want: foldWant{state: AwaitingRemoval, onDevice: "nil", deletionEventID: "ev-1",
				deleted: foldP(10), last: foldP(10)},
		},
		{
			name: "unknown code deleted, then a change",
			events: []Event{
				foldEv("ev-1", TypeDeleted, 10), foldEv("ev-2", foldTypeChanged, 11),
			},
			want: foldWant{state: AwaitingRemoval, onDevice: "nil", deletionEventID: "ev-1",
				deleted: foldP(10), last: foldP(11)},
		},
		{
			name: "never deleted",
			events: []Event{
				foldEv("ev-1", TypeCreated, 0), foldEv("ev-2", TypeSetOnDevice, 1),
				foldEv("ev-3", TypeDelayInRemoving, 2), foldEv("ev-4", foldTypeChanged, 3),
			},
			want: foldWant{state: Active, onDevice: "true",
				created: foldP(0), set: foldP(1), last: foldP(3)},
		},
		{
			name: "ids taken from the latest event that has them",
			events: func() []Event {
				a := foldEv("ev-1", TypeCreated, 0)
				a.DeviceID, a.WorkspaceID = "device-old", "workspace-old"
				b := foldEv("ev-2", TypeSetOnDevice, 1)
				b.DeviceID, b.WorkspaceID = "device-new", ""
				c := foldEv("ev-3", TypeDeleted, 10)
				c.DeviceID, c.WorkspaceID = "", "workspace-new"
				d := foldEv("ev-4", foldTypeChanged, 11)
				d.DeviceID, d.WorkspaceID, d.ConnectedAccountID, d.AccessCodeID = "", "", "", ""
				return []Event{a, b, c, d}
			}(),
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "ev-3",
				deviceID: "device-new", workspaceID: "workspace-new",
				created: foldP(0), set: foldP(1), deleted: foldP(10), last: foldP(11)},
		},
	}
}

// wantConfirmation is the evidence a removed code's fold must name: the
// confirming event (a removal, an external deletion, or Seam's own 404 to a
// lookup) at the code's removed_from_device_at, the last of them in Fold's
// order; nil when the code is not removed.
func wantConfirmation(events []Event, want State) *Confirmation {
	if want.DeletionState != Removed || want.RemovedFromDeviceAt == nil {
		return nil
	}
	evs := append([]Event(nil), events...)
	Sort(evs)
	var c *Confirmation
	for _, e := range evs {
		if !e.OccurredAt.Equal(*want.RemovedFromDeviceAt) {
			continue
		}
		switch e.Type {
		case TypeRemovedFromDevice, TypeDeletedExternally:
			c = &Confirmation{ConfirmedBy: sourceOf(&e), EventID: e.EventID, EventType: e.Type, At: e.OccurredAt}
			if c.ConfirmedBy == SourceWebhook {
				c.SvixID = e.MessageID
			}
		case TypeAccessCodeGone:
			var d PollDetails
			_ = json.Unmarshal(e.Details, &d)
			c = &Confirmation{ConfirmedBy: SourcePoll, EventID: e.EventID, EventType: e.Type, At: e.OccurredAt, SeamRequestID: d.RequestID}
		}
	}
	return c
}

// foldCheckOrders checks that every order of events folds to want, and that
// duplicating any event changes nothing.
func foldCheckOrders(t *testing.T, events []Event, want State) {
	t.Helper()
	n := 0
	foldPermute(len(events), func(perm []int) {
		n++
		if n > 1 && t.Failed() {
			return
		}
		in := foldApply(events, perm)
		got := Fold(in)
		if d := foldStateDiff(got, want); d != "" {
			t.Errorf("order %v: %s", perm, d)
		}
	})
	for i := range events {
		with := append(append([]Event{events[i]}, events...), events[i])
		if d := foldStateDiff(Fold(with), want); d != "" {
			t.Errorf("event %d (%s) duplicated: %s", i, events[i].EventID, d)
		}
	}
}

func TestFoldScenarios(t *testing.T) {
	for _, sc := range foldScenarios() {
		t.Run(sc.name, func(t *testing.T) { foldCheckScenario(t, sc) })
	}
}

// foldCheckScenario folds sc's events, compares with sc.want, checks the
// invariants, then every delivery order and every duplicate.
func foldCheckScenario(t *testing.T, sc foldScenario) {
	t.Helper()
	{
		{
			if len(sc.events) > 7 {
				t.Fatalf("%d events: keep scenarios at 7 or fewer", len(sc.events))
			}
			want := sc.want.state2()
			for i := range sc.events {
				if e := sc.events[i]; sc.want.troubleReason != "" && e.EventID == sc.want.troubleEventID {
					want.Trouble = &Trouble{Reason: sc.want.troubleReason, EventID: e.EventID, OccurredAt: e.OccurredAt, Details: e.Details}
					if sc.want.troubleDetails != "" {
						want.Trouble.Details = json.RawMessage(sc.want.troubleDetails)
					}
				}
			}
			if sc.want.lockReason != "" {
				for i := range sc.events {
					if e := &sc.events[i]; e.EventID == sc.want.lockEventID {
						want.LockEvidence = &Trouble{Reason: sc.want.lockReason, EventID: e.EventID, OccurredAt: e.OccurredAt, Details: lockDetails(e, sc.want.lockLive)}
						b := true
						want.OnDevice = &b
					}
				}
			}
			want.Confirmation = wantConfirmation(sc.events, want)
			got := Fold(sc.events)
			if d := foldStateDiff(got, want); d != "" {
				t.Fatalf("Fold: %s", d)
			}
			if sc.want.troubleReason != "" && want.Trouble == nil {
				t.Fatalf("no event %s for the trouble", sc.want.troubleEventID)
			}
			if bad := foldInvariants(got, sc.events); len(bad) > 0 {
				t.Fatalf("invariants: %v", bad)
			}
			// The reference includes the trouble, so the orders agree on it too.
			foldCheckOrders(t, sc.events, got)
		}
	}
}

// The guide's sample set at Seam's single example timestamp, with the
// examples' own event ids: the order is decided by event_id alone.
func TestFoldScenarioSeamExamplesOneTimestamp(t *testing.T) {
	var events []Event
	var ids = map[string]string{}
	for _, name := range []string{"created", "set_on_device", "deleted", "delay_in_removing_from_device",
		"failed_to_remove_from_device", "removed_from_device", "deleted_external_to_seam"} {
		p, err := Parse([]byte(parseSeamExamples["access_code."+name+".json"]))
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = p.EventID
		events = append(events, Event{EventID: p.EventID, Type: p.EventType, OccurredAt: *p.OccurredAt,
			WorkspaceID: p.WorkspaceID, AccessCodeID: p.AccessCodeID, DeviceID: p.DeviceID,
			ConnectedAccountID: p.ConnectedAccountID, Details: p.Details})
	}
	got := Fold(events)
	// By event_id: delay 0bd0, removed 651c, failed 6ffb, set b080,
	// external e72b, deleted efad, created fc1a. The set reopens the removal,
	// then the external deletion confirms it again.
	want := foldWant{state: Removed, onDevice: "false", external: true,
		deletionEventID: ids["deleted_external_to_seam"],
		created:         foldP(0), set: foldP(0), deleted: foldP(0), removed: foldP(0), last: foldP(0)}.state2()
	want.Confirmation = wantConfirmation(events, want)
	if want.Confirmation == nil || want.Confirmation.EventID != ids["deleted_external_to_seam"] {
		t.Fatalf("the external deletion does not confirm: %+v", want.Confirmation)
	}
	if d := foldStateDiff(got, want); d != "" {
		t.Fatal(d)
	}
	foldCheckOrders(t, events, got)
}

func TestFoldRules(t *testing.T) {
	// Each rule of the state machine on its own, with the smallest history
	// that shows it.
	tests := []struct {
		rule   string
		events []Event
		state  DeletionState
		on     string
	}{
		{"a later confirmation resolves an earlier delay",
			[]Event{foldEv("d", TypeDeleted, 1), foldEv("w", TypeDelayInRemoving, 2), foldEv("r", TypeRemovedFromDevice, 3)}, Removed, "false"},
		{"a later confirmation resolves an earlier failure",
			[]Event{foldEv("d", TypeDeleted, 1), foldEv("f", TypeFailedToRemove, 2), foldEv("r", TypeRemovedFromDevice, 3)}, Removed, "false"},
		{"a delay after the confirmation does not reopen it",
			[]Event{foldEv("d", TypeDeleted, 1), foldEv("r", TypeRemovedFromDevice, 2), foldEv("w", TypeDelayInRemoving, 3)}, Removed, "false"},
		{"a failure after the confirmation does not reopen it",
			[]Event{foldEv("d", TypeDeleted, 1), foldEv("r", TypeRemovedFromDevice, 2), foldEv("f", TypeFailedToRemove, 3)}, Removed, "false"},
		{"a set after the confirmation reopens it",
			[]Event{foldEv("r", TypeRemovedFromDevice, 1), foldEv("s", TypeSetOnDevice, 2), foldEv("d", TypeDeleted, 3)}, AwaitingRemoval, "true"},
		{"a set after the confirmation lets a later failure count",
			[]Event{foldEv("r", TypeRemovedFromDevice, 1), foldEv("s", TypeSetOnDevice, 2), foldEv("d", TypeDeleted, 3), foldEv("f", TypeFailedToRemove, 4)}, Failed, "true"},
		{"a set after a failure clears it",
			[]Event{foldEv("d", TypeDeleted, 1), foldEv("f", TypeFailedToRemove, 2), foldEv("s", TypeSetOnDevice, 3)}, AwaitingRemoval, "true"},
		{"a removal before the deletion: removed once deleted",
			[]Event{foldEv("r", TypeRemovedFromDevice, 1), foldEv("d", TypeDeleted, 2)}, Removed, "false"},
		{"a removal without a deletion: active, off the lock",
			[]Event{foldEv("r", TypeRemovedFromDevice, 1)}, Active, "false"},
		{"an external deletion is a deletion and a removal",
			[]Event{foldEv("x", TypeDeletedExternally, 1)}, Removed, "false"},
		{"a deletion codewatch saw no creation for awaits removal",
			[]Event{foldEv("d", TypeDeleted, 1)}, AwaitingRemoval, "nil"},
		{"created and deleted, never set: not programmed",
			[]Event{foldEv("c", TypeCreated, 1), foldEv("d", TypeDeleted, 2)}, DeletedNotProgrammed, "false"},
		{"created, delay in setting, deleted: not programmed",
			[]Event{foldEv("c", TypeCreated, 1), foldEv("w", foldTypeDelayInSetting, 2), foldEv("d", TypeDeleted, 3)}, DeletedNotProgrammed, "false"},
		{"created, failed to set, deleted: not programmed",
			[]Event{foldEv("c", TypeCreated, 1), foldEv("f", foldTypeFailedToSet, 2), foldEv("d", TypeDeleted, 3)}, DeletedNotProgrammed, "false"},
		{"created, set, deleted: awaiting removal, on the lock",
			[]Event{foldEv("c", TypeCreated, 1), foldEv("s", TypeSetOnDevice, 2), foldEv("d", TypeDeleted, 3)}, AwaitingRemoval, "true"},
		{"created only: active, not on the lock yet",
			[]Event{foldEv("c", TypeCreated, 1)}, Active, "false"},
		{"a delay on a code not deleted is not a state",
			[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("w", TypeDelayInRemoving, 2)}, Active, "true"},
		{"a second deletion keeps the first",
			[]Event{foldEv("d1", TypeDeleted, 1), foldEv("d2", TypeDeleted, 2)}, AwaitingRemoval, "nil"},
		{"other access_code events do not move the state",
			[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2), foldEv("c", foldTypeChanged, 3), foldEv("u", "access_code.unmanaged.converted_to_managed", 4)}, AwaitingRemoval, "true"},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			got := Fold(tc.events)
			if got.DeletionState != tc.state || foldFmtBool(got.OnDevice) != tc.on {
				t.Fatalf("deletion_state %s on_device %s, want %s %s", got.DeletionState, foldFmtBool(got.OnDevice), tc.state, tc.on)
			}
			if bad := foldInvariants(got, tc.events); len(bad) > 0 {
				t.Fatalf("invariants: %v", bad)
			}
			foldCheckOrders(t, tc.events, got)
		})
	}
}

func TestFoldSecondDeletionKeepsFirst(t *testing.T) {
	st := Fold([]Event{foldEv("d2", TypeDeleted, 2), foldEv("d1", TypeDeleted, 1), foldEv("x", TypeDeletedExternally, 3)})
	if st.DeletionEventID != "d1" || !foldSameTime(st.DeletedAt, foldP(1)) || !st.DeletedExternally ||
		!foldSameTime(st.RemovedFromDeviceAt, foldP(3)) {
		t.Fatalf("got %+v", st)
	}
}

func TestFoldTimestampsFirstAndLatest(t *testing.T) {
	// created_at and deleted_at: the first; set_on_device_at and
	// removed_from_device_at: the latest.
	evs := []Event{
		foldEv("c1", TypeCreated, 0), foldEv("c2", TypeCreated, 2),
		foldEv("s1", TypeSetOnDevice, 1), foldEv("s2", TypeSetOnDevice, 3),
		foldEv("d1", TypeDeleted, 5), foldEv("r1", TypeRemovedFromDevice, 4), foldEv("r2", TypeRemovedFromDevice, 6),
	}
	want := foldWant{state: Removed, onDevice: "false", deletionEventID: "d1",
		created: foldP(0), set: foldP(3), deleted: foldP(5), removed: foldP(6), last: foldP(6)}.state2()
	want.Confirmation = wantConfirmation(evs, want)
	foldCheckOrders(t, evs, want)
}

func TestFoldEmpty(t *testing.T) {
	for _, evs := range [][]Event{nil, {}} {
		if d := foldStateDiff(Fold(evs), State{DeletionState: Active}); d != "" {
			t.Fatalf("Fold(%v): %s", evs, d)
		}
	}
}

func TestFoldLeavesInputAlone(t *testing.T) {
	evs := []Event{foldEv("b", TypeDeleted, 5), foldEv("a", TypeCreated, 1), foldEv("b", TypeDeleted, 5)}
	before := fmt.Sprint(evs)
	Fold(evs)
	if after := fmt.Sprint(evs); after != before {
		t.Fatalf("Fold reordered its input:\n%s\n%s", before, after)
	}
}

func TestFoldConflictingDuplicatesOrderIndependent(t *testing.T) {
	// Two different bodies under one event_id cannot both be stored (the
	// events table keeps the first), but Fold is a function of the set: any
	// order of such a set gives one answer.
	evs := []Event{
		foldEv("ev-1", TypeSetOnDevice, 1), foldEv("ev-2", TypeDeleted, 10),
		foldEv("ev-3", TypeRemovedFromDevice, 20), foldEv("ev-3", TypeFailedToRemove, 21),
		foldEv("ev-2", foldTypeChanged, 9),
	}
	foldCheckOrders(t, evs, Fold(evs))
}

func TestFoldPermuteHelper(t *testing.T) {
	for n := 0; n <= 6; n++ {
		seen := map[string]bool{}
		foldPermute(n, func(perm []int) {
			k := fmt.Sprint(perm)
			if seen[k] {
				t.Fatalf("n=%d: %s twice", n, k)
			}
			seen[k] = true
		})
		want := 1
		for i := 2; i <= n; i++ {
			want *= i
		}
		if len(seen) != want {
			t.Fatalf("n=%d: %d permutations, want %d", n, len(seen), want)
		}
	}
}

func TestFoldSortOrder(t *testing.T) {
	evs := []Event{foldEv("c", TypeDeleted, 2), foldEv("b", TypeCreated, 1), foldEv("a", TypeSetOnDevice, 2), foldEv("z", TypeCreated, 0)}
	Sort(evs)
	var got []string
	for _, e := range evs {
		got = append(got, e.EventID)
	}
	if strings.Join(got, ",") != "z,b,a,c" {
		t.Fatalf("Sort: %v", got)
	}
}

func TestFoldStatesAndReasons(t *testing.T) {
	want := []DeletionState{"active", "deletion_requested", "awaiting_removal", "delayed", "failed", "removed", "deleted_not_programmed"}
	if fmt.Sprint(States) != fmt.Sprint(want) {
		t.Fatalf("States %v", States)
	}
	if fmt.Sprint(Reasons) != "[removal_overdue removal_delayed failed_to_remove delete_action_failed used_after_deletion still_on_lock]" {
		t.Fatalf("Reasons %v", Reasons)
	}
	terminal := map[DeletionState]bool{Removed: true, DeletedNotProgrammed: true}
	unconfirmed := map[DeletionState]bool{DeletionRequested: true, AwaitingRemoval: true, Delayed: true, Failed: true}
	for _, s := range States {
		if s.Terminal() != terminal[s] || s.Unconfirmed() != unconfirmed[s] {
			t.Errorf("%s: Terminal %v Unconfirmed %v", s, s.Terminal(), s.Unconfirmed())
		}
	}
	for typ, want := range map[string]bool{TypeDeleted: true, "access_code.anything_new": true, "lock.locked": false, TypeAccessCodeGone: true, "codewatchx": false, "": false, "access_codes.x": false} {
		if IsAccessCodeEvent(typ) != want {
			t.Errorf("IsAccessCodeEvent(%q) = %v", typ, !want)
		}
	}
}

func TestAssess(t *testing.T) {
	del := foldAt(0)
	tr := &Trouble{Reason: ReasonDelayed, EventID: "ev-w", OccurredAt: foldAt(3), Details: json.RawMessage(`{"device_errors":[]}`)}
	fl := &Trouble{Reason: ReasonFailed, EventID: "ev-f", OccurredAt: foldAt(4)}
	const timeout = 30 * time.Minute
	tests := []struct {
		name    string
		s       Summary
		now     time.Time
		timeout time.Duration
		want    *Flag
	}{
		{"delayed flags at once", sum(Delayed, &del, "ev-d", tr), foldAt(3), timeout,
			&Flag{Reason: ReasonDelayed, Key: "ev-w", Since: foldAt(3), Details: tr.Details}},
		{"failed flags at once", sum(Failed, &del, "ev-d", fl), foldAt(4), timeout,
			&Flag{Reason: ReasonFailed, Key: "ev-f", Since: foldAt(4)}},
		{"delayed flags with overdue disabled", sum(Delayed, &del, "ev-d", tr), foldAt(3), 0,
			&Flag{Reason: ReasonDelayed, Key: "ev-w", Since: foldAt(3), Details: tr.Details}},
		{"delayed without its trouble", sum(Delayed, &del, "ev-d", nil), foldAt(300), timeout, nil},
		{"awaiting, before the timeout", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(29), timeout, nil},
		{"awaiting, exactly at the timeout", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(30), timeout, nil},
		{"awaiting, 1ns after the timeout", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(30).Add(1), timeout,
			&Flag{Reason: ReasonOverdue, Key: "overdue:ev-d", Since: foldAt(30)}},
		{"awaiting, long after", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(60 * 24), timeout,
			&Flag{Reason: ReasonOverdue, Key: "overdue:ev-d", Since: foldAt(30)}},
		{"awaiting, timeout 0 disables", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(60 * 24), 0, nil},
		{"awaiting, negative timeout disables", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(60 * 24), -time.Minute, nil},
		{"awaiting without deleted_at", sum(AwaitingRemoval, nil, "", nil), foldAt(60 * 24), timeout, nil},
		{"awaiting, deleted in the future", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(-60), timeout, nil},
		{"active never", sum(Active, nil, "", nil), foldAt(60 * 24), timeout, nil},
		{"removed never", sum(Removed, &del, "ev-d", nil), foldAt(60 * 24), timeout, nil},
		{"removed never, even with stale trouble", sum(Removed, &del, "ev-d", tr), foldAt(60 * 24), timeout, nil},
		{"deleted_not_programmed never", sum(DeletedNotProgrammed, &del, "ev-d", nil), foldAt(60 * 24), timeout, nil},
		{"awaiting, huge timeout", sum(AwaitingRemoval, &del, "ev-d", nil), foldAt(60 * 24), time.Duration(math.MaxInt64), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Assess(tc.s, tc.now, tc.timeout)
			switch {
			case got == nil && tc.want == nil:
			case got == nil || tc.want == nil:
				t.Fatalf("got %+v, want %+v", got, tc.want)
			case got.Reason != tc.want.Reason || got.Key != tc.want.Key || !got.Since.Equal(tc.want.Since) ||
				!bytes.Equal(got.Details, tc.want.Details):
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Assess on folded scenarios: only the three unconfirmed states ever flag,
// and only awaiting_removal waits for the timeout.
func TestAssessScenarios(t *testing.T) {
	const timeout = 30 * time.Minute
	for _, sc := range foldScenarios() {
		st := Fold(sc.events)
		early := Assess(st.Summary(), *st.LastEventAt, timeout)
		late := Assess(st.Summary(), st.LastEventAt.Add(24*time.Hour), timeout)
		off := Assess(st.Summary(), st.LastEventAt.Add(24*time.Hour), 0)
		reason := func(f *Flag) string {
			if f == nil {
				return ""
			}
			return f.Reason
		}
		var wantEarly, wantLate, wantOff string
		switch st.DeletionState {
		case Delayed:
			wantEarly, wantLate, wantOff = ReasonDelayed, ReasonDelayed, ReasonDelayed
		case Failed:
			wantEarly, wantLate, wantOff = ReasonFailed, ReasonFailed, ReasonFailed
		case AwaitingRemoval:
			wantLate = ReasonOverdue
		}
		if reason(early) != wantEarly || reason(late) != wantLate || reason(off) != wantOff {
			t.Errorf("%s (%s): flags %q %q %q, want %q %q %q", sc.name, st.DeletionState,
				reason(early), reason(late), reason(off), wantEarly, wantLate, wantOff)
		}
	}
}

func TestAssessOverdueCutoffAgrees(t *testing.T) {
	now := foldAt(1000)
	for _, timeout := range []time.Duration{time.Nanosecond, time.Second, 30 * time.Minute, 90 * 24 * time.Hour} {
		cut := OverdueCutoff(now, timeout)
		for _, off := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Hour} {
			del := cut.Add(off)
			s := Summary{DeletionState: AwaitingRemoval, DeletedAt: &del, DeletionEventID: "d"}
			overdue := Assess(s, now, timeout) != nil
			if overdue != del.Before(cut) {
				t.Errorf("timeout %s, deleted_at cutoff%+v: Assess overdue %v, cutoff says %v", timeout, off, overdue, del.Before(cut))
			}
		}
	}
}

func TestAssessSummary(t *testing.T) {
	st := Fold([]Event{foldEv("d", TypeDeleted, 1), foldEv("f", TypeFailedToRemove, 2)})
	s := st.Summary()
	if s.DeletionState != Failed || s.DeletionEventID != "d" || !foldSameTime(s.DeletedAt, foldP(1)) || s.Trouble != st.Trouble {
		t.Fatalf("Summary %+v of %+v", s, st)
	}
}

func TestNeedsTroubleshooting(t *testing.T) {
	f := &Flag{Reason: ReasonFailed, Key: "ev-f"}
	for _, tc := range []struct {
		flag *Flag
		ack  string
		want bool
	}{
		{nil, "", false},
		{nil, "ev-f", false},
		{f, "", true},
		{f, "ev-f", false},
		{f, "ev-other", true},
		{&Flag{Reason: ReasonOverdue, Key: "overdue:d"}, "d", true},
	} {
		if got := NeedsTroubleshooting(tc.flag, tc.ack); got != tc.want {
			t.Errorf("NeedsTroubleshooting(%+v, %q) = %v", tc.flag, tc.ack, got)
		}
	}
}

func TestTransition(t *testing.T) {
	for _, tc := range []struct {
		was    bool
		oldKey string
		now    bool
		newKey string
		want   string
	}{
		{false, "", false, "", ""},
		{false, "", true, "k1", AlertTrouble},           // trouble begins
		{false, "k1", true, "k1", AlertTrouble},         // begins again after it was not needed (e.g. an ack undone)
		{true, "k1", true, "k1", ""},                    // the same trouble: no repeat
		{true, "k1", true, "k2", AlertTrouble},          // a different trouble replaces it
		{true, "overdue:d", true, "ev-f", AlertTrouble}, // overdue becomes a failure
		{true, "k1", false, "", AlertResolved},          // trouble ends
		{true, "k1", false, "k1", AlertResolved},        // acknowledged: flag stays, need ends
		{false, "k1", false, "k2", ""},                  // not needed either side
	} {
		if got := Transition(tc.was, tc.oldKey, tc.now, tc.newKey); got != tc.want {
			t.Errorf("Transition(%v, %q, %v, %q) = %q, want %q", tc.was, tc.oldKey, tc.now, tc.newKey, got, tc.want)
		}
	}
}

// TestTransitionScenarioAlerts runs a code's life through the same steps the
// store takes (Fold, Assess, acknowledgement, Transition) and checks the
// alerts: one per trouble, one per resolution, none for repeats.
func TestTransitionScenarioAlerts(t *testing.T) {
	const timeout = 30 * time.Minute
	var (
		events  []Event
		needing bool
		key     string
		ack     string
		alerts  []string
	)
	step := func(now time.Time) {
		t.Helper()
		flag := Assess(Fold(events).Summary(), now, timeout)
		needs := NeedsTroubleshooting(flag, ack)
		newKey := ""
		if flag != nil {
			newKey = flag.Key
		}
		if a := Transition(needing, key, needs, newKey); a != "" {
			alerts = append(alerts, a+" "+newKey)
		}
		needing, key = needs, newKey
	}
	events = append(events, foldEv("c", TypeCreated, 0), foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 10))
	step(foldAt(10))
	step(foldAt(40)) // exactly at the timeout: not yet
	step(foldAt(41)) // overdue
	step(foldAt(50)) // still overdue: no repeat
	events = append(events, foldEv("w", TypeDelayInRemoving, 55))
	step(foldAt(55)) // the delay replaces the overdue flag
	ack = "w"
	step(foldAt(56)) // acknowledged: resolved
	step(foldAt(57)) // no repeat
	events = append(events, foldEv("f", TypeFailedToRemove, 60))
	step(foldAt(60)) // new trouble flags again
	events = append(events, foldEv("w", TypeDelayInRemoving, 55))
	step(foldAt(61)) // a redelivery changes nothing
	events = append(events, foldEv("r", TypeRemovedFromDevice, 70))
	step(foldAt(70)) // confirmed: resolved
	events = append(events, foldEv("f2", TypeFailedToRemove, 80))
	step(foldAt(80)) // failure after the confirmation: nothing
	want := []string{
		AlertTrouble + " overdue:d",
		AlertTrouble + " w",
		AlertResolved + " w",
		AlertTrouble + " f",
		AlertResolved + " ",
	}
	if fmt.Sprint(alerts) != fmt.Sprint(want) {
		t.Fatalf("alerts\n%q\nwant\n%q", alerts, want)
	}
}

func sum(st DeletionState, deletedAt *time.Time, eventID string, tr *Trouble) Summary {
	return Summary{DeletionState: st, DeletedAt: deletedAt, DeletionEventID: eventID, Trouble: tr}
}
