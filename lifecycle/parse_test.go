package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Table tests of Parse, one per field rule in parse.go. Helpers carry a parse
// prefix so they do not clash with other test files of this package.

// parseExamplesDir is where the Seam reference examples live on a
// development machine; parseSeamExamples below is a verbatim copy so that
// the tests run anywhere (TestParseExamplesMatchReference keeps them equal).
const parseExamplesDir = "/work/shared/seam/examples"

// parseSeamExamples holds /work/shared/seam/examples/*.json, verbatim.
var parseSeamExamples = map[string]string{
	"access_code.created.json": `{
  "event_id": "fc1adf7d-212d-430f-9b54-d3f95db99a1a",
  "event_type": "access_code.created",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"
}`,
	"access_code.delay_in_removing_from_device.json": `{
  "event_id": "0bd03f4a-9f86-4870-bd7a-19bb74d15268",
  "event_type": "access_code.delay_in_removing_from_device",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a",
  "connected_account_errors": [],
  "connected_account_warnings": [],
  "device_errors": [],
  "device_warnings": [],
  "access_code_errors": [],
  "access_code_warnings": [
    {
      "created_at": "2026-11-23T13:27:53.000Z",
      "message": "Delay in removing code from device.",
      "warning_code": "delay_in_removing_from_device"
    }
  ]
}`,
	"access_code.delay_in_setting_on_device.json": `{
  "event_id": "e60a567c-88ca-4c31-a88a-29ee22890e70",
  "event_type": "access_code.delay_in_setting_on_device",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a",
  "connected_account_errors": [],
  "connected_account_warnings": [],
  "device_errors": [],
  "device_warnings": [],
  "access_code_errors": [],
  "access_code_warnings": [
    {
      "created_at": "2026-11-23T13:27:53.000Z",
      "message": "Delay in setting code on device.",
      "warning_code": "delay_in_setting_on_device"
    }
  ]
}`,
	"access_code.deleted.json": `{
  "event_id": "efad72a4-5913-482c-aff4-8a612e855239",
  "event_type": "access_code.deleted",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a",
  "code": "4821"
}`,
	"access_code.deleted_external_to_seam.json": `{
  "event_id": "e72b760a-2e95-4a0a-8c7a-398040a64e6a",
  "event_type": "access_code.deleted_external_to_seam",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"
}`,
	"access_code.failed_to_remove_from_device.json": `{
  "event_id": "6ffb99eb-7a06-4f57-b72f-7cb6e591d2b0",
  "event_type": "access_code.failed_to_remove_from_device",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a",
  "connected_account_errors": [],
  "connected_account_warnings": [],
  "device_errors": [
    {
      "created_at": "2026-11-23T13:27:53.000Z",
      "message": "Device is offline",
      "error_code": "device_offline"
    }
  ],
  "device_warnings": [],
  "access_code_errors": [
    {
      "created_at": "2026-11-23T13:27:53.000Z",
      "message": "Failed to remove code from device.",
      "error_code": "failed_to_remove_from_device"
    }
  ],
  "access_code_warnings": []
}`,
	"access_code.removed_from_device.json": `{
  "event_id": "651c3e37-73e9-4e66-9ada-cc2c850965b8",
  "event_type": "access_code.removed_from_device",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"
}`,
	"access_code.set_on_device.json": `{
  "event_id": "b0803ca9-28e3-4d67-bebd-60dacdaddb9a",
  "event_type": "access_code.set_on_device",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a",
  "code": "4821"
}`,
	"lock.locked.json": `{
  "event_id": "3b458692-e53e-4db1-841f-fb1b6554f8a3",
  "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
  "created_at": "2026-06-01T10:00:00.000Z",
  "occurred_at": "2026-06-01T10:00:00.000Z",
  "event_type": "lock.locked",
  "device_id": "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",
  "connected_account_id": "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a",
  "method": "keycode",
  "access_code_id": "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e",
  "code": "4821",
  "access_code_is_managed": true
}`,
}

