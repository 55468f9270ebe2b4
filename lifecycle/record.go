package lifecycle

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// RecordFormat names the shape of a DeletionRecord, so that a reader knows
// what it holds.
const RecordFormat = "codewatch.deletion_record.v1"

// DeletionRecord is what codewatch can show of one code's deletion, for a
// guest, an owner, an insurer or an auditor: who asked, what Seam and the
// lock said and when, what codewatch looked up, who acknowledged what. It
// is the "proof" that GET /v1/access_codes/{id}/proof signs (package proof)
// and the console's printable "Deletion record". It holds the PIN's hint at
// most, never the PIN, and no non-integer number.
type DeletionRecord struct {
	Format         string  `json:"format"`
	AccessCodeID   string  `json:"access_code_id"`
	AccessCodeName *string `json:"access_code_name"`
	DeviceID       *string `json:"device_id"`
	DeviceName     *string `json:"device_name"`
	LocationName   *string `json:"location_name"`
	TimeZone       *string `json:"time_zone"`
	WorkspaceID    *string `json:"workspace_id"`
	// PinHint is "••" and the PIN's last two digits, when an event carried
	// the PIN.
	PinHint *string `json:"pin_hint"`
	// The verdict: the code's state, and what confirmed its removal (the
	// Seam event or lookup, as Confirmation), when.
	DeletionState DeletionState `json:"deletion_state"`
	ConfirmedBy   *string       `json:"confirmed_by"`
	ConfirmedAt   *time.Time    `json:"confirmed_at"`
	Confirmation  *Confirmation `json:"confirmation"`
	DeletedAt     *time.Time    `json:"deleted_at"`
	// RemovedFromDeviceAt is when the lock's removal was reported.
	RemovedFromDeviceAt   *time.Time `json:"removed_from_device_at"`
	NeedsTroubleshooting  bool       `json:"needs_troubleshooting"`
	TroubleshootingReason *string    `json:"troubleshooting_reason"`
	// DeletionRequest is codewatch's own request (who, when, Seam's action
	// attempt and how it ended); null when Seam's deletion came otherwise.
	DeletionRequest *DeletionRequest `json:"deletion_request"`
	// Events are the code's lifecycle events, oldest first.
	Events []RecordEvent `json:"events"`
	// Lookups are codewatch's lookups of the code in Seam's API.
	Lookups []RecordLookup `json:"lookups"`
	// LockEvidence is what the lock reported about the code after its
	// deletion: unlocks and refusals naming it or carrying its PIN, and its
	// PIN among the lock's unmanaged codes.
	LockEvidence     []RecordEvent           `json:"lock_evidence"`
	Acknowledgements []RecordAcknowledgement `json:"acknowledgements"`
	GeneratedAt      time.Time               `json:"generated_at"`
}

// RecordEvent is one event of a record.
type RecordEvent struct {
	EventID string `json:"event_id"`
	// SvixID is the webhook's svix-id (Seam's message id); null for what
	// codewatch read from Seam's API or recorded itself.
	SvixID     *string   `json:"svix_id"`
	EventType  string    `json:"event_type"`
	OccurredAt time.Time `json:"occurred_at"`
	ReceivedAt time.Time `json:"received_at"`
	// Source is "webhook" or "poll" (EventRef.Source).
	Source string `json:"source"`
	// MatchedByPIN marks a lock's report that named no code but carried
	// this code's PIN on its lock (lock evidence only).
	MatchedByPIN bool            `json:"matched_by_pin,omitempty"`
	PinHint      *string         `json:"pin_hint,omitempty"`
	Details      json.RawMessage `json:"details,omitempty"`
}

// RecordLookup is one lookup of the code in Seam's API (access_codes/get).
type RecordLookup struct {
	EventID string `json:"event_id"`
	// SeamRequestID is the answer's seam-request-id header.
	SeamRequestID *string   `json:"seam_request_id"`
	At            time.Time `json:"at"`
	// Answer is "found" (the live code), "not_found" (Seam's own
	// access_code_not_found) or "failed" (no word from Seam about it).
	Answer  string          `json:"answer"`
	Details json.RawMessage `json:"details"`
}

// RecordAcknowledgement is a person's acknowledgement of the code's trouble.
type RecordAcknowledgement struct {
	AcknowledgedBy        string    `json:"acknowledged_by"`
	AcknowledgedAt        time.Time `json:"acknowledged_at"`
	Note                  *string   `json:"note"`
	TroubleID             *string   `json:"trouble_id"`
	TroubleshootingReason *string   `json:"troubleshooting_reason"`
}

