package handlers

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/codewatch/codewatch/lifecycle"
)

// The ops API's lists and a lock's page carry hundreds of codes; encoding
// them with encoding/json's reflection, and its re-validation of every time
// and raw JSON value it is given, took a third of the service's CPU for such
// a page. appendCodeJSON writes the same bytes directly: TestAppendJSONIsEncodingJSON
// holds it to encoding/json's output (with HTML escaping, as json.Encoder
// does by default) for every field, so a field added to lifecycle.AccessCode
// or lifecycle.Device and not here fails that test. (It lives here, beside
// the API it serves, not in the domain: lifecycle says what a code is, not
// how the API spells it.)

// appendCodeJSON appends c as encoding/json marshals it.
func appendCodeJSON(b []byte, c *lifecycle.AccessCode) []byte {
	b = append(b, `{"access_code_id":`...)
	b = appendString(b, c.AccessCodeID)
	b = append(b, `,"workspace_id":`...)
	b = appendStringPtr(b, c.WorkspaceID)
	b = append(b, `,"device_id":`...)
	b = appendStringPtr(b, c.DeviceID)
	b = append(b, `,"connected_account_id":`...)
	b = appendStringPtr(b, c.ConnectedAccountID)
	b = append(b, `,"deletion_state":`...)
	b = appendString(b, string(c.DeletionState))
	b = append(b, `,"on_device":`...)
	b = appendBoolPtr(b, c.OnDevice)
	b = append(b, `,"needs_troubleshooting":`...)
	b = strconv.AppendBool(b, c.NeedsTroubleshooting)
	b = append(b, `,"troubleshooting_reason":`...)
	b = appendStringPtr(b, c.TroubleshootingReason)
	b = append(b, `,"troubleshooting_details":`...)
	b = appendRaw(b, c.TroubleshootingDetails)
	b = append(b, `,"created_at":`...)
	b = appendTimePtr(b, c.CreatedAt)
	b = append(b, `,"set_on_device_at":`...)
	b = appendTimePtr(b, c.SetOnDeviceAt)
	b = append(b, `,"deleted_at":`...)
	b = appendTimePtr(b, c.DeletedAt)
	b = append(b, `,"removed_from_device_at":`...)
	b = appendTimePtr(b, c.RemovedFromDeviceAt)
	b = append(b, `,"last_event_at":`...)
	b = appendTimePtr(b, c.LastEventAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, c.UpdatedAt)
	b = append(b, `,"acknowledged_at":`...)
	b = appendTimePtr(b, c.AcknowledgedAt)
	b = append(b, `,"acknowledged_by":`...)
	b = appendStringPtr(b, c.AcknowledgedBy)
	b = append(b, `,"acknowledgement_note":`...)
	b = appendStringPtr(b, c.AcknowledgementNote)
	b = append(b, `,"confirmed_by":`...)
	b = appendStringPtr(b, c.ConfirmedBy)
	b = append(b, `,"confirmation":`...)
	b = appendValuePtr(b, c.Confirmation)
	b = append(b, `,"deletion_request":`...)
	b = appendValuePtr(b, c.DeletionRequest)
	b = append(b, `,"seam":`...)
	b = appendValuePtr(b, c.Seam)
	b = append(b, `,"next_reconcile_at":`...)
	b = appendTimePtr(b, c.NextReconcileAt)
	b = append(b, `,"troubleshooting_severity":`...)
	b = appendStringPtr(b, c.TroubleshootingSeverity)
	b = append(b, `,"trouble_id":`...)
	b = appendStringPtr(b, c.TroubleID)
	b = append(b, `,"lock_online":`...)
	b = appendBoolPtr(b, c.LockOnline)
	b = append(b, `,"access_code_name":`...)
	b = appendStringPtr(b, c.AccessCodeName)
	b = append(b, `,"device_name":`...)
	b = appendStringPtr(b, c.DeviceName)
	b = append(b, `,"location_name":`...)
	b = appendStringPtr(b, c.LocationName)
	b = append(b, `,"time_zone":`...)
	b = appendStringPtr(b, c.TimeZone)
	if c.PinHint != nil {
		b = append(b, `,"pin_hint":`...)
		b = appendString(b, *c.PinHint)
	}
	if len(c.Events) > 0 {
		b = append(b, `,"events":`...)
		b = appendValue(b, c.Events)
	}
	return append(b, '}')
}

