package seam

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Action attempt statuses.
const (
	ActionAttemptPending = "pending"
	ActionAttemptSuccess = "success"
	ActionAttemptError   = "error"
)

// ActionAttempt is Seam's record of an asynchronous action such as a
// deletion (action_type DELETE_ACCESS_CODE).
type ActionAttempt struct {
	ID         string          `json:"action_attempt_id"`
	ActionType string          `json:"action_type"`
	Status     string          `json:"status"` // "pending", "success" or "error"
	Result     json.RawMessage `json:"result"` // null unless success
	Error      *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"` // nil unless status is "error"

	// RequestID is Seam's id of the request that returned this attempt,
	// for quoting to Seam's support.
	RequestID string `json:"-"`
}

// Issue is one of Seam's errors or warnings on an access code or a device.
// Codes are open-ended: handle ones you do not know.
type Issue struct {
	ErrorCode   string    `json:"error_code,omitempty"`
	WarningCode string    `json:"warning_code,omitempty"`
	Message     string    `json:"message"`
	CreatedAt   time.Time `json:"created_at"` // zero if absent or unreadable
}

// UnmarshalJSON reads an issue, leaving CreatedAt zero when it is not a
// timestamp: one odd date must not lose the whole access code.
func (i *Issue) UnmarshalJSON(b []byte) error {
	var v struct {
		ErrorCode   string `json:"error_code"`
		WarningCode string `json:"warning_code"`
		Message     string `json:"message"`
		CreatedAt   any    `json:"created_at"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*i = Issue{ErrorCode: v.ErrorCode, WarningCode: v.WarningCode, Message: v.Message}
	if s, ok := v.CreatedAt.(string); ok {
		i.CreatedAt, _ = time.Parse(time.RFC3339Nano, s)
	}
	return nil
}

// AccessCode is a code Seam manages on a lock. Code is the PIN: treat it as
// a secret. String, GoString and LogValue leave it (and Raw) out.
type AccessCode struct {
	AccessCodeID     string          `json:"access_code_id"`
	DeviceID         string          `json:"device_id"`
	WorkspaceID      string          `json:"workspace_id,omitempty"`
	Name             string          `json:"name"`
	Code             string          `json:"code"`
	Status           string          `json:"status"` // setting, set, unset, removing, unknown
	Type             string          `json:"type"`   // ongoing, time_bound
	IsManaged        bool            `json:"is_managed"`
	PendingMutations json.RawMessage `json:"pending_mutations,omitempty"`
	Errors           []Issue         `json:"errors"`
	Warnings         []Issue         `json:"warnings"`
	CreatedAt        time.Time       `json:"created_at"`
	StartsAt         *time.Time      `json:"starts_at,omitempty"`
	EndsAt           *time.Time      `json:"ends_at,omitempty"`

	// Raw is the access code object exactly as Seam sent it.
	Raw json.RawMessage `json:"-"`
	// RequestID is Seam's id of the request that returned this code.
	RequestID string `json:"-"`
}

// Workspace is the workspace an API key belongs to (workspaces/get).
type Workspace struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	IsSandbox   bool   `json:"is_sandbox"`
}

// UnmarshalJSON decodes the known fields and keeps the whole object in Raw.
func (a *AccessCode) UnmarshalJSON(b []byte) error {
	type plain AccessCode // without this method: no recursion
	return unmarshalKeepingRaw(b, (*plain)(a), &a.Raw)
}

// unmarshalKeepingRaw decodes b into a zero T and, if that succeeds, sets *v
// to it and *raw to a copy of b (raw points into *v: a Seam object's Raw).
func unmarshalKeepingRaw[T any](b []byte, v *T, raw *json.RawMessage) error {
	var fresh T
	if err := json.Unmarshal(b, &fresh); err != nil {
		return err
	}
	*v = fresh
	*raw = append(json.RawMessage(nil), b...)
	return nil
}

// LogValue logs an access code without its PIN.
func (a AccessCode) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_code_id", a.AccessCodeID),
		slog.String("device_id", a.DeviceID),
		slog.String("status", a.Status),
		slog.Bool("is_managed", a.IsManaged),
	)
}

func (a AccessCode) String() string {
	return fmt.Sprintf("access code %s on %s (%s, managed %t, PIN withheld)", a.AccessCodeID, a.DeviceID, a.Status, a.IsManaged)
}

// GoString keeps %#v from printing the PIN.
func (a AccessCode) GoString() string { return "seam.AccessCode{" + a.String() + "}" }

// UnmanagedAccessCode is a code on a lock that Seam does not manage, as
// access_codes/unmanaged/list returns it (the same shape, is_managed false).
type UnmanagedAccessCode struct {
	AccessCode
}

// Device is the part of a Seam device codewatch reads, plus Raw.
type Device struct {
	DeviceID           string           `json:"device_id"`
	WorkspaceID        string           `json:"workspace_id"`
	DeviceType         string           `json:"device_type"`
	ConnectedAccountID string           `json:"connected_account_id"`
	Properties         DeviceProperties `json:"properties"`
	Errors             []Issue          `json:"errors"`
	Warnings           []Issue          `json:"warnings"`
	// DisplayName is what people call the lock: its nickname if one was
	// set through Seam, else the lock maker's name for it.
	DisplayName string `json:"display_name"`
	Nickname    string `json:"nickname,omitempty"`
	// Location is where the lock is (nil when Seam has none).
	Location *DeviceLocation `json:"location"`
	// CustomMetadata is the object the customer stored on the lock.
	CustomMetadata json.RawMessage `json:"custom_metadata,omitempty"`

	// Raw is the device object exactly as Seam sent it.
	Raw json.RawMessage `json:"-"`
}

// DeviceProperties are the device properties codewatch reads.
type DeviceProperties struct {
	Online bool   `json:"online"`
	Name   string `json:"name"`
	// Manufacturer is the lock maker ("august", "schlage", ...).
	Manufacturer string `json:"manufacturer,omitempty"`
}

// DeviceLocation is a device's location.
type DeviceLocation struct {
	LocationName string `json:"location_name"`
	// TimeZone is the IANA zone; Timezone is its deprecated twin, which
	// older answers (and Seam's fake) carry instead.
	TimeZone string `json:"time_zone"`
	Timezone string `json:"timezone"`
}

// Zone is the location's time zone, from time_zone or else timezone.
func (l *DeviceLocation) Zone() string {
	if l == nil {
		return ""
	}
	if l.TimeZone != "" {
		return l.TimeZone
	}
	return l.Timezone
}

// UnmarshalJSON decodes the known fields and keeps the whole object in Raw.
func (d *Device) UnmarshalJSON(b []byte) error {
	type plain Device // without this method: no recursion
	return unmarshalKeepingRaw(b, (*plain)(d), &d.Raw)
}
