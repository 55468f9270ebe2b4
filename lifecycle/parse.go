package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxIDLength bounds the ids codewatch indexes. Seam's are UUIDs; anything
// longer than this is not a Seam id and would not fit a btree index entry.
const MaxIDLength = 255

// Parsed is what codewatch reads out of a verified body. The raw body itself
// is stored beside it untouched.
type Parsed struct {
	EventID            string
	EventType          string
	WorkspaceID        string
	AccessCodeID       string
	DeviceID           string
	ConnectedAccountID string
	OccurredAt         *time.Time
	CreatedAt          *time.Time
	// Details holds the errors and warnings arrays, when the body has any.
	Details json.RawMessage
}

// Unusable says why a verified body cannot be processed; the body goes to
// quarantine with Reason.
type Unusable struct{ Reason string }

func (u *Unusable) Error() string { return "unusable event: " + u.Reason }

func unusable(format string, a ...any) *Unusable {
	return &Unusable{Reason: fmt.Sprintf(format, a...)}
}

// detailKeys are the arrays in which Seam explains trouble.
var detailKeys = []string{
	"access_code_errors", "access_code_warnings",
	"device_errors", "device_warnings",
	"connected_account_errors", "connected_account_warnings",
}

// Parse reads a Seam event body. It never fails on fields it does not know:
// Seam adds fields over time and they stay in the raw body. It returns
// *Unusable when the body is not a usable event.
func Parse(raw []byte) (Parsed, error) {
	var p Parsed
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return p, unusable("not_json: body is not a JSON object")
	}

	var err error
	if p.EventID, err = stringField(fields, "event_id", true); err != nil {
		return p, err
	}
	if p.EventType, err = stringField(fields, "event_type", true); err != nil {
		return p, err
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"workspace_id", &p.WorkspaceID},
		{"access_code_id", &p.AccessCodeID},
		{"device_id", &p.DeviceID},
		{"connected_account_id", &p.ConnectedAccountID},
	} {
		if *f.dst, err = stringField(fields, f.name, false); err != nil {
			return p, err
		}
	}
	if p.OccurredAt, err = timeField(fields, "occurred_at"); err != nil {
		return p, err
	}
	if p.CreatedAt, err = timeField(fields, "created_at"); err != nil {
		return p, err
	}
	if IsAccessCodeEvent(p.EventType) && p.AccessCodeID == "" {
		// It would be stored under no code and shown nowhere.
		return p, unusable("missing_access_code_id: an %s event must name its access code", truncate(p.EventType, 64))
	}
	if IsOwnEvent(p.EventType) {
		// codewatch's own events keep their content under "details".
		p.Details = ownDetails(fields["details"])
		return p, nil
	}
	p.Details = details(fields)
	if IsDeviceEvent(p.EventType) {
		// Why a lock went offline (hub_disconnected, ...).
		var code string
		if v, ok := fields["error_code"]; ok && json.Unmarshal(v, &code) == nil && code != "" &&
			len(code) <= MaxIDLength && utf8.ValidString(code) && !strings.ContainsRune(code, 0) {
			d := map[string]any{}
			_ = json.Unmarshal(p.Details, &d)
			d["error_code"] = code
			p.Details, _ = json.Marshal(d)
		}
	}
	return p, nil
}

// Admit decides whether a delivery may be stored as an event: Parse's
// checks, and no codewatch.* event type in a body codewatch did not make
// itself (OwnEvent). Every path that stores a body calls it (the webhook,
// the backfill from events/list, a quarantine retry, codewatch's own
// records), so a body passes the same checks whichever way it came. It
// returns *Unusable, the quarantine reason, when the body may not be stored.
func Admit(d Delivery) (Parsed, error) {
	p, err := Parse(d.Body)
	if err != nil {
		return p, err
	}
	if IsOwnEvent(p.EventType) && !d.own {
		return p, &Unusable{Reason: ReservedEventType}
	}
	return p, nil
}

// IsOwnEvent reports whether an event type is one of codewatch's own
// (codewatch.*), which only codewatch records: Seam never sends them, and a
// webhook that claims one is refused.
func IsOwnEvent(eventType string) bool { return strings.HasPrefix(eventType, codewatchPrefix) }

// ownDetails re-encodes the details object of codewatch's own event. They
// copy Seam's texts (an attempt's error, a polled code's errors), which may
// hold a NUL: it is replaced, never a reason to drop what the details say.
func ownDetails(v json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(v, &m) != nil || m == nil {
		return nil
	}
	clean, err := json.Marshal(cleanJSON(m))
	if err != nil {
		return nil
	}
	return clean
}