// parseBody builds a JSON object from extra fields on top of a valid event.
// A nil value removes the field; json.RawMessage values go in as they are.
func parseBody(t testing.TB, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"event_id":             "11111111-2222-4333-8444-555555555555",
		"event_type":           TypeDeleted,
		"workspace_id":         foldWorkspace,
		"access_code_id":       foldCodeID,
		"device_id":            foldDevice,
		"connected_account_id": foldAccount,
		"occurred_at":          "2026-06-01T10:00:00.000Z",
		"created_at":           "2026-06-01T10:00:01.000Z",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseKind returns the Kind of Parse's error, "" on success, and fails the
// test when the error is not an *Unusable or its reason is unfit to store.
func parseKind(t *testing.T, raw []byte) (Parsed, string) {
	t.Helper()
	p, err := Parse(raw)
	if err == nil {
		return p, ""
	}
	var u *Unusable
	if !errors.As(err, &u) {
		t.Fatalf("error %T %v is not *Unusable", err, err)
	}
	if err.Error() != "unusable event: "+u.Reason {
		t.Fatalf("Error() %q", err.Error())
	}
	if !utf8.ValidString(u.Reason) || strings.ContainsRune(u.Reason, 0) {
		t.Fatalf("reason %q is not storable text", u.Reason)
	}
	k := u.Kind()
	if k == "" || strings.ContainsAny(k, ": \t\n") || !strings.HasPrefix(u.Reason, k) {
		t.Fatalf("Kind %q of reason %q", k, u.Reason)
	}
	return p, k
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("a", MaxIDLength+1)
	tests := []struct {
		name string
		raw  []byte
		kind string
	}{
		{"empty body", nil, "not_json"},
		{"whitespace", []byte(" \n"), "not_json"},
		{"not JSON", []byte("event_id=1"), "not_json"},
		{"truncated JSON", []byte(`{"event_id":"a","event_type":`), "not_json"},
		{"trailing garbage", []byte(`{"event_id":"a","event_type":"b"} x`), "not_json"},
		{"two objects", []byte(`{"event_id":"a","event_type":"b"}{}`), "not_json"},
		{"byte order mark", append([]byte("\xef\xbb\xbf"), parseBody(t, nil)...), "not_json"},
		{"array", []byte(`[{"event_id":"a","event_type":"b"}]`), "not_json"},
		{"empty array", []byte(`[]`), "not_json"},
		{"string", []byte(`"access_code.deleted"`), "not_json"},
		{"null", []byte(`null`), "not_json"},
		{"number", []byte(`42`), "not_json"},
		{"boolean", []byte(`true`), "not_json"},
		{"empty object", []byte(`{}`), "missing_event_id"},
		// An access-code event naming no code would be stored under none
		// and shown nowhere.
		{"access_code event without access_code_id", parseBody(t, map[string]any{"access_code_id": nil}), "missing_access_code_id"},
		{"access_code event with empty access_code_id", parseBody(t, map[string]any{"access_code_id": ""}), "missing_access_code_id"},
		{"missing event_id", parseBody(t, map[string]any{"event_id": nil}), "missing_event_id"},
		{"empty event_id", parseBody(t, map[string]any{"event_id": ""}), "missing_event_id"},
		{"null event_id", parseBody(t, map[string]any{"event_id": json.RawMessage(`null`)}), "missing_event_id"},
		{"missing event_type", parseBody(t, map[string]any{"event_type": nil}), "missing_event_type"},
		{"empty event_type", parseBody(t, map[string]any{"event_type": ""}), "missing_event_type"},
		{"null event_type", parseBody(t, map[string]any{"event_type": json.RawMessage(`null`)}), "missing_event_type"},
		{"both missing: event_id first", []byte(`{"x":1}`), "missing_event_id"},
		{"number event_id", parseBody(t, map[string]any{"event_id": 123}), "invalid_event_id"},
		{"object event_id", parseBody(t, map[string]any{"event_id": map[string]int{"a": 1}}), "invalid_event_id"},
		{"array event_id", parseBody(t, map[string]any{"event_id": []string{"a"}}), "invalid_event_id"},
		{"boolean event_id", parseBody(t, map[string]any{"event_id": false}), "invalid_event_id"},
		{"number event_type", parseBody(t, map[string]any{"event_type": 7}), "invalid_event_type"},
		{"number workspace_id", parseBody(t, map[string]any{"workspace_id": 1}), "invalid_workspace_id"},
		{"number access_code_id", parseBody(t, map[string]any{"access_code_id": 12.5}), "invalid_access_code_id"},
		{"array device_id", parseBody(t, map[string]any{"device_id": []int{1}}), "invalid_device_id"},
		{"object connected_account_id", parseBody(t, map[string]any{"connected_account_id": map[string]any{}}), "invalid_connected_account_id"},
		{"long event_id", parseBody(t, map[string]any{"event_id": long}), "invalid_event_id"},
		{"long event_type", parseBody(t, map[string]any{"event_type": long}), "invalid_event_type"},
		{"long workspace_id", parseBody(t, map[string]any{"workspace_id": long}), "invalid_workspace_id"},
		{"long access_code_id", parseBody(t, map[string]any{"access_code_id": long}), "invalid_access_code_id"},
		{"long device_id", parseBody(t, map[string]any{"device_id": long}), "invalid_device_id"},
		{"long connected_account_id", parseBody(t, map[string]any{"connected_account_id": long}), "invalid_connected_account_id"},
		{"long in bytes, short in runes", parseBody(t, map[string]any{"access_code_id": strings.Repeat("€", 86)}), "invalid_access_code_id"},
		{"NUL in event_id", parseBody(t, map[string]any{"event_id": "a\x00b"}), "invalid_event_id"},
		{"NUL in event_type", parseBody(t, map[string]any{"event_type": "access_code.deleted\x00"}), "invalid_event_type"},
		{"NUL in workspace_id", parseBody(t, map[string]any{"workspace_id": "\x00"}), "invalid_workspace_id"},
		{"NUL in access_code_id", parseBody(t, map[string]any{"access_code_id": "x\x00"}), "invalid_access_code_id"},
		{"NUL in device_id", parseBody(t, map[string]any{"device_id": "x\x00y"}), "invalid_device_id"},
		{"NUL in connected_account_id", parseBody(t, map[string]any{"connected_account_id": "\x00x"}), "invalid_connected_account_id"},
		{"occurred_at in words", parseBody(t, map[string]any{"occurred_at": "yesterday"}), "invalid_occurred_at"},
		{"occurred_at a date only", parseBody(t, map[string]any{"occurred_at": "2026-06-01"}), "invalid_occurred_at"},
		{"occurred_at without zone", parseBody(t, map[string]any{"occurred_at": "2026-06-01T10:00:00"}), "invalid_occurred_at"},
		{"occurred_at with a space", parseBody(t, map[string]any{"occurred_at": "2026-06-01 10:00:00Z"}), "invalid_occurred_at"},
		{"occurred_at basic format", parseBody(t, map[string]any{"occurred_at": "20260601T100000Z"}), "invalid_occurred_at"},
		{"occurred_at hour 24", parseBody(t, map[string]any{"occurred_at": "2026-06-01T24:00:00Z"}), "invalid_occurred_at"},
		{"occurred_at February 30", parseBody(t, map[string]any{"occurred_at": "2026-02-30T10:00:00Z"}), "invalid_occurred_at"},
		{"occurred_at year 10000", parseBody(t, map[string]any{"occurred_at": "10000-01-01T00:00:00Z"}), "invalid_occurred_at"},
		{"occurred_at empty", parseBody(t, map[string]any{"occurred_at": ""}), "invalid_occurred_at"},
		{"occurred_at unix seconds", parseBody(t, map[string]any{"occurred_at": 1780308000}), "invalid_occurred_at"},
		{"occurred_at unix seconds string", parseBody(t, map[string]any{"occurred_at": "1780308000"}), "invalid_occurred_at"},
		{"occurred_at object", parseBody(t, map[string]any{"occurred_at": map[string]any{}}), "invalid_occurred_at"},
		{"occurred_at with NUL", parseBody(t, map[string]any{"occurred_at": "2026-06-01T10:00:00Z\x00"}), "invalid_occurred_at"},
		{"occurred_at long garbage", parseBody(t, map[string]any{"occurred_at": strings.Repeat("\xff€x", 500)}), "invalid_occurred_at"},
		// Issue 19: times codewatch could not write back (MinTime).
		{"occurred_at rounds to MaxTime", parseBody(t, map[string]any{"occurred_at": "9999-12-30T23:59:59.9999995Z"}), "invalid_time"},
		{"occurred_at last nanosecond of 9999", parseBody(t, map[string]any{"occurred_at": "9999-12-31T23:59:59.9999999Z"}), "invalid_time"},
		{"occurred_at year 10000 in UTC", parseBody(t, map[string]any{"occurred_at": "9999-12-31T23:30:00-01:00"}), "invalid_time"},
		{"occurred_at year -1 in UTC", parseBody(t, map[string]any{"occurred_at": "0000-01-01T00:30:00+01:00"}), "invalid_time"},
		{"occurred_at year 0", parseBody(t, map[string]any{"occurred_at": "0000-06-01T00:00:00Z"}), "invalid_time"},
		{"occurred_at Go's zero time", parseBody(t, map[string]any{"occurred_at": "0001-01-01T00:00:00Z"}), "invalid_time"},
		{"occurred_at just before MinTime", parseBody(t, map[string]any{"occurred_at": "0001-01-01T23:59:59.9999994Z"}), "invalid_time"},
		{"created_at year 10000 in UTC", parseBody(t, map[string]any{"created_at": "9999-12-31T23:59:59.9999999Z"}), "invalid_time"},
		{"created_at year 0", parseBody(t, map[string]any{"created_at": "0000-01-01T00:00:00Z"}), "invalid_time"},
		{"created_at in words", parseBody(t, map[string]any{"created_at": "now"}), "invalid_created_at"},
		{"created_at without zone", parseBody(t, map[string]any{"created_at": "2026-06-01T10:00:00.000"}), "invalid_created_at"},
		{"created_at number", parseBody(t, map[string]any{"created_at": 0}), "invalid_created_at"},
		{"created_at boolean", parseBody(t, map[string]any{"created_at": true}), "invalid_created_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, kind := parseKind(t, tc.raw)
			if kind != tc.kind {
				t.Fatalf("kind %q, want %q (body %.200s)", kind, tc.kind, tc.raw)
			}
		})
	}
}

