package lifecycle

import (
	"encoding/json"
	"time"
)

// CodeRef names a code and the ids codewatch knows it by, for the events it
// records of its own.
type CodeRef struct {
	AccessCodeID       string
	WorkspaceID        string
	DeviceID           string
	ConnectedAccountID string
}

// OwnEvent is the delivery of one of codewatch's own events: its body is
// shaped like Seam's events (Parse reads it, replay folds it), with the
// content under "details", and its message id is derived from the event id
// so that recording it again is a duplicate.
func OwnEvent(eventID, eventType string, at time.Time, code CodeRef, details any) Delivery {
	body := map[string]any{
		"event_id":       eventID,
		"event_type":     eventType,
		"occurred_at":    at.UTC().Format(time.RFC3339Nano),
		"created_at":     at.UTC().Format(time.RFC3339Nano),
		"access_code_id": code.AccessCodeID,
		"source":         SourcePoll,
		"details":        details,
	}
	for k, v := range map[string]string{"workspace_id": code.WorkspaceID, "device_id": code.DeviceID,
		"connected_account_id": code.ConnectedAccountID} {
		if v != "" {
			body[k] = v
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		// details are codewatch's own types: they always marshal.
		panic("lifecycle: own event: " + err.Error())
	}
	return Delivery{MessageID: "codewatch:" + eventID, Body: b, Source: SourcePoll, own: true}
}

// CodeRefOf is the ids of a stored code.
func CodeRefOf(c *AccessCode) CodeRef {
	d := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	return CodeRef{AccessCodeID: c.AccessCodeID, WorkspaceID: d(c.WorkspaceID), DeviceID: d(c.DeviceID),
		ConnectedAccountID: d(c.ConnectedAccountID)}
}
