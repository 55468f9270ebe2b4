package lifecycle

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// Sort orders events the way Fold reads them: by occurred_at, then event_id.
// The order is total for distinct event ids, so any delivery order of the same
// set sorts the same.
func Sort(events []Event) {
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if !a.OccurredAt.Equal(b.OccurredAt) {
			return a.OccurredAt.Before(b.OccurredAt)
		}
		return a.EventID < b.EventID
	})
}

// Fold computes a code's state from all of its events, in any order and with
// duplicates. It recomputes from the whole set rather than applying one event
// to a previous state, so late and reordered deliveries give the same answer.
//
// Each family of events has its own part: Seam's lifecycle events
// (seamEvent), codewatch's own requests, attempts and lookups
// (codewatchEvent), and the lock's evidence (lockEvidence, judged once the
// code's deletion and lock are known). What depends on more than one event
// (the action attempt of the newest request, the deletion state) is decided
// after the loop, from the whole set.
func Fold(events []Event) State {
	evs := dedupe(events)
	Sort(evs)

	yes, no := true, false
	f := &folder{yes: &yes, no: &no}
	for i := range evs {
		e := &evs[i]
		at := e.OccurredAt
		f.st.LastEventAt = &at
		if !ownFamily(e) {
			f.lockEvents = append(f.lockEvents, e)
			continue
		}
		f.ids(e)
		switch {
		case e.Type == TypeUnmanagedFound:
			// The lock's evidence, found by codewatch's lookup.
			f.lockEvents = append(f.lockEvents, e)
		case strings.HasPrefix(e.Type, codewatchPrefix):
			f.codewatchEvent(e, &at)
		default:
			f.seamEvent(e, &at)
		}
	}
	return f.state()
}

// folder is one fold under way: the State it builds and what the events read
// so far say.
type folder struct {
	st        State
	yes, no   *bool
	onDevice  *bool
	created   bool
	everSet   bool
	deleted   bool
	requested bool // codewatch asked Seam to delete it
	confirmed bool // off the lock by a confirmation not undone by a later set
	// lastConfirmedBy is the source of the newest confirmation, and
	// lastConfirmation its evidence.
	lastConfirmedBy  string
	lastConfirmation *Confirmation
	trouble          *Trouble
	// attempts are the action attempts' ends, by id: applied to the
	// request they belong to after the loop, whatever their order.
	attempts map[string]Event
	// The lock's evidence, judged once the code's deletion and lock are
	// known (after the loop).
	lockEvents []*Event
}

// ids keeps the code's ids current from one of its own events.
func (f *folder) ids(e *Event) {
	if e.AccessCodeID != "" {
		f.st.AccessCodeID = e.AccessCodeID
	}
	if e.WorkspaceID != "" {
		f.st.WorkspaceID = e.WorkspaceID
	}
	if e.DeviceID != "" {
		f.st.DeviceID = e.DeviceID
	}
	if e.ConnectedAccountID != "" {
		f.st.ConnectedAccountID = e.ConnectedAccountID
	}
}

// deleting reports whether the code is being deleted: Seam deleted it or
// codewatch asked Seam to.
func (f *folder) deleting() bool { return f.deleted || f.requested }

// markDeleted records e as the code's deletion, unless an earlier event was.
func (f *folder) markDeleted(e *Event, at *time.Time) {
	if !f.deleted {
		f.deleted = true
		f.st.DeletedAt = at
		f.st.DeletionEventID = e.EventID
	}
}

// confirm records a confirmed removal at at, by source with evidence c: it
// clears the removal trouble until a new programming.
func (f *folder) confirm(at *time.Time, source string, c *Confirmation) {
	f.onDevice = f.no
	f.confirmed = true
	f.trouble = nil
	f.st.RemovedFromDeviceAt = at
	f.lastConfirmedBy, f.lastConfirmation = source, c
}