func TestParseReasonTruncatesBadTimes(t *testing.T) {
	bad := strings.Repeat("9", 1000)
	_, err := Parse(parseBody(t, map[string]any{"occurred_at": bad}))
	var u *Unusable
	if !errors.As(err, &u) || len(u.Reason) > 150 || !strings.Contains(u.Reason, strings.Repeat("9", 64)+"...") {
		t.Fatalf("reason %v", err)
	}
}

func TestParseAccepts(t *testing.T) {
	utc := func(s string) *time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		tm = tm.UTC()
		return &tm
	}
	max := strings.Repeat("a", MaxIDLength)
	tests := []struct {
		name    string
		raw     []byte
		check   func(p Parsed) bool
		explain string
	}{
		{"the whole event", parseBody(t, nil), func(p Parsed) bool {
			return p.EventID == "11111111-2222-4333-8444-555555555555" && p.EventType == TypeDeleted &&
				p.WorkspaceID == foldWorkspace && p.AccessCodeID == foldCodeID && p.DeviceID == foldDevice &&
				p.ConnectedAccountID == foldAccount && p.OccurredAt.Equal(foldT0) &&
				p.CreatedAt.Equal(foldT0.Add(time.Second)) && p.Details == nil
		}, "every field read"},
		{"RFC 3339 in lower case", parseBody(t, map[string]any{"occurred_at": "2026-06-01t10:00:00.5z",
			"created_at": "2026-06-01t10:00:01+02:00"}), func(p Parsed) bool {
			return p.OccurredAt.Equal(time.Date(2026, 6, 1, 10, 0, 0, 5e8, time.UTC)) &&
				p.CreatedAt.Equal(time.Date(2026, 6, 1, 8, 0, 1, 0, time.UTC))
		}, "lower-case t and z accepted"},
		{"a lock event names no code", parseBody(t, map[string]any{"event_type": "lock.unlocked", "access_code_id": nil}), func(p Parsed) bool {
			return p.EventType == "lock.unlocked" && p.AccessCodeID == ""
		}, "only access_code.* events need one"},
		{"only the required fields", []byte(`{"event_id":"e","event_type":"t"}`), func(p Parsed) bool {
			return p.EventID == "e" && p.EventType == "t" && p.WorkspaceID == "" && p.AccessCodeID == "" &&
				p.DeviceID == "" && p.ConnectedAccountID == "" && p.OccurredAt == nil && p.CreatedAt == nil && p.Details == nil
		}, "optional fields empty"},
		{"null optional fields", []byte(`{"event_id":"e","event_type":"t","workspace_id":null,"access_code_id":null,
			"device_id":null,"connected_account_id":null,"occurred_at":null,"created_at":null,"access_code_errors":null}`),
			func(p Parsed) bool {
				return p.WorkspaceID == "" && p.AccessCodeID == "" && p.DeviceID == "" && p.ConnectedAccountID == "" &&
					p.OccurredAt == nil && p.CreatedAt == nil && p.Details == nil
			}, "null is absent"},
		{"empty optional ids", parseBody(t, map[string]any{"device_id": "", "workspace_id": ""}), func(p Parsed) bool {
			return p.DeviceID == "" && p.WorkspaceID == ""
		}, "empty optional ids are allowed"},
		{"ids of exactly 255 bytes", parseBody(t, map[string]any{"event_id": max, "event_type": max, "workspace_id": max,
			"access_code_id": max, "device_id": max, "connected_account_id": max}), func(p Parsed) bool {
			return p.EventID == max && p.EventType == max && p.WorkspaceID == max && p.AccessCodeID == max &&
				p.DeviceID == max && p.ConnectedAccountID == max
		}, "255 is the limit, inclusive"},
		{"255 bytes of multibyte runes", parseBody(t, map[string]any{"access_code_id": strings.Repeat("€", 85)}), func(p Parsed) bool {
			return p.AccessCodeID == strings.Repeat("€", 85)
		}, "bytes, not runes, count"},
		{"year 0001, a day in", parseBody(t, map[string]any{"occurred_at": "0001-01-02T00:00:00Z", "created_at": "0001-01-02T00:00:00.000Z"}),
			func(p Parsed) bool {
				return p.OccurredAt.Equal(MinTime) && p.CreatedAt.Year() == 1
			}, "far past is a valid time, down to MinTime"},
		{"year 9999, a day short", parseBody(t, map[string]any{"occurred_at": "9999-12-30T23:59:59.9999994Z", "created_at": "9999-01-01T00:00:00Z"}),
			func(p Parsed) bool {
				return p.OccurredAt.Equal(time.Date(9999, 12, 30, 23, 59, 59, 999999400, time.UTC)) && p.CreatedAt.Year() == 9999
			}, "far future is a valid time, up to MaxTime"},
		{"offset converted to UTC", parseBody(t, map[string]any{"occurred_at": "2026-06-01T12:00:00+02:00", "created_at": "2026-06-01T05:30:00-04:30"}),
			func(p Parsed) bool {
				return p.OccurredAt.Equal(foldT0) && p.OccurredAt.Location() == time.UTC &&
					p.CreatedAt.Equal(foldT0) && p.CreatedAt.Location() == time.UTC
			}, "times are UTC"},
		{"nanoseconds and no fraction", parseBody(t, map[string]any{"occurred_at": "2026-06-01T10:00:00.123456789Z", "created_at": "2026-06-01T10:00:00Z"}),
			func(p Parsed) bool {
				return p.OccurredAt.Equal(foldT0.Add(123456789)) && p.CreatedAt.Equal(foldT0)
			}, "RFC 3339 fractions"},
		{"unknown fields kept", parseBody(t, map[string]any{"brand_new_field": map[string]any{"nested": []any{1, "x", nil}},
			"code": nil, "event_description": "d", "device_custom_metadata": map[string]string{"k": "v"}, "EVENT_ID": 5}),
			func(p Parsed) bool {
				return p.EventID == "11111111-2222-4333-8444-555555555555" && p.EventType == TypeDeleted
			}, "Parse succeeds, keys are case-sensitive"},
		{"unknown event type", parseBody(t, map[string]any{"event_type": "access_code.something_new"}), func(p Parsed) bool {
			return p.EventType == "access_code.something_new"
		}, "any event type is an event"},
		{"invalid UTF-8 bytes in an id", []byte("{\"event_id\":\"a\xffb\",\"event_type\":\"t\"}"), func(p Parsed) bool {
			return p.EventID == "a\uFFFDb"
		}, "replaced by U+FFFD"},
		{"lone surrogate in an id", []byte(`{"event_id":"a\ud800b","event_type":"t"}`), func(p Parsed) bool {
			return p.EventID == "a\uFFFDb"
		}, "replaced by U+FFFD"},
		{"escaped id", []byte(`{"event_id":"\u0061\/b","event_type":"t"}`), func(p Parsed) bool {
			return p.EventID == "a/b"
		}, "JSON escapes decoded"},
		{"duplicate keys", []byte(`{"event_id":"first","event_id":"second","event_type":"t"}`), func(p Parsed) bool {
			return p.EventID == "second"
		}, "the last wins, as in encoding/json"},
		{"surrounding whitespace", append(append([]byte("\n\t "), parseBody(t, nil)...), "\r\n"...), func(p Parsed) bool {
			return p.EventID != ""
		}, "whitespace is JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, kind := parseKind(t, tc.raw)
			if kind != "" {
				t.Fatalf("rejected as %s", kind)
			}
			if !tc.check(p) {
				t.Fatalf("%s: got %+v", tc.explain, p)
			}
			_ = utc
		})
	}
}