// stringField reads a string id. Absent and null are the same; required
// fields must be present and non-empty.
func stringField(fields map[string]json.RawMessage, name string, required bool) (string, error) {
	v, ok := fields[name]
	if !ok || string(v) == "null" {
		if required {
			return "", unusable("missing_%s", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", unusable("invalid_%s: must be a string", name)
	}
	switch {
	case s == "" && required:
		return "", unusable("missing_%s", name)
	case len(s) > MaxIDLength:
		return "", unusable("invalid_%s: longer than %d bytes", name, MaxIDLength)
	case strings.ContainsRune(s, 0) || !utf8.ValidString(s):
		// Postgres text cannot hold NUL.
		return "", unusable("invalid_%s: contains a NUL or invalid UTF-8", name)
	}
	return s, nil
}

// timeField reads an ISO 8601 timestamp. Absent or null is nil.
func timeField(fields map[string]json.RawMessage, name string) (*time.Time, error) {
	v, ok := fields[name]
	if !ok || string(v) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, unusable("invalid_%s: must be an ISO 8601 string", name)
	}
	t, err := time.Parse(time.RFC3339Nano, upperTZ(s))
	if err != nil {
		return nil, unusable("invalid_%s: %q is not an ISO 8601 time", name, truncate(s, 64))
	}
	t = t.UTC()
	if !ValidTime(t) {
		return nil, unusable("invalid_time: %s %q is outside the times codewatch can store and show (%s to %s)",
			name, truncate(s, 64), MinTime.Format(time.DateOnly), MaxTime.Format(time.DateOnly))
	}
	return &t, nil
}

// The times an event may carry. Every time codewatch stores it must be able
// to write back, in each place it shows it: encoding/json writes only years
// 0000 to 9999 (time.Time.MarshalJSON fails outside them, in whatever zone
// the time is in: pgx reads timestamptz in the process's local zone, up to
// 14 hours off UTC), Postgres keeps microseconds (a time it is sent as text
// is rounded, possibly into the next year), and codewatch computes times up
// to MaxReconcileInterval past an event. Go's zero time (0001-01-01
// 00:00:00 UTC) means "no time" throughout. A day's margin at each end
// keeps all of that in range; Seam's events are from this century.
var (
	// MinTime is the earliest time accepted.
	MinTime = time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)
	// MaxTime is the first time refused at the upper end.
	MaxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// ValidTime reports whether codewatch can store t and write it back (see
// MinTime): t rounded to microseconds, as Postgres keeps it, lies in
// [MinTime, MaxTime).
func ValidTime(t time.Time) bool {
	t = t.Round(time.Microsecond)
	return !t.Before(MinTime) && t.Before(MaxTime)
}

// upperTZ upper-cases the date-time separator and the UTC zone, which RFC
// 3339 allows in lower case ("2026-06-01t10:00:00z") and Go's parser does
// not.
func upperTZ(s string) string {
	if len(s) > 10 && s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	if n := len(s); n > 0 && s[n-1] == 'z' {
		s = s[:n-1] + "Z"
	}
	return s
}

// details keeps the errors and warnings arrays, if any, as one JSON object.
func details(fields map[string]json.RawMessage) json.RawMessage {
	out := make(map[string]json.RawMessage)
	for _, k := range detailKeys {
		v, ok := fields[k]
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] != '[' {
			continue
		}
		// Re-encode: Go replaces invalid UTF-8 and lone surrogates with
		// U+FFFD, which jsonb would refuse; cleanJSON replaces NULs, which
		// jsonb refuses too (the raw body keeps the original).
		var arr []any
		if json.Unmarshal(v, &arr) != nil {
			continue
		}
		clean, err := json.Marshal(cleanJSON(arr))
		if err != nil {
			continue
		}
		out[k] = clean
	}
	if len(out) == 0 {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}

// truncate cuts s for a quarantine reason, which Postgres must take.
func truncate(s string, n int) string {
	if len(s) <= n {
		return CleanText(s, n)
	}
	return CleanText(s, n) + "..."
}

// Kind is the stable part of a reason ("not_json", "missing_event_id", ...),
// fit for a metric label.
func (u *Unusable) Kind() string {
	kind, _, _ := strings.Cut(u.Reason, ":")
	return kind
}

// QuarantineMessageIDReused is the quarantine reason of a body signed under
// a message id that another, different body already has: Seam signed it, so
// it is kept, though it cannot be stored as that message.
const QuarantineMessageIDReused = "message_id_reused"
