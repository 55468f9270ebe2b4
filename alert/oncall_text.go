package alert

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
)

// What the on-call sinks (PagerDuty, Opsgenie, Teams) say of an alert: one
// headline naming the code and its lock, and the facts behind it. Text
// from outside (Seam's messages, ids, an acknowledgement's note) is
// cleaned (lifecycle.CleanText) before it is sent.

// codeName and lockName name an alert's code and lock for people. The
// payload carries ids today; names, when it carries them, come first.
func codeName(a *lifecycle.AlertPayload) string { return "access code " + a.AccessCodeID }

func lockName(a *lifecycle.AlertPayload) string {
	if a.DeviceID == "" {
		return "an unknown lock"
	}
	return "lock " + a.DeviceID
}

// headline is the alert in one line: what, which code, which lock.
func headline(a *lifecycle.AlertPayload) string {
	reason := ""
	if a.TroubleshootingReason != nil {
		reason = *a.TroubleshootingReason
	}
	code, lock := codeName(a), lockName(a)
	var s string
	switch {
	case a.Type == lifecycle.AlertResolved && a.Resolution == "acknowledged":
		s = "Resolved: " + code + " on " + lock + " was checked by " + a.AcknowledgedBy
	case a.Type == lifecycle.AlertResolved:
		s = "Resolved: " + code + " on " + lock + " is " + string(a.DeletionState)
	case a.Severity == lifecycle.SeverityCritical:
		s = "CRITICAL: deleted " + code + " is still on " + lock
		if reason == lifecycle.ReasonUsedAfterDeletion {
			s += ": the door was opened with it after its deletion"
		}
		if live := lifecycle.LiveCodesWithSamePIN(a.TroubleshootingDetails); len(live) > 0 {
			s += " (live code " + strings.Join(live, ", ") + " on the lock has the same PIN)"
		}
	case reason == lifecycle.ReasonDeleteFailed:
		s = "Seam could not delete " + code + " on " + lock
	default:
		s = "Deleted " + code + " not confirmed off " + lock + ": " + reason
	}
	if a.Type == lifecycle.AlertReminder {
		s = "Still unresolved: " + s
	}
	return clean(s, 4096)
}

// clean is outside text made safe to send, at most n bytes.
func clean(s string, n int) string { return lifecycle.CleanText(s, n) }

// fact is one labelled value of an alert, for people.
type fact struct{ key, title, value string }

// facts are an alert's details: the keys PagerDuty's custom_details and
// Opsgenie's details use, the titles Teams shows.
func facts(a *lifecycle.AlertPayload) []fact {
	out := []fact{
		{"access_code_id", "Access code", a.AccessCodeID},
		{"device_id", "Lock", a.DeviceID},
		{"workspace_id", "Workspace", a.WorkspaceID},
		{"deletion_state", "State", string(a.DeletionState)},
	}
	add := func(key, title, v string) {
		if v != "" {
			out = append(out, fact{key, title, v})
		}
	}
	if a.TroubleshootingReason != nil {
		add("troubleshooting_reason", "Reason", *a.TroubleshootingReason)
	}
	add("severity", "Severity", a.Severity)
	add("seam_says", "Seam says", strings.Join(SeamMessages(a.TroubleshootingDetails), "; "))
	if a.DeletedAt != nil {
		add("deleted_at", "Deleted", a.DeletedAt.UTC().Format(time.RFC3339)+" ("+humanAge(a.AgeSeconds)+" ago)")
	}
	if a.LockOnline != nil {
		add("lock_online", "Lock online", strconv.FormatBool(*a.LockOnline))
	}
	if a.Type == lifecycle.AlertResolved {
		add("resolution", "Resolution", a.Resolution)
		add("acknowledged_by", "Acknowledged by", a.AcknowledgedBy)
		add("note", "Note", a.Note)
		if a.Confirmation != nil {
			add("confirmed_by", "Confirmed by", lifecycle.ConfirmationText(a.Confirmation))
		}
	} else {
		add("next_step", "Next step", a.NextStep)
	}
	add("trouble_id", "Trouble", a.TroubleID)
	add("alert_id", "Alert", a.AlertID)
	for i := range out {
		out[i].value = clean(out[i].value, 2048)
	}
	return out
}

// detailsJSON is an alert's facts as an object, with the trouble's details
// as codewatch stores them (Seam's errors and warnings, every PIN masked at
// ingest).
func detailsJSON(a *lifecycle.AlertPayload) map[string]any {
	out := map[string]any{}
	for _, f := range facts(a) {
		out[f.key] = f.value
	}
	if len(a.TroubleshootingDetails) > 0 && json.Valid(a.TroubleshootingDetails) {
		out["troubleshooting_details"] = a.TroubleshootingDetails
	}
	return out
}

// codeURL is the code's console page under public (CODEWATCH_PUBLIC_URL),
// or "" without one.
func codeURL(public, accessCodeID string) string {
	if public == "" {
		return ""
	}
	return strings.TrimRight(public, "/") + "/console/codes/" + url.PathEscape(accessCodeID)
}
