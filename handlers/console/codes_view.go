package console

// What the code pages show of a code and its events.
//
// newCodeView is where a code's optional parts come from (severity, the
// lock's connectivity, Seam's API view, a deletion request): the templates
// show each part only when its view field is set.

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
)

// seamMessage is one of Seam's errors or warnings, its scope in words
// ("access code", "device", "connected account").
type seamMessage = lifecycle.SeamMessage

// seamMessages reads Seam's errors and warnings out of details
// (troubleshooting_details, or an event's details): errors first.
func seamMessages(details json.RawMessage) []seamMessage {
	out := lifecycle.SeamMessages(details)
	for i := range out {
		out[i].Scope = strings.ReplaceAll(out[i].Scope, "_", " ")
	}
	return out
}

// lockView is a code's lock.
type lockView struct {
	ID, URL string
	// Status is "online", "offline" or "" when not known (issue 12 fills
	// it from the code's lock_online).
	Status string
	// Name is the lock's name and location (issue 22), "" when unknown.
	Name string
}

// fact is one more labelled line on a code's page.
type fact struct {
	Label, Value string
}

// seamView is what Seam's API showed of the code when codewatch last
// polled it (issue 11).
type seamView struct {
	PolledAt  time.Time
	Found     bool
	Status    string
	Messages  []seamMessage
	RequestID string
	// Error is the newest lookup's, when it gave no evidence.
	Error *lifecycle.LookupError
}

// requestView is a deletion codewatch asked Seam for (issue 11).
type requestView struct {
	RequestedAt     time.Time
	RequestedBy     string
	ActionAttemptID string
	Status          string
	Error           string
	EndedAt         *time.Time
}

// codeView is a code as the console shows it.
type codeView struct {
	*lifecycle.AccessCode
	URL    string
	Reason string
	// Severity is issue 12's troubleshooting_severity ("critical",
	// "warning"); "" shows none.
	Severity string
	Lock     lockView
	// Messages are Seam's errors and warnings behind the trouble.
	Messages []seamMessage
	NextStep string
	// ConfirmedBy says what confirmed the removal (issue 11: "webhook" or
	// "poll"); "" shows none.
	ConfirmedBy string
	// Confirmation names the evidence that confirmed the removal ("" shows
	// none).
	Confirmation string
	// Seam and Request are issue 11's seam block and deletion request;
	// nil shows none.
	Seam    *seamView
	Request *requestView
	// Facts are more labelled lines for the code's page.
	Facts []fact
}

// newCodeView is the one place a code becomes what the pages show. Fields
// that later issues add to lifecycle.AccessCode are mapped here: severity
// and lock_online (issue 12) into Severity and Lock.Status, confirmed_by and
// the seam block and deletion request (issue 11) into ConfirmedBy, Seam
// and Request.
func newCodeView(c *lifecycle.AccessCode) codeView {
	v := codeView{AccessCode: c, URL: codeURL(c.AccessCodeID)}
	if c.TroubleshootingReason != nil {
		v.Reason = *c.TroubleshootingReason
	}
	lock := lifecycle.LockStatus{Online: c.LockOnline}
	if c.DeviceID != nil {
		v.Lock = lockView{ID: *c.DeviceID, URL: lockURL(*c.DeviceID), Name: lifecycle.LockLabel(c.DeviceName, c.LocationName)}
		if c.LockOnline != nil {
			v.Lock.Status = map[bool]string{true: "online", false: "offline"}[*c.LockOnline]
		}
	}
	if c.TroubleshootingSeverity != nil {
		v.Severity = *c.TroubleshootingSeverity
	}
	v.Messages = seamMessages(c.TroubleshootingDetails)
	if c.NeedsTroubleshooting {
		v.NextStep = lifecycle.TroubleNextStep(v.Reason, c.TroubleshootingDetails, lock)
	}
	if c.ConfirmedBy != nil {
		v.ConfirmedBy = *c.ConfirmedBy
	}
	if sv := c.Seam; sv != nil {
		d, _ := json.Marshal(map[string]any{"access_code_errors": sv.Errors, "access_code_warnings": sv.Warnings})
		v.Seam = &seamView{PolledAt: sv.PolledAt, Found: sv.Found, Status: sv.Status, Messages: seamMessages(d),
			RequestID: sv.RequestID, Error: sv.Error}
	}
	if cf := c.Confirmation; cf != nil {
		v.Confirmation = lifecycle.ConfirmationText(cf)
	}
	if r := c.DeletionRequest; r != nil {
		v.Request = &requestView{RequestedAt: r.RequestedAt, RequestedBy: r.RequestedBy, ActionAttemptID: r.ActionAttemptID,
			Status: r.Status, EndedAt: r.EndedAt}
		if r.Error != nil {
			v.Request.Error = r.Error.Message
		}
	}
	return v
}

// eventView is one event in a code's timeline.
type eventView struct {
	lifecycle.EvidenceEvent
	Label, Class string
	Messages     []seamMessage
	RawJSON      string
	RawNote      string
	// Lag is how long after it occurred codewatch received it (0 under a
	// second).
	Lag time.Duration
}

func newEventView(e lifecycle.EvidenceEvent) eventView {
	v := eventView{EvidenceEvent: e, Label: eventLabel(e.EventType), Class: eventClass(e.EventType),
		Messages: seamMessages(e.Details)}
	if lag := e.ReceivedAt.Sub(e.OccurredAt); lag >= time.Second {
		v.Lag = lag
	}
	if e.RawUnavailable != "" {
		v.RawNote = "The stored " + e.RawUnavailable + "."
	} else {
		v.RawJSON, v.RawNote = maskedJSON(e.Raw)
	}
	v.Raw = nil // only the masked copy reaches a template
	return v
}
