package lifecycle

import (
	"encoding/json"
	"time"
)

// EvidenceEvent is one stored event that names a code, as the console's
// timeline shows it: its access_code.* history and the other events that
// name it (lock.unlocked, lock.access_denied...).
type EvidenceEvent struct {
	EventID   string
	EventType string
	// Source is where codewatch learned of the event: "webhook" (Seam's
	// webhook) or, with Seam's API, "poll".
	Source string
	// OccurredAt is when it happened (occurred_at, else created_at, else
	// when it arrived), ReceivedAt when codewatch stored it.
	OccurredAt time.Time
	ReceivedAt time.Time
	DeviceID   string
	// Details holds Seam's errors and warnings, when the event has any.
	Details json.RawMessage
	// Raw is the body exactly as received, opened. It holds the door code's
	// PIN: show it only through datakeys.MaskPINs.
	Raw []byte
	// RawUnavailable says why the body cannot be opened (its key is not
	// configured, or it does not authenticate); Raw is nil then.
	RawUnavailable string
}

// Evidence is a code's timeline: its newest events, oldest first, and how
// many it has in all.
type Evidence struct {
	Events []EvidenceEvent
	Total  int
}

// DeliveryFilter selects alert deliveries for the outbox view. Empty fields
// do not filter.
type DeliveryFilter struct {
	// Status is DeliveryPending, DeliverySent or DeliveryGivenUp.
	Status string
	Sink   string
	Limit  int
	// Before is the cursor of the next page (the last delivery shown):
	// deliveries of older alerts come next.
	Before *DeliveryCursor
}

// DeliveryCursor is a delivery's place in the outbox's newest-first order.
type DeliveryCursor struct {
	AlertID, Sink string
}

// RetryOutcome is what retrying one quarantined delivery did: Outcome is
// Stored or Duplicate when it became an event (and left quarantine), or
// Quarantined when it is still unusable, with the Reason this version gives.
type RetryOutcome struct {
	Outcome Outcome
	Reason  string
}
