package lifecycle

import (
	"encoding/json"
	"testing"
	"time"
)

// Events codewatch records of its own (source "poll"), m minutes after
// foldT0, with the default ids.

func pollEv(id, typ string, m int, details any) Event {
	e := foldEv(id, typ, m)
	e.Source = SourcePoll
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			panic(err)
		}
		e.Details = b
	}
	return e
}

func requestEv(id, attempt string, m int) Event {
	return pollEv(id, TypeDeletionRequested, m, AttemptDetails{ActionAttemptID: attempt, Status: "pending", RequestedBy: "ops"})
}

func attemptEv(id, attempt, status string, m int) Event {
	d := AttemptDetails{ActionAttemptID: attempt, Status: status}
	if status == "error" {
		d.Error = &AttemptError{Type: "lock_offline", Message: "The lock is offline"}
	}
	return pollEv(id, TypeActionAttempt, m, d)
}

func polledEv(id string, m int, status string, errorCodes, warningCodes []string) Event {
	d := PollDetails{Status: status, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}
	for _, c := range errorCodes {
		d.Errors = append(d.Errors, json.RawMessage(`{"error_code":"`+c+`","message":"`+c+` says Seam"}`))
	}
	for _, c := range warningCodes {
		d.Warnings = append(d.Warnings, json.RawMessage(`{"warning_code":"`+c+`","message":"`+c+` says Seam"}`))
	}
	return pollEv(id, TypeAccessCodePolled, m, d)
}

func goneEv(id string, m int) Event { return pollEv(id, TypeAccessCodeGone, m, PollDetails{}) }

// goneReqEv is Seam's own 404 to a lookup whose seam-request-id was reqID.
func goneReqEv(id string, m int, reqID string) Event {
	return pollEv(id, TypeAccessCodeGone, m, PollDetails{RequestID: reqID})
}

// failedLookupEv is a lookup that gave no evidence, of kind typ.
func failedLookupEv(id string, m int, typ string, status int) Event {
	return pollEv(id, TypeLookupFailed, m, LookupError{Type: typ, Message: "an HTML page answered", HTTPStatus: status, RequestID: "req-" + id})
}

// failedView is the seam block after failed lookups over prev (nil: none
// before).
func failedView(prev *SeamView, e Event) *SeamView {
	var d LookupError
	_ = json.Unmarshal(e.Details, &d)
	d.At = e.OccurredAt
	v := SeamView{PolledAt: e.OccurredAt, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}
	if prev != nil {
		v = *prev
	}
	v.Error = &d
	return &v
}

// backfilled is a Seam event codewatch fetched from events/list.
func backfilled(e Event) Event { e.Source = SourcePoll; return e }

func pollView(e Event, found bool) *SeamView {
	var d PollDetails
	_ = json.Unmarshal(e.Details, &d)
	return &SeamView{PolledAt: e.OccurredAt, Found: found, Status: d.Status, Errors: nonNil(d.Errors), Warnings: nonNil(d.Warnings),
		RequestID: d.RequestID}
}

func pollTrouble(e Event) string {
	var d PollDetails
	_ = json.Unmarshal(e.Details, &d)
	return string(pollTroubleDetails(d))
}