// seamEvent reads one of Seam's access_code.* lifecycle events.
func (f *folder) seamEvent(e *Event, at *time.Time) {
	switch e.Type {
	case TypeCreated:
		f.created = true
		if f.st.CreatedAt == nil {
			f.st.CreatedAt = at
		}
		// Created means "not on the lock yet", unless a set (with a
		// skewed clock) already said otherwise.
		if f.onDevice == nil {
			f.onDevice = f.no
		}
	case TypeSetOnDevice:
		f.everSet = true
		f.onDevice = f.yes
		f.st.SetOnDeviceAt = at
		// A new programming starts a new episode: earlier confirmations
		// and removal trouble no longer describe the lock.
		f.confirmed = false
		f.trouble = nil
	case TypeRemovedFromDevice:
		f.confirm(at, sourceOf(e), eventConfirmation(e))
	case TypeDeletedExternally:
		f.confirm(at, sourceOf(e), eventConfirmation(e))
		f.st.DeletedExternally = true
		f.markDeleted(e, at)
	case TypeDeleted:
		f.markDeleted(e, at)
	case TypeDelayInRemoving, TypeFailedToRemove:
		// A report after a confirmed removal stays in the history only.
		if f.confirmed {
			return
		}
		reason := ReasonDelayed
		if e.Type == TypeFailedToRemove {
			reason = ReasonFailed
		}
		f.trouble = &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: *at, Details: e.Details}
	}
}

// codewatchEvent reads one of codewatch's own events: its deletion
// requests, their action attempts, and its lookups in Seam's API.
func (f *folder) codewatchEvent(e *Event, at *time.Time) {
	switch e.Type {
	case TypeDeletionRequested:
		var d AttemptDetails
		_ = json.Unmarshal(e.Details, &d)
		// The newest request is the one that counts (a request again
		// after a failed attempt).
		f.requested = true
		f.st.DeletionRequest = &DeletionRequest{RequestedAt: *at, RequestedBy: d.RequestedBy,
			ActionAttemptID: d.ActionAttemptID, Status: "pending"}
	case TypeActionAttempt:
		var d AttemptDetails
		if json.Unmarshal(e.Details, &d) == nil && d.ActionAttemptID != "" {
			if f.attempts == nil {
				f.attempts = map[string]Event{}
			}
			f.attempts[d.ActionAttemptID] = *e
		}
	case TypeAccessCodePolled:
		if f.deleting() {
			f.st.Polls++
		}
		var d PollDetails
		_ = json.Unmarshal(e.Details, &d)
		f.st.Seam = &SeamView{PolledAt: *at, Found: true, Status: d.Status, Errors: nonNil(d.Errors), Warnings: nonNil(d.Warnings),
			RequestID: d.RequestID}
		// What the lock's code looks like in Seam counts like Seam's
		// own reports, once the code is being deleted.
		if f.deleting() && !f.confirmed {
			if reason := PollReason(d); reason != "" {
				f.trouble = &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: *at, Details: pollTroubleDetails(d)}
			}
		}
	case TypeLookupFailed:
		var d LookupError
		_ = json.Unmarshal(e.Details, &d)
		if f.deleting() && d.Type != LookupNotCovered {
			f.st.Polls++ // a failing API is asked again later, not sooner
		}
		d.At = *at
		v := SeamView{PolledAt: *at, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}
		if f.st.Seam != nil {
			v = *f.st.Seam
		}
		v.Error = &d
		f.st.Seam = &v
	case TypeAccessCodeGone:
		if f.deleting() {
			f.st.Polls++
		}
		var d PollDetails
		_ = json.Unmarshal(e.Details, &d)
		f.st.Seam = &SeamView{PolledAt: *at, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}, RequestID: d.RequestID}
		// A 404 after the deletion (or codewatch's request) confirms it.
		// After a request alone, Seam's deletion event has not come: the
		// 404 is the first evidence of the deletion too.
		if f.deleting() {
			f.markDeleted(e, at)
			f.confirm(at, SourcePoll, &Confirmation{ConfirmedBy: SourcePoll, EventID: e.EventID, EventType: e.Type,
				At: *at, SeamRequestID: d.RequestID})
		}
	}
}

// attemptTrouble applies the newest request's action attempt, once ended,
// to the request, and returns the trouble of one that ended in error.
func (f *folder) attemptTrouble() *Trouble {
	r := f.st.DeletionRequest
	if r == nil {
		return nil
	}
	e, ok := f.attempts[r.ActionAttemptID]
	if !ok {
		return nil
	}
	var d AttemptDetails
	_ = json.Unmarshal(e.Details, &d)
	end := e.OccurredAt
	r.Status, r.Error, r.EndedAt = d.Status, d.Error, &end
	if d.Status != "error" {
		return nil
	}
	details, _ := json.Marshal(map[string]any{"action_attempt_id": d.ActionAttemptID, "action_attempt_error": d.Error})
	return &Trouble{Reason: ReasonDeleteFailed, EventID: e.EventID, OccurredAt: end, Details: details}
}

