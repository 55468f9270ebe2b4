package lifecycle

import (
	"bytes"
	"encoding/json"
	"sort"
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
func Fold(events []Event) State {
	evs := dedupe(events)
	Sort(evs)

	var (
		st        State
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
		attempts = map[string]Event{}
	)
	yes, no := true, false
	// The lock's evidence, judged once the code's deletion and lock are
	// known (after the loop).
	var lockEvents []*Event
	for i := range evs {
		e := &evs[i]
		at := e.OccurredAt
		st.LastEventAt = &at
		if !ownFamily(e) {
			lockEvents = append(lockEvents, e)
			continue
		}
		if e.AccessCodeID != "" {
			st.AccessCodeID = e.AccessCodeID
		}
		if e.WorkspaceID != "" {
			st.WorkspaceID = e.WorkspaceID
		}
		if e.DeviceID != "" {
			st.DeviceID = e.DeviceID
		}
		if e.ConnectedAccountID != "" {
			st.ConnectedAccountID = e.ConnectedAccountID
		}

		switch e.Type {
		case TypeCreated:
			created = true
			if st.CreatedAt == nil {
				st.CreatedAt = &at
			}
			// Created means "not on the lock yet", unless a set (with a
			// skewed clock) already said otherwise.
			if onDevice == nil {
				onDevice = &no
			}
		case TypeSetOnDevice:
			everSet = true
			onDevice = &yes
			st.SetOnDeviceAt = &at
			// A new programming starts a new episode: earlier confirmations
			// and removal trouble no longer describe the lock.
			confirmed = false
			trouble = nil
		case TypeRemovedFromDevice:
			onDevice = &no
			confirmed = true
			trouble = nil
			st.RemovedFromDeviceAt = &at
			lastConfirmedBy, lastConfirmation = sourceOf(e), eventConfirmation(e)
		case TypeDeletedExternally:
			onDevice = &no
			confirmed = true
			trouble = nil
			st.DeletedExternally = true
			st.RemovedFromDeviceAt = &at
			lastConfirmedBy, lastConfirmation = sourceOf(e), eventConfirmation(e)
			if !deleted {
				deleted = true
				st.DeletedAt = &at
				st.DeletionEventID = e.EventID
			}
		case TypeDeleted:
			if !deleted {
				deleted = true
				st.DeletedAt = &at
				st.DeletionEventID = e.EventID
			}
		case TypeDelayInRemoving, TypeFailedToRemove:
			// A report after a confirmed removal stays in the history only.
			if confirmed {
				continue
			}
			reason := ReasonDelayed
			if e.Type == TypeFailedToRemove {
				reason = ReasonFailed
			}
			trouble = &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: at, Details: e.Details}
		case TypeDeletionRequested:
			var d AttemptDetails
			_ = json.Unmarshal(e.Details, &d)
			// The newest request is the one that counts (a request again
			// after a failed attempt).
			requested = true
			st.DeletionRequest = &DeletionRequest{RequestedAt: at, RequestedBy: d.RequestedBy,
				ActionAttemptID: d.ActionAttemptID, Status: "pending"}
		case TypeActionAttempt:
			var d AttemptDetails
			if json.Unmarshal(e.Details, &d) == nil && d.ActionAttemptID != "" {
				attempts[d.ActionAttemptID] = *e
			}
		case TypeAccessCodePolled:
			if deleted || requested {
				st.Polls++
			}
			var d PollDetails
			_ = json.Unmarshal(e.Details, &d)
			st.Seam = &SeamView{PolledAt: at, Found: true, Status: d.Status, Errors: nonNil(d.Errors), Warnings: nonNil(d.Warnings),
				RequestID: d.RequestID}
			// What the lock's code looks like in Seam counts like Seam's
			// own reports, once the code is being deleted.
			if (deleted || requested) && !confirmed {
				if reason := PollReason(d); reason != "" {
					trouble = &Trouble{Reason: reason, EventID: e.EventID, OccurredAt: at, Details: pollTroubleDetails(d)}
				}
			}
		case TypeUnmanagedFound:
			lockEvents = append(lockEvents, e)
		case TypeLookupFailed:
			var d LookupError
			_ = json.Unmarshal(e.Details, &d)
			if (deleted || requested) && d.Type != LookupNotCovered {
				st.Polls++ // a failing API is asked again later, not sooner
			}
			d.At = at
			v := SeamView{PolledAt: at, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}
			if st.Seam != nil {
				v = *st.Seam
			}
			v.Error = &d
			st.Seam = &v
		case TypeAccessCodeGone:
			if deleted || requested {
				st.Polls++
			}
			var d PollDetails
			_ = json.Unmarshal(e.Details, &d)
			st.Seam = &SeamView{PolledAt: at, Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}, RequestID: d.RequestID}
			// A 404 after the deletion (or codewatch's request) confirms it.
			// After a request alone, Seam's deletion event has not come: the
			// 404 is the first evidence of the deletion too.
			if deleted || requested {
				if !deleted {
					deleted = true
					st.DeletedAt = &at
					st.DeletionEventID = e.EventID
				}
				onDevice = &no
				confirmed = true
				trouble = nil
				st.RemovedFromDeviceAt = &at
				lastConfirmedBy = SourcePoll
				lastConfirmation = &Confirmation{ConfirmedBy: SourcePoll, EventID: e.EventID, EventType: e.Type,
					At: at, SeamRequestID: d.RequestID}
			}
		}
	}
	var attemptTrouble *Trouble
	if r := st.DeletionRequest; r != nil {
		if e, ok := attempts[r.ActionAttemptID]; ok {
			var d AttemptDetails
			_ = json.Unmarshal(e.Details, &d)
			end := e.OccurredAt
			r.Status, r.Error, r.EndedAt = d.Status, d.Error, &end
			if d.Status == "error" {
				details, _ := json.Marshal(map[string]any{"action_attempt_id": d.ActionAttemptID, "action_attempt_error": d.Error})
				attemptTrouble = &Trouble{Reason: ReasonDeleteFailed, EventID: e.EventID, OccurredAt: end, Details: details}
			}
		}
	}

	st.OnDevice = onDevice
	switch {
	case !deleted && !requested:
		st.DeletionState = Active
	case confirmed:
		st.DeletionState = Removed
		st.OnDevice = &no
		st.ConfirmedBy = lastConfirmedBy
		st.Confirmation = lastConfirmation
	case trouble != nil && trouble.Reason == ReasonFailed:
		st.DeletionState = Failed
		st.Trouble = trouble
	case trouble != nil:
		st.DeletionState = Delayed
		st.Trouble = trouble
	case !deleted:
		// Requested, and Seam has not said it deleted the code yet.
		st.DeletionState = DeletionRequested
		st.Trouble = attemptTrouble
	case created && !everSet:
		st.DeletionState = DeletedNotProgrammed
		st.OnDevice = &no
	default:
		st.DeletionState = AwaitingRemoval
	}
	// Whatever Seam reported, the lock says the code is still there (or,
	// when a live code shares the PIN, may be: until someone checks, it
	// counts as there).
	if ev := lockEvidence(&st, lockEvents); ev != nil {
		st.LockEvidence = ev
		st.OnDevice = &yes
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