// pollScenarios are codewatch's own requests and polls, under every order
// like Seam's scenarios. docs/lifecycle.md lists the same cases.
func pollScenarios() []foldScenario {
	req := func(m int, status string, end *time.Time, err *AttemptError) *DeletionRequest {
		return &DeletionRequest{RequestedAt: foldAt(m), RequestedBy: "ops", ActionAttemptID: "aa-1", Status: status, EndedAt: end, Error: err}
	}
	offline := polledEv("p-off", 20, "set", []string{"device_offline"}, nil)
	failed := polledEv("p-fail", 20, "set", []string{"failed_to_remove_from_device"}, []string{"being_deleted"})
	delay := polledEv("p-delay", 20, "removing", nil, []string{"delay_in_removing_from_device"})
	quiet := polledEv("p-quiet", 20, "removing", nil, []string{"being_deleted"})
	early := polledEv("p-early", 0, "set", []string{"device_offline"}, nil)
	gone := goneEv("p-gone", 30)
	attemptErr := &AttemptError{Type: "lock_offline", Message: "The lock is offline"}
	return []foldScenario{
		{
			name:   "requested: pending until Seam's deletion",
			events: []Event{foldEv("c", TypeCreated, 0), foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5)},
			want: foldWant{state: DeletionRequested, onDevice: "true", created: foldP(0), set: foldP(1), last: foldP(5),
				request: req(5, "pending", nil, nil)},
		},
		{
			name:   "requested, attempt succeeded: still waiting for Seam's deletion",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), attemptEv("a", "aa-1", "success", 6)},
			want: foldWant{state: DeletionRequested, onDevice: "true", set: foldP(1), last: foldP(6),
				request: req(5, "success", foldP(6), nil)},
		},
		{
			name:   "requested, attempt failed: delete_action_failed",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), attemptEv("a", "aa-1", "error", 6)},
			want: foldWant{state: DeletionRequested, onDevice: "true", set: foldP(1), last: foldP(6),
				request:       req(5, "error", foldP(6), attemptErr),
				troubleReason: ReasonDeleteFailed, troubleEventID: "a",
				troubleDetails: `{"action_attempt_error":{"type":"lock_offline","message":"The lock is offline"},"action_attempt_id":"aa-1"}`},
		},
		{
			name: "requested again after a failed attempt: the new request counts",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-0", 3), attemptEv("a", "aa-0", "error", 4),
				requestEv("r2", "aa-1", 5)},
			want: foldWant{state: DeletionRequested, onDevice: "true", set: foldP(1), last: foldP(5),
				request: req(5, "pending", nil, nil)},
		},
		{
			name:   "requested, then Seam's deletion: awaiting removal",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), attemptEv("a", "aa-1", "success", 6), foldEv("d", TypeDeleted, 7)},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(7),
				request: req(5, "success", foldP(6), nil)},
		},
		{
			name: "requested, deleted, removed by webhook",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), foldEv("d", TypeDeleted, 7),
				foldEv("x", TypeRemovedFromDevice, 9)},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "d", set: foldP(1), deleted: foldP(7), removed: foldP(9), last: foldP(9),
				request: req(5, "pending", nil, nil), confirmedBy: SourceWebhook},
		},
		{
			name:   "deleted, Seam answers 404: removed, confirmed by poll",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), gone},
			want: foldWant{polls: 1, state: Removed, onDevice: "false", deletionEventID: "d", set: foldP(1), deleted: foldP(7), removed: foldP(30), last: foldP(30),
				confirmedBy: SourcePoll, seam: &SeamView{PolledAt: foldAt(30), Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}},
		},
		{
			name:   "requested, Seam's deletion never came, 404: the poll is the deletion and the removal",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), gone},
			want: foldWant{polls: 1, state: Removed, onDevice: "false", deletionEventID: "p-gone", set: foldP(1), deleted: foldP(30), removed: foldP(30), last: foldP(30),
				request: req(5, "pending", nil, nil), confirmedBy: SourcePoll, seam: pollView(gone, false)},
		},
		{
			name:   "404 without a deletion or a request changes nothing",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), gone},
			want:   foldWant{state: Active, onDevice: "true", set: foldP(1), last: foldP(30), seam: pollView(gone, false)},
		},
		{
			name:   "deleted, the live code shows failed_to_remove_from_device: failed",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), failed},
			want: foldWant{polls: 1, state: Failed, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(20),
				troubleReason: ReasonFailed, troubleEventID: "p-fail", troubleDetails: pollTrouble(failed), seam: pollView(failed, true)},
		},
		{
			name:   "deleted, the live code shows device_offline: delayed",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), offline},
			want: foldWant{polls: 1, state: Delayed, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(20),
				troubleReason: ReasonDelayed, troubleEventID: "p-off", troubleDetails: pollTrouble(offline), seam: pollView(offline, true)},
		},
		{
			name:   "requested, the live code shows delay_in_removing_from_device: delayed before Seam's deletion",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), delay},
			want: foldWant{polls: 1, state: Delayed, onDevice: "true", set: foldP(1), last: foldP(20), request: req(5, "pending", nil, nil),
				troubleReason: ReasonDelayed, troubleEventID: "p-delay", troubleDetails: pollTrouble(delay), seam: pollView(delay, true)},
		},
		{
			name:   "deleted, the live code is being removed without trouble: awaiting removal",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), quiet},
			want: foldWant{polls: 1, state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(20),
				seam: pollView(quiet, true)},
		},
		{
			name:   "a poll's errors before the deletion are not trouble",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), early, foldEv("d", TypeDeleted, 7)},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(7),
				seam: pollView(early, true)},
		},
		{
			name:   "failed by poll, then 404: removed, confirmed by poll",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), failed, gone},
			want: foldWant{polls: 2, state: Removed, onDevice: "false", deletionEventID: "d", set: foldP(1), deleted: foldP(7), removed: foldP(30), last: foldP(30),
				confirmedBy: SourcePoll, seam: pollView(gone, false)},
		},
		{
			name: "the newest poll is the one shown",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), quiet,
				polledEv("p-later", 25, "set", []string{"failed_to_remove_from_device"}, nil)},
			want: foldWant{polls: 2, state: Failed, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(25),
				troubleReason: ReasonFailed, troubleEventID: "p-later",
				troubleDetails: pollTrouble(polledEv("p-later", 25, "set", []string{"failed_to_remove_from_device"}, nil)),
				seam:           pollView(polledEv("p-later", 25, "set", []string{"failed_to_remove_from_device"}, nil), true)},
		},
		{
			name: "Seam's events backfilled: confirmed by poll",
			events: []Event{backfilled(foldEv("s", TypeSetOnDevice, 1)), backfilled(foldEv("d", TypeDeleted, 7)),
				backfilled(foldEv("x", TypeRemovedFromDevice, 9))},
			want: foldWant{state: Removed, onDevice: "false", deletionEventID: "d", set: foldP(1), deleted: foldP(7), removed: foldP(9), last: foldP(9),
				confirmedBy: SourcePoll},
		},
		{
			name:   "removed by webhook after a 404: the newest confirmation names the source",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), goneEv("p-gone", 8), foldEv("x", TypeRemovedFromDevice, 9)},
			want: foldWant{polls: 1, state: Removed, onDevice: "false", deletionEventID: "d", set: foldP(1), deleted: foldP(7), removed: foldP(9), last: foldP(9),
				confirmedBy: SourceWebhook, seam: pollView(goneEv("p-gone", 8), false)},
		},
		{
			// Issue 19: a lookup whose answer is not Seam's word (an HTML
			// 404, a gateway, a 5xx) confirms nothing and shows why.
			name:   "deleted, the lookup fails: nothing confirmed, the failure shown",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), failedLookupEv("p-html", 20, LookupSeamError, 404)},
			want: foldWant{polls: 1, state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(20),
				seam: failedView(nil, failedLookupEv("p-html", 20, LookupSeamError, 404))},
		},
		{
			name: "a failed lookup after a live poll keeps what the poll saw",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), quiet,
				failedLookupEv("p-502", 25, LookupSeamError, 502)},
			want: foldWant{polls: 2, state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(25),
				seam: failedView(pollView(quiet, true), failedLookupEv("p-502", 25, LookupSeamError, 502))},
		},
		{
			name: "failed lookups, then Seam's own 404: removed, naming the lookup",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), failedLookupEv("p-html", 20, LookupSeamError, 404),
				failedLookupEv("p-ws", 22, LookupWorkspaceUnknown, 404), goneReqEv("p-gone", 30, "req-7")},
			want: foldWant{polls: 3, state: Removed, onDevice: "false", deletionEventID: "d", set: foldP(1), deleted: foldP(7), removed: foldP(30), last: foldP(30),
				confirmedBy: SourcePoll, seam: pollView(goneReqEv("p-gone", 30, "req-7"), false)},
		},
		{
			name:   "a code of another workspace: not looked up, not counted as a lookup",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), failedLookupEv("p-nc", 20, LookupNotCovered, 0)},
			want: foldWant{state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(1), deleted: foldP(7), last: foldP(20),
				seam: failedView(nil, failedLookupEv("p-nc", 20, LookupNotCovered, 0))},
		},
		{
			name:   "set again after a 404: awaiting removal",
			events: []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), goneEv("p-gone", 8), foldEv("s2", TypeSetOnDevice, 9)},
			want: foldWant{polls: 1, state: AwaitingRemoval, onDevice: "true", deletionEventID: "d", set: foldP(9), deleted: foldP(7), removed: foldP(8), last: foldP(9),
				seam: pollView(goneEv("p-gone", 8), false)},
		},
	}
}