// appendCodesJSON appends codes as a JSON array, as encoding/json marshals
// a slice of them (null for nil).
func appendCodesJSON(b []byte, codes []lifecycle.AccessCode) []byte {
	if codes == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range codes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCodeJSON(b, &codes[i])
	}
	return append(b, ']')
}

// appendDeviceJSON appends d as encoding/json marshals it.
func appendDeviceJSON(b []byte, d *lifecycle.Device) []byte {
	b = append(b, `{"device_id":`...)
	b = appendString(b, d.DeviceID)
	b = append(b, `,"workspace_id":`...)
	b = appendStringPtr(b, d.WorkspaceID)
	b = append(b, `,"online":`...)
	b = appendBoolPtr(b, d.Online)
	b = append(b, `,"online_changed_at":`...)
	b = appendTimePtr(b, d.OnlineChangedAt)
	b = append(b, `,"connectivity_error_code":`...)
	b = appendStringPtr(b, d.ConnectivityErrorCode)
	b = append(b, `,"connection_flaky":`...)
	b = strconv.AppendBool(b, d.ConnectionFlaky)
	b = append(b, `,"last_event_at":`...)
	b = appendTimePtr(b, d.LastEventAt)
	b = append(b, `,"codes_awaiting_removal":`...)
	b = strconv.AppendInt(b, d.CodesAwaitingRemoval, 10)
	b = append(b, `,"codes_needing_troubleshooting":`...)
	b = strconv.AppendInt(b, d.CodesNeedingTroubleshooting, 10)
	b = append(b, `,"device_name":`...)
	b = appendStringPtr(b, d.DeviceName)
	b = append(b, `,"location_name":`...)
	b = appendStringPtr(b, d.LocationName)
	b = append(b, `,"time_zone":`...)
	b = appendStringPtr(b, d.TimeZone)
	if len(d.AccessCodes) > 0 {
		b = append(b, `,"access_codes":`...)
		b = appendCodesJSON(b, d.AccessCodes)
	}
	if d.AccessCodesNextCursor != nil {
		b = append(b, `,"access_codes_next_cursor":`...)
		b = appendString(b, *d.AccessCodesNextCursor)
	}
	return append(b, '}')
}

// appendString appends s quoted as encoding/json does with HTML escaping:
// ids and states, plain ASCII, directly; anything else through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			return appendValue(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStringPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

func appendBoolPtr(b []byte, v *bool) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendBool(b, *v)
}

// appendTime is time.Time's MarshalJSON (RFC 3339 with nanoseconds); a
// time it cannot marshal (a year outside 0-9999) goes through
// encoding/json, which fails the same way.
func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return appendValue(b, t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendTimePtr(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendTime(b, *t)
}

// appendRaw appends raw JSON compacted and HTML-escaped, as encoding/json
// writes a json.RawMessage (jsonb comes back from Postgres spaced out); nil
// is null. The raw JSON here is jsonb's or encoding/json's, so valid: it is
// not validated again (what is not an object or an array goes through
// encoding/json, which fails on invalid JSON as before).
func appendRaw(b []byte, raw json.RawMessage) []byte {
	if raw == nil {
		return append(b, "null"...)
	}
	if t := bytes.TrimSpace(raw); len(t) < 2 || !(t[0] == '{' && t[len(t)-1] == '}' || t[0] == '[' && t[len(t)-1] == ']') {
		return appendValue(b, raw)
	}
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			case c == '<' || c == '>' || c == '&':
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
				continue
			case c == 0xe2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xa8:
				// U+2028, U+2029
				b = append(b, `\u202`...)
				b = append(b, hexDigits[raw[i+2]&0xf])
				i += 2
				continue
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		b = append(b, c)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendValuePtr appends *v through encoding/json (appendValue), or null.
func appendValuePtr[T any](b []byte, v *T) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return appendValue(b, v)
}

// appendValue appends v through encoding/json: the rare or nested values.
// A value encoding/json cannot marshal (which the types here never hold)
// is null.
func appendValue(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}