// StoredEvent is an event as the store reads it for a record: the history
// entry with its message id, or a lock's report matched by PIN.
type StoredEvent struct {
	EventRef
	// MessageID is the events row's message_id: the svix-id of a webhook.
	MessageID    string
	MatchedByPIN bool
}

// Lookup answers.
const (
	AnswerFound    = "found"
	AnswerNotFound = "not_found"
	AnswerFailed   = "failed"
)

// BuildDeletionRecord assembles a code's record from the code (with its
// names), its stored events (history and PIN-matched reports) and its
// acknowledgements.
func BuildDeletionRecord(code *AccessCode, events []StoredEvent, acks []RecordAcknowledgement, now time.Time) *DeletionRecord {
	r := &DeletionRecord{
		Format: RecordFormat, AccessCodeID: code.AccessCodeID, AccessCodeName: code.AccessCodeName,
		DeviceID: code.DeviceID, DeviceName: code.DeviceName, LocationName: code.LocationName, TimeZone: code.TimeZone,
		WorkspaceID: code.WorkspaceID, PinHint: code.PinHint, DeletionState: code.DeletionState,
		ConfirmedBy: code.ConfirmedBy, Confirmation: code.Confirmation, DeletedAt: utcPtr(code.DeletedAt),
		RemovedFromDeviceAt:  utcPtr(code.RemovedFromDeviceAt),
		NeedsTroubleshooting: code.NeedsTroubleshooting, TroubleshootingReason: code.TroubleshootingReason,
		DeletionRequest: code.DeletionRequest, Events: []RecordEvent{}, Lookups: []RecordLookup{},
		LockEvidence: []RecordEvent{}, Acknowledgements: acks, GeneratedAt: now.UTC(),
	}
	if r.Acknowledgements == nil {
		r.Acknowledgements = []RecordAcknowledgement{}
	}
	if code.Confirmation != nil {
		r.ConfirmedAt = utcPtr(&code.Confirmation.At)
	} else if code.DeletionState == Removed {
		r.ConfirmedAt = utcPtr(code.RemovedFromDeviceAt)
	}
	// After the deletion: from Seam's deletion, or codewatch's request when
	// it came first.
	var since *time.Time
	if code.DeletionRequest != nil {
		since = &code.DeletionRequest.RequestedAt
	}
	if code.DeletedAt != nil && (since == nil || code.DeletedAt.Before(*since)) {
		since = code.DeletedAt
	}
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b StoredEvent) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	for _, e := range events {
		re := recordEvent(e)
		switch {
		case isLockEvidence(e):
			if since != nil && !e.OccurredAt.Before(*since) {
				re.MatchedByPIN, re.PinHint, re.Details = e.MatchedByPIN, e.PinHint, e.Details
				r.LockEvidence = append(r.LockEvidence, re)
			}
			continue
		case e.EventType == TypeAccessCodePolled || e.EventType == TypeAccessCodeGone || e.EventType == TypeLookupFailed:
			r.Lookups = append(r.Lookups, recordLookup(e))
		}
		r.Events = append(r.Events, re)
	}
	return r
}

// isLockEvidence reports a lock's own report about the code (as opposed to
// its lifecycle events).
func isLockEvidence(e StoredEvent) bool {
	return e.MatchedByPIN || e.EventType == TypeLockUnlocked || e.EventType == TypeLockAccessDenied ||
		e.EventType == TypeUnmanagedFound || strings.HasPrefix(e.EventType, unmanagedPrefix)
}

func recordEvent(e StoredEvent) RecordEvent {
	re := RecordEvent{EventID: e.EventID, EventType: e.EventType, OccurredAt: e.OccurredAt.UTC(),
		ReceivedAt: e.ReceivedAt.UTC(), Source: e.Source}
	if e.Source == SourceWebhook && e.MessageID != "" && !strings.HasPrefix(e.MessageID, "codewatch:") &&
		!strings.HasPrefix(e.MessageID, BackfillMessagePrefix) {
		id := e.MessageID
		re.SvixID = &id
	}
	return re
}

func recordLookup(e StoredEvent) RecordLookup {
	l := RecordLookup{EventID: e.EventID, At: e.OccurredAt.UTC(), Details: e.Details}
	switch e.EventType {
	case TypeAccessCodePolled:
		l.Answer = AnswerFound
	case TypeAccessCodeGone:
		l.Answer = AnswerNotFound
	default:
		l.Answer = AnswerFailed
	}
	var d struct {
		RequestID string `json:"request_id"`
	}
	if len(e.Details) > 0 && json.Unmarshal(e.Details, &d) == nil && d.RequestID != "" {
		l.SeamRequestID = &d.RequestID
	}
	if l.Details == nil {
		l.Details = json.RawMessage(`{}`)
	}
	return l
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