func TestFoldPollScenarios(t *testing.T) {
	for _, sc := range pollScenarios() {
		t.Run(sc.name, func(t *testing.T) { foldCheckScenario(t, sc) })
	}
}

// An attempt's end counts only for the request it belongs to.
func TestFoldAttemptOfAnotherRequest(t *testing.T) {
	evs := []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), attemptEv("a", "aa-other", "error", 6)}
	st := Fold(evs)
	if st.DeletionState != DeletionRequested || st.Trouble != nil || st.DeletionRequest.Status != "pending" {
		t.Fatalf("%s %+v %+v", st.DeletionState, st.Trouble, st.DeletionRequest)
	}
	foldCheckOrders(t, evs, st)
}

func TestPollReason(t *testing.T) {
	for _, tc := range []struct {
		errors, warnings []string
		want             string
	}{
		{nil, nil, ""},
		{[]string{"failed_to_remove_from_device"}, nil, ReasonFailed},
		{[]string{"device_offline", "failed_to_remove_from_device"}, nil, ReasonFailed},
		{[]string{"device_offline"}, nil, ReasonDelayed},
		{[]string{"device_disconnected"}, nil, ReasonDelayed},
		{[]string{"hub_disconnected"}, nil, ReasonDelayed},
		{[]string{"account_disconnected"}, nil, ReasonDelayed},
		{[]string{"provider_issue"}, nil, ReasonDelayed},
		{nil, []string{"delay_in_removing_from_device"}, ReasonDelayed},
		{nil, []string{"being_deleted"}, ""},
		{[]string{"duplicate_code_on_device"}, nil, ""},
		{[]string{"some_future_error"}, []string{"some_future_warning"}, ""},
	} {
		e := polledEv("p", 0, "set", tc.errors, tc.warnings)
		var d PollDetails
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		if got := PollReason(d); got != tc.want {
			t.Errorf("errors %v warnings %v: %q, want %q", tc.errors, tc.warnings, got, tc.want)
		}
	}
	// Malformed items are skipped, not fatal.
	if got := PollReason(PollDetails{Errors: []json.RawMessage{json.RawMessage(`"x"`), json.RawMessage(`{"error_code":7}`)}}); got != "" {
		t.Errorf("malformed: %q", got)
	}
}

