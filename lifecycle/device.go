package lifecycle

import (
	"encoding/json"
	"strings"
	"time"
)

// Device (lock) connectivity events. docs/lifecycle.md ("Locks") has the
// rules.
const (
	TypeDeviceConnected          = "device.connected"
	TypeDeviceDisconnected       = "device.disconnected"
	TypeDeviceFlaky              = "device.connection_became_flaky"
	TypeDeviceStabilized         = "device.connection_stabilized"
	TypeDeviceRemoved            = "device.removed"
	TypeDeviceDeleted            = "device.deleted"
	TypeAccountDisconnected      = "connected_account.disconnected"
	TypeAccountConnected         = "connected_account.connected"
	devicePrefix                 = "device."
	accountPrefix                = "connected_account."
	connectivityAccountError     = "account_disconnected"
	connectivityDeviceRemoved    = "device_removed"
	connectivityDeviceDeleted    = "device_deleted"
	connectivityDeviceDisconnect = "device_disconnected"
)

// IsDeviceEvent reports whether an event moves a lock's connectivity: the
// device's own events, and its connected account's (which the store fans
// out to every lock of the account).
func IsDeviceEvent(eventType string) bool {
	switch eventType {
	case TypeDeviceConnected, TypeDeviceDisconnected, TypeDeviceFlaky, TypeDeviceStabilized,
		TypeDeviceRemoved, TypeDeviceDeleted, TypeAccountDisconnected, TypeAccountConnected:
		return true
	}
	return false
}

// IsAccountEvent reports whether an event is a connected account's.
func IsAccountEvent(eventType string) bool { return strings.HasPrefix(eventType, accountPrefix) }

// DeviceState is a lock's connectivity as its events tell it.
type DeviceState struct {
	DeviceID           string
	WorkspaceID        string
	ConnectedAccountID string
	// Online is nil until an event tells.
	Online          *bool
	OnlineChangedAt *time.Time
	// ConnectivityErrorCode is Seam's reason the lock is offline
	// (hub_disconnected, account_disconnected, ...; device_removed or
	// device_deleted once Seam no longer has it); "" when online.
	ConnectivityErrorCode string
	// Flaky: Seam reported the connection flaky and not yet stable.
	Flaky       bool
	LastEventAt *time.Time
}

// FoldDevice computes a lock's connectivity from its events (its own
// device.* events and its account's connected_account.* events), in
// Fold's order, so that every delivery order gives the same state.
func FoldDevice(events []Event) DeviceState {
	evs := dedupe(events)
	Sort(evs)
	var st DeviceState
	set := func(online bool, code string, at time.Time) {
		if st.Online == nil || *st.Online != online {
			t := at
			st.OnlineChangedAt = &t
		}
		st.Online = &online
		st.ConnectivityErrorCode = code
	}
	for i := range evs {
		e := &evs[i]
		at := e.OccurredAt
		st.LastEventAt = &at
		if e.DeviceID != "" && !IsAccountEvent(e.Type) {
			st.DeviceID = e.DeviceID
		}
		if e.WorkspaceID != "" {
			st.WorkspaceID = e.WorkspaceID
		}
		if e.ConnectedAccountID != "" {
			st.ConnectedAccountID = e.ConnectedAccountID
		}
		switch e.Type {
		case TypeDeviceConnected:
			set(true, "", at)
			st.Flaky = false
		case TypeDeviceDisconnected:
			code := errorCode(e.Details)
			if code == "" {
				code = connectivityDeviceDisconnect
			}
			set(false, code, at)
		case TypeDeviceFlaky:
			st.Flaky = true
		case TypeDeviceStabilized:
			st.Flaky = false
			if st.Online == nil {
				set(true, "", at)
			}
		case TypeDeviceRemoved:
			set(false, connectivityDeviceRemoved, at)
		case TypeDeviceDeleted:
			set(false, connectivityDeviceDeleted, at)
		case TypeAccountDisconnected:
			set(false, connectivityAccountError, at)
		case TypeAccountConnected:
			// The account is back; the lock is too, unless it was offline
			// for a reason of its own.
			if st.Online != nil && !*st.Online && st.ConnectivityErrorCode == connectivityAccountError {
				set(true, "", at)
			}
		}
	}
	return st
}

// errorCode reads the error_code Parse keeps for connectivity events.
func errorCode(details json.RawMessage) string {
	var d struct {
		ErrorCode string `json:"error_code"`
	}
	_ = json.Unmarshal(details, &d)
	return d.ErrorCode
}

// LockStatus is what an access code (and its alerts) show of its lock.
type LockStatus struct {
	Online          *bool
	OnlineChangedAt *time.Time
	ErrorCode       string
}

// Lock returns the status a code shows of this lock.
func (d DeviceState) Lock() LockStatus {
	return LockStatus{Online: d.Online, OnlineChangedAt: d.OnlineChangedAt, ErrorCode: d.ConnectivityErrorCode}
}
