package lifecycle

import (
	"encoding/json"
	"testing"
)

func devEv(id, typ string, m int, errorCode string) Event {
	e := Event{EventID: id, Type: typ, OccurredAt: foldAt(m), DeviceID: foldDevice, WorkspaceID: foldWorkspace, ConnectedAccountID: foldAccount}
	if errorCode != "" {
		e.Details, _ = json.Marshal(map[string]string{"error_code": errorCode})
	}
	return e
}

func acctEv(id, typ string, m int) Event {
	return Event{EventID: id, Type: typ, OccurredAt: foldAt(m), ConnectedAccountID: foldAccount}
}

func TestFoldDevice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		events  []Event
		online  string
		changed int // minutes; -1: nil
		code    string
		flaky   bool
	}{
		{"nothing told", []Event{devEv("a", "device.low_battery", 1, "")}, "nil", -1, "", false},
		{"connected", []Event{devEv("a", TypeDeviceConnected, 1, "")}, "true", 1, "", false},
		{"disconnected with Seam's reason", []Event{devEv("a", TypeDeviceConnected, 1, ""), devEv("b", TypeDeviceDisconnected, 5, "hub_disconnected")}, "false", 5, "hub_disconnected", false},
		{"disconnected without a reason", []Event{devEv("b", TypeDeviceDisconnected, 5, "")}, "false", 5, "device_disconnected", false},
		{"reconnected", []Event{devEv("b", TypeDeviceDisconnected, 5, "hub_disconnected"), devEv("c", TypeDeviceConnected, 9, "")}, "true", 9, "", false},
		{"disconnected twice: the first change counts", []Event{devEv("b", TypeDeviceDisconnected, 5, "hub_disconnected"), devEv("c", TypeDeviceDisconnected, 9, "device_disconnected")}, "false", 5, "device_disconnected", false},
		{"flaky", []Event{devEv("a", TypeDeviceConnected, 1, ""), devEv("f", TypeDeviceFlaky, 3, "")}, "true", 1, "", true},
		{"flaky then stable", []Event{devEv("a", TypeDeviceConnected, 1, ""), devEv("f", TypeDeviceFlaky, 3, ""), devEv("g", TypeDeviceStabilized, 4, "")}, "true", 1, "", false},
		{"removed", []Event{devEv("a", TypeDeviceConnected, 1, ""), devEv("r", TypeDeviceRemoved, 3, "")}, "false", 3, "device_removed", false},
		{"deleted", []Event{devEv("r", TypeDeviceDeleted, 3, "")}, "false", 3, "device_deleted", false},
		{"account disconnected", []Event{devEv("a", TypeDeviceConnected, 1, ""), acctEv("x", TypeAccountDisconnected, 6)}, "false", 6, "account_disconnected", false},
		{"account back", []Event{devEv("a", TypeDeviceConnected, 1, ""), acctEv("x", TypeAccountDisconnected, 6), acctEv("y", TypeAccountConnected, 8)}, "true", 8, "", false},
		{"account back, lock offline on its own", []Event{devEv("b", TypeDeviceDisconnected, 5, "hub_disconnected"), acctEv("y", TypeAccountConnected, 8)}, "false", 5, "hub_disconnected", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ref DeviceState
			foldPermute(len(tc.events), func(perm []int) {
				st := FoldDevice(foldApply(tc.events, perm))
				if got := foldFmtBool(st.Online); got != tc.online || st.ConnectivityErrorCode != tc.code || st.Flaky != tc.flaky {
					t.Fatalf("order %v: online %s code %q flaky %v", perm, got, st.ConnectivityErrorCode, st.Flaky)
				}
				want := "nil"
				if tc.changed >= 0 {
					want = foldFmtTime(foldP(tc.changed))
				}
				if got := foldFmtTime(st.OnlineChangedAt); got != want {
					t.Fatalf("order %v: online_changed_at %s, want %s", perm, got, want)
				}
				ref = st
			})
			if ref.DeviceID != foldDevice && len(tc.events) > 0 && tc.events[0].DeviceID != "" {
				t.Fatalf("device id %q", ref.DeviceID)
			}
		})
	}
}

func TestParseKeepsConnectivityErrorCode(t *testing.T) {
	p, err := Parse([]byte(`{"event_id":"e","event_type":"device.disconnected","device_id":"d","error_code":"hub_disconnected","occurred_at":"2026-06-01T10:00:00Z"}`))
	if err != nil || errorCode(p.Details) != "hub_disconnected" {
		t.Fatalf("%s %v", p.Details, err)
	}
	p, err = Parse([]byte(`{"event_id":"e","event_type":"lock.locked","device_id":"d","error_code":"x"}`))
	if err != nil || p.Details != nil {
		t.Fatalf("other events keep no error_code: %s %v", p.Details, err)
	}
}