func TestAssessDeletionRequested(t *testing.T) {
	const timeout = 30 * time.Minute
	pending := Fold([]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5)}).Summary()
	failed := Fold([]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), attemptEv("a", "aa-1", "error", 6)}).Summary()
	for _, tc := range []struct {
		name    string
		s       Summary
		now     time.Time
		timeout time.Duration
		want    *Flag
	}{
		{"pending, before the timeout", pending, foldAt(35), timeout, nil},
		{"pending, after the timeout: overdue", pending, foldAt(36), timeout,
			&Flag{Reason: ReasonOverdue, Key: "overdue:request:aa-1", Since: foldAt(35)}},
		{"pending, overdue disabled", pending, foldAt(600), 0, nil},
		{"attempt failed: at once", failed, foldAt(6), timeout,
			&Flag{Reason: ReasonDeleteFailed, Key: "a", Since: foldAt(6)}},
		{"attempt failed, overdue disabled: still flagged", failed, foldAt(600), 0,
			&Flag{Reason: ReasonDeleteFailed, Key: "a", Since: foldAt(6)}},
	} {
		got := Assess(tc.s, tc.now, tc.timeout)
		switch {
		case got == nil && tc.want == nil:
		case got == nil || tc.want == nil:
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		case got.Reason != tc.want.Reason || got.Key != tc.want.Key || !got.Since.Equal(tc.want.Since):
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestNextReconcile(t *testing.T) {
	const after = 10 * time.Minute
	deleted := []Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 2)}
	withPolls := func(n int) []Event {
		evs := append([]Event(nil), deleted...)
		for i := 0; i < n; i++ {
			evs = append(evs, polledEv("p"+string(rune('a'+i)), 10+i, "removing", nil, nil))
		}
		return evs
	}
	for _, tc := range []struct {
		name  string
		evs   []Event
		after time.Duration
		want  *time.Time
	}{
		{"off", deleted, 0, nil},
		{"active: never", []Event{foldEv("s", TypeSetOnDevice, 1)}, after, nil},
		{"removed: never", append(withPolls(0), foldEv("r", TypeRemovedFromDevice, 3)), after, nil},
		{"deleted: after past the newest evidence", deleted, after, foldP(12)},
		{"requested: after past the request", []Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa", 5)}, after, foldP(15)},
		{"one poll: twice as long", withPolls(1), after, foldP(10 + 20)},
		{"three polls: eight times", withPolls(3), after, foldP(12 + 80)},
		{"many polls: capped at 6 h", withPolls(7), after, foldP(16 + 360)},
		{"a webhook after the polls restarts from it", append(withPolls(2), foldEv("w", TypeDelayInRemoving, 40)), after, foldP(40 + 40)},
	} {
		got := NextReconcile(Fold(tc.evs), tc.after)
		if !foldSameTime(got, tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, foldFmtTime(got), foldFmtTime(tc.want))
		}
	}
}