// parseDetailKeys returns the keys of a Details object, sorted, failing when
// it is not a JSON object of arrays.
func parseDetailKeys(t *testing.T, d json.RawMessage) []string {
	t.Helper()
	if d == nil {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(d, &m); err != nil {
		t.Fatalf("details %s: %v", d, err)
	}
	var keys []string
	for k, v := range m {
		var arr []any
		if err := json.Unmarshal(v, &arr); err != nil {
			t.Fatalf("details[%s] = %s is not an array", k, v)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestParseDetails(t *testing.T) {
	item := []map[string]string{{"created_at": "2026-06-01T10:00:00.000Z", "message": "Device is offline", "error_code": "device_offline"}}
	tests := []struct {
		name  string
		extra map[string]any
		keys  string // sorted, comma-separated; "" means Details is nil
	}{
		{"none", nil, ""},
		{"every array", map[string]any{"access_code_errors": item, "access_code_warnings": []any{},
			"device_errors": item, "device_warnings": []any{}, "connected_account_errors": []any{},
			"connected_account_warnings": item},
			"access_code_errors,access_code_warnings,connected_account_errors,connected_account_warnings,device_errors,device_warnings"},
		{"empty arrays kept", map[string]any{"device_errors": []any{}}, "device_errors"},
		{"string is not an array", map[string]any{"device_errors": "offline"}, ""},
		{"object is not an array", map[string]any{"device_errors": map[string]any{"0": item}}, ""},
		{"number is not an array", map[string]any{"device_errors": 3}, ""},
		{"null is not an array", map[string]any{"device_errors": json.RawMessage(`null`)}, ""},
		{"only the arrays", map[string]any{"device_errors": "x", "access_code_errors": item}, "access_code_errors"},
		{"other arrays ignored", map[string]any{"errors": item, "warnings": item, "changed_properties": []string{"code"}}, ""},
		// jsonb refuses \u0000: the NUL is replaced, Seam's message kept.
		{"NUL escape replaced", map[string]any{"access_code_errors": []string{"a\x00b"}, "device_errors": item}, "access_code_errors,device_errors"},
		{"NUL escape alone", map[string]any{"device_warnings": json.RawMessage(`[{"message":"\u0000"}]`)}, "device_warnings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := parseBody(t, tc.extra)
			p, kind := parseKind(t, raw)
			if kind != "" {
				t.Fatalf("rejected as %s", kind)
			}
			if got := strings.Join(parseDetailKeys(t, p.Details), ","); got != tc.keys {
				t.Fatalf("details keys %q, want %q (details %s)", got, tc.keys, p.Details)
			}
			if bytes.Contains(p.Details, []byte(`\u0000`)) || bytes.IndexByte(p.Details, 0) >= 0 {
				t.Fatalf("details keep a NUL: %s", p.Details)
			}
		})
	}
}

func TestParseDetailsContent(t *testing.T) {
	raw := []byte(`{"event_id":"e","event_type":"t","device_errors" :  [ {"message": "Device is offline", "error_code": "device_offline"} ] }`)
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]map[string]string
	if err := json.Unmarshal(p.Details, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got["device_errors"]) != 1 || got["device_errors"][0]["error_code"] != "device_offline" ||
		got["device_errors"][0]["message"] != "Device is offline" {
		t.Fatalf("details %s", p.Details)
	}
}

func TestParseUnusableKind(t *testing.T) {
	for reason, kind := range map[string]string{
		"not_json: body is not a JSON object":              "not_json",
		"missing_event_id":                                 "missing_event_id",
		"invalid_occurred_at: \"x: y\" is not an ISO 8601": "invalid_occurred_at",
		"store_failed: sqlstate 22P05":                     "store_failed",
		"":                                                 "",
	} {
		if got := (&Unusable{Reason: reason}).Kind(); got != kind {
			t.Errorf("Kind(%q) = %q, want %q", reason, got, kind)
		}
	}
}

func TestParseExamples(t *testing.T) {
	if len(parseSeamExamples) != 9 {
		t.Fatalf("%d examples", len(parseSeamExamples))
	}
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	for name, body := range parseSeamExamples {
		t.Run(name, func(t *testing.T) {
			p, kind := parseKind(t, []byte(body))
			if kind != "" {
				t.Fatalf("rejected as %s", kind)
			}
			var want struct {
				EventID   string `json:"event_id"`
				EventType string `json:"event_type"`
			}
			if err := json.Unmarshal([]byte(body), &want); err != nil {
				t.Fatal(err)
			}
			if p.EventType != strings.TrimSuffix(name, ".json") || p.EventType != want.EventType || p.EventID != want.EventID {
				t.Fatalf("event %q %q", p.EventID, p.EventType)
			}
			if p.WorkspaceID != foldWorkspace || p.AccessCodeID != foldCodeID || p.DeviceID != foldDevice ||
				p.ConnectedAccountID != foldAccount {
				t.Fatalf("ids %+v", p)
			}
			if p.OccurredAt == nil || !p.OccurredAt.Equal(t0) || p.CreatedAt == nil || !p.CreatedAt.Equal(t0) {
				t.Fatalf("times %v %v", p.OccurredAt, p.CreatedAt)
			}
			keys := strings.Join(parseDetailKeys(t, p.Details), ",")
			switch p.EventType {
			case TypeDelayInRemoving, TypeFailedToRemove, foldTypeDelayInSetting:
				if keys != "access_code_errors,access_code_warnings,connected_account_errors,connected_account_warnings,device_errors,device_warnings" {
					t.Fatalf("details keys %q", keys)
				}
			default:
				if p.Details != nil {
					t.Fatalf("details %s", p.Details)
				}
			}
			if p.EventType == TypeFailedToRemove && !bytes.Contains(p.Details, []byte(`"device_offline"`)) {
				t.Fatalf("details lost the device error: %s", p.Details)
			}
		})
	}
}

// The embedded copies are the reference files, byte for byte (the reference
// directory exists on development machines, not in CI).
func TestParseExamplesMatchReference(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(parseExamplesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Skipf("no reference examples at %s", parseExamplesDir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		body, ok := parseSeamExamples[filepath.Base(f)]
		if !ok {
			t.Errorf("%s is not in parseSeamExamples", f)
			continue
		}
		if string(bytes.TrimRight(b, "\n")) != body {
			t.Errorf("%s differs from its copy in parseSeamExamples", f)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if len(files) != len(parseSeamExamples) {
		t.Errorf("%d reference files, %d copies", len(files), len(parseSeamExamples))
	}
}