// state decides the code's deletion state from all its events read.
func (f *folder) state() State {
	attemptTrouble := f.attemptTrouble()
	st := f.st
	st.OnDevice = f.onDevice
	switch {
	case !f.deleted && !f.requested:
		st.DeletionState = Active
	case f.confirmed:
		st.DeletionState = Removed
		st.OnDevice = f.no
		st.ConfirmedBy = f.lastConfirmedBy
		st.Confirmation = f.lastConfirmation
	case f.trouble != nil && f.trouble.Reason == ReasonFailed:
		st.DeletionState = Failed
		st.Trouble = f.trouble
	case f.trouble != nil:
		st.DeletionState = Delayed
		st.Trouble = f.trouble
	case !f.deleted:
		// Requested, and Seam has not said it deleted the code yet.
		st.DeletionState = DeletionRequested
		st.Trouble = attemptTrouble
	case f.created && !f.everSet:
		st.DeletionState = DeletedNotProgrammed
		st.OnDevice = f.no
	default:
		st.DeletionState = AwaitingRemoval
	}
	// Whatever Seam reported, the lock says the code is still there (or,
	// when a live code shares the PIN, may be: until someone checks, it
	// counts as there).
	if ev := lockEvidence(&st, f.lockEvents); ev != nil {
		st.LockEvidence = ev
		st.OnDevice = f.yes
	}
	return st
}

// eventConfirmation is the evidence a Seam event gives of a removal: its
// ids, and the Svix message id when it came as a webhook.
func eventConfirmation(e *Event) *Confirmation {
	c := &Confirmation{ConfirmedBy: sourceOf(e), EventID: e.EventID, EventType: e.Type, At: e.OccurredAt}
	if c.ConfirmedBy == SourceWebhook {
		c.SvixID = e.MessageID
	}
	return c
}

// sourceOf names the source of an event ("" reads as webhook).
func sourceOf(e *Event) string {
	if e.Source == SourcePoll {
		return SourcePoll
	}
	return SourceWebhook
}

func nonNil(v []json.RawMessage) []json.RawMessage {
	if v == nil {
		return []json.RawMessage{}
	}
	return v
}

// PollReason maps what access_codes/get shows of a code being deleted to a
// troubleshooting reason ("" for none). docs/lifecycle.md has the table.
func PollReason(d PollDetails) string {
	codes := func(items []json.RawMessage, key string) []string {
		var out []string
		for _, it := range items {
			var m map[string]any
			if json.Unmarshal(it, &m) == nil {
				if c, ok := m[key].(string); ok {
					out = append(out, c)
				}
			}
		}
		return out
	}
	reason := ""
	for _, c := range codes(d.Errors, "error_code") {
		switch c {
		case "failed_to_remove_from_device":
			return ReasonFailed
		case "device_offline", "device_disconnected", "hub_disconnected", "account_disconnected", "provider_issue":
			reason = ReasonDelayed
		}
	}
	for _, c := range codes(d.Warnings, "warning_code") {
		if c == "delay_in_removing_from_device" {
			reason = ReasonDelayed
		}
	}
	return reason
}

// pollTroubleDetails shows a poll's errors and warnings the way Seam's own
// trouble events show theirs.
func pollTroubleDetails(d PollDetails) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"access_code_errors": nonNil(d.Errors), "access_code_warnings": nonNil(d.Warnings)})
	return b
}

// dedupe copies events, keeping one of each event_id. Redeliveries are
// identical, so which copy is kept does not matter for them; should two
// different bodies ever share an event_id, the one that sorts first by
// content is kept, so that the result does not depend on the input order.
func dedupe(events []Event) []Event {
	seen := make(map[string]int, len(events))
	out := make([]Event, 0, len(events))
	for _, e := range events {
		if i, ok := seen[e.EventID]; ok {
			if contentBefore(e, out[i]) {
				out[i] = e
			}
			continue
		}
		seen[e.EventID] = len(out)
		out = append(out, e)
	}
	return out
}

// contentBefore orders two events that share an event_id by their content.
func contentBefore(a, b Event) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.Before(b.OccurredAt)
	}
	for _, f := range [][2]string{
		{a.Type, b.Type}, {a.AccessCodeID, b.AccessCodeID}, {a.WorkspaceID, b.WorkspaceID},
		{a.DeviceID, b.DeviceID}, {a.ConnectedAccountID, b.ConnectedAccountID}, {a.MessageID, b.MessageID},
	} {
		if f[0] != f[1] {
			return f[0] < f[1]
		}
	}
	return bytes.Compare(a.Details, b.Details) < 0
}

// Flag is what a code's trouble looks like at a moment: the reason, and a key
// naming this particular trouble so that an acknowledgement covers it and