func TestUnconfirmedSince(t *testing.T) {
	for _, tc := range []struct {
		evs  []Event
		want *time.Time
	}{
		{[]Event{foldEv("s", TypeSetOnDevice, 1)}, nil},
		{[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa", 5)}, foldP(5)},
		{[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa", 5), foldEv("d", TypeDeleted, 7)}, foldP(7)},
		{[]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa", 5), delayEvAt(9)}, foldP(5)},
		{[]Event{foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7), foldEv("x", TypeRemovedFromDevice, 8)}, nil},
	} {
		if got := Fold(tc.evs).UnconfirmedSince(); !foldSameTime(got, tc.want) {
			t.Errorf("%v: %s, want %s", tc.evs, foldFmtTime(got), foldFmtTime(tc.want))
		}
	}
}

func delayEvAt(m int) Event {
	return polledEv("p-delay", m, "removing", nil, []string{"delay_in_removing_from_device"})
}

// The failed request's alert carries Seam's error for the reader.
func TestTroubleDetailsOfAFailedRequest(t *testing.T) {
	st := Fold([]Event{foldEv("s", TypeSetOnDevice, 1), requestEv("r", "aa-1", 5), attemptEv("a", "aa-1", "error", 6)})
	f := Assess(st.Summary(), foldAt(6), time.Hour)
	var d map[string]any
	if err := json.Unmarshal([]byte(TroubleDetails(f)), &d); err != nil {
		t.Fatal(err)
	}
	e, _ := d["action_attempt_error"].(map[string]any)
	if d["action_attempt_id"] != "aa-1" || e["message"] != "The lock is offline" || d["event_id"] != "a" {
		t.Fatalf("details %v", d)
	}
	a := NewAlert(foldAt(6), "al", 1, AlertTrouble, st, f, "", LockStatus{})
	if a.NextStep == "" || a.Message != "Seam could not delete access code "+foldCodeID+": delete_action_failed" {
		t.Fatalf("alert %+v", a)
	}
}

// codewatch's own events parse back to what Fold needs.
func TestOwnEventParses(t *testing.T) {
	at := foldAt(7)
	d := OwnEvent("cw_x", TypeActionAttempt, at, CodeRef{AccessCodeID: "code1", DeviceID: "dev1"},
		AttemptDetails{ActionAttemptID: "aa", Status: "error", Error: &AttemptError{Type: "t", Message: "m"}})
	if d.Source != SourcePoll || d.MessageID != "codewatch:cw_x" {
		t.Fatalf("%+v", d)
	}
	p, err := Parse(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	if p.EventID != "cw_x" || p.EventType != TypeActionAttempt || p.AccessCodeID != "code1" || p.DeviceID != "dev1" ||
		p.WorkspaceID != "" || !p.OccurredAt.Equal(at) {
		t.Fatalf("parsed %+v", p)
	}
	var back AttemptDetails
	if err := json.Unmarshal(p.Details, &back); err != nil || back.Error == nil || back.Error.Message != "m" {
		t.Fatalf("details %s: %v", p.Details, err)
	}
	// A Seam-shaped body with a codewatch type parses too: refusing it is
	// the webhook path's job (IsOwnEvent).
	if !IsOwnEvent(p.EventType) || IsOwnEvent(TypeDeleted) {
		t.Fatal("IsOwnEvent")
	}
}

// Issue 19, point 3: a confirmation names its evidence, written out here
// rather than derived, for each kind of confirming event.
func TestConfirmationNamesItsEvidence(t *testing.T) {
	set, del := foldEv("s", TypeSetOnDevice, 1), foldEv("d", TypeDeleted, 7)
	for _, tc := range []struct {
		name string
		last Event
		want Confirmation
	}{
		{"removed_from_device by webhook", foldEv("x", TypeRemovedFromDevice, 9),
			Confirmation{ConfirmedBy: SourceWebhook, EventID: "x", EventType: TypeRemovedFromDevice, At: foldAt(9), SvixID: "msg_x"}},
		{"removed_from_device backfilled", backfilled(foldEv("x", TypeRemovedFromDevice, 9)),
			Confirmation{ConfirmedBy: SourcePoll, EventID: "x", EventType: TypeRemovedFromDevice, At: foldAt(9)}},
		{"deleted_external_to_seam by webhook", foldEv("e", TypeDeletedExternally, 9),
			Confirmation{ConfirmedBy: SourceWebhook, EventID: "e", EventType: TypeDeletedExternally, At: foldAt(9), SvixID: "msg_e"}},
		{"Seam's own 404 to a lookup", goneReqEv("g", 9, "req-42"),
			Confirmation{ConfirmedBy: SourcePoll, EventID: "g", EventType: TypeAccessCodeGone, At: foldAt(9), SeamRequestID: "req-42"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Fold([]Event{set, del, tc.last})
			if st.DeletionState != Removed || st.Confirmation == nil || *st.Confirmation != tc.want {
				t.Fatalf("got %s %+v, want %+v", st.DeletionState, st.Confirmation, tc.want)
			}
			if st := Fold([]Event{set, del, tc.last, foldEv("s2", TypeSetOnDevice, 10)}); st.Confirmation != nil {
				t.Fatalf("set again: confirmation %+v stays", st.Confirmation)
			}
		})
	}
	if st := Fold([]Event{set, del, failedLookupEv("f", 9, LookupSeamError, 404)}); st.Confirmation != nil || st.DeletionState != AwaitingRemoval {
		t.Fatalf("a failed lookup confirmed: %s %+v", st.DeletionState, st.Confirmation)
	}
}
