package lifecycle

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestSeamMessages(t *testing.T) {
	for _, tc := range []struct {
		name    string
		details string
		want    []SeamMessage
	}{
		{"none", ``, nil},
		{"null", `null`, nil},
		{"not an object", `[1]`, nil},
		{"event_id only", `{"event_id":"e1"}`, nil},
		{"errors first, then by key; odd arrays skipped", `{
			"device_warnings":[{"message":"Lock battery low","warning_code":"low_battery"}],
			"access_code_warnings":[{"message":"Delay in removing code from device.","warning_code":"delay_in_removing_from_device"}],
			"device_errors":[{"message":"Device is offline","error_code":"device_offline"}],
			"access_code_errors":[{"created_at":"2025-01-01T00:00:00.000Z","message":"Failed to remove code from device.","error_code":"failed_to_remove_from_device"}],
			"connected_account_errors":"not a list",
			"event_id":"e1"}`, []SeamMessage{
			{"error", "access_code", "failed_to_remove_from_device", "Failed to remove code from device."},
			{"error", "device", "device_offline", "Device is offline"},
			{"warning", "access_code", "delay_in_removing_from_device", "Delay in removing code from device."},
			{"warning", "device", "low_battery", "Lock battery low"},
		}},
		{"a code without a message stays, an empty item goes", `{"connected_account_errors":[{"error_code":"account_disconnected"},{}]}`,
			[]SeamMessage{{"error", "connected_account", "account_disconnected", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SeamMessages(json.RawMessage(tc.details)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SeamMessages(%s) =\n%+v\nwant\n%+v", tc.details, got, tc.want)
			}
		})
	}
}
