// Package seamevent builds realistic Seam webhook events and delivers them
// signed exactly as Seam (through Svix) does. `codewatch send`, the tests,
// the benchmark and the fault suite all use it.
package seamevent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/codewatch/codewatch/internal/ids"
	"github.com/codewatch/codewatch/verify"
)

// Options fill an event's fields; empty ones get realistic values.
type Options struct {
	EventID            string
	AccessCodeID       string
	DeviceID           string
	WorkspaceID        string
	ConnectedAccountID string
	OccurredAt         time.Time
	Code               string
}

// NewID returns a random UUID, the form of every Seam id.
func NewID() string { return ids.New() }

// NewMessageID returns an id shaped like Svix's (msg_ + 27 characters).
func NewMessageID() string {
	return "msg_" + strings.ReplaceAll(NewID(), "-", "")[:27]
}

type item struct {
	CreatedAt   string `json:"created_at"`
	Message     string `json:"message"`
	ErrorCode   string `json:"error_code,omitempty"`
	WarningCode string `json:"warning_code,omitempty"`
}

// Build returns the JSON body of an event of eventType.
func Build(eventType string, o Options) ([]byte, error) {
	if eventType == "" || strings.ContainsAny(eventType, " \t\n") {
		return nil, fmt.Errorf("event type %q is not like access_code.deleted", eventType)
	}
	if o.EventID == "" {
		o.EventID = NewID()
	}
	if o.WorkspaceID == "" {
		o.WorkspaceID = "680d7c60-0a92-4e78-85bd-cb45155576b9"
	}
	if o.DeviceID == "" {
		o.DeviceID = "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8"
	}
	if o.ConnectedAccountID == "" {
		o.ConnectedAccountID = "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"
	}
	if o.OccurredAt.IsZero() {
		o.OccurredAt = time.Now()
	}
	if o.Code == "" {
		o.Code = "4821"
	}
	ts := o.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z")
	ev := map[string]any{
		"event_id":             o.EventID,
		"event_type":           eventType,
		"workspace_id":         o.WorkspaceID,
		"created_at":           ts,
		"occurred_at":          ts,
		"device_id":            o.DeviceID,
		"connected_account_id": o.ConnectedAccountID,
	}
	if o.AccessCodeID != "" {
		ev["access_code_id"] = o.AccessCodeID
	}
	empty := []item{}
	trouble := func(acErr, acWarn, devErr []item) {
		ev["access_code_errors"], ev["access_code_warnings"] = acErr, acWarn
		ev["device_errors"], ev["device_warnings"] = devErr, empty
		ev["connected_account_errors"], ev["connected_account_warnings"] = empty, empty
	}
	switch eventType {
	case "access_code.set_on_device", "access_code.scheduled_on_device", "access_code.deleted":
		ev["code"] = o.Code
	case "access_code.failed_to_remove_from_device":
		trouble([]item{{CreatedAt: ts, Message: "Failed to remove code from device.", ErrorCode: "failed_to_remove_from_device"}},
			empty, []item{{CreatedAt: ts, Message: "Device is offline", ErrorCode: "device_offline"}})
	case "access_code.delay_in_removing_from_device":
		trouble(empty, []item{{CreatedAt: ts, Message: "Delay in removing code from device.", WarningCode: "delay_in_removing_from_device"}}, empty)
	case "access_code.failed_to_set_on_device":
		trouble([]item{{CreatedAt: ts, Message: "Failed to set code on device.", ErrorCode: "failed_to_set_on_device"}}, empty, empty)
	case "access_code.delay_in_setting_on_device":
		trouble(empty, []item{{CreatedAt: ts, Message: "Delay in setting code on device.", WarningCode: "delay_in_setting_on_device"}}, empty)
	case "lock.locked", "lock.unlocked":
		ev["method"] = "keycode"
		if o.AccessCodeID != "" {
			ev["code"] = o.Code
			ev["access_code_is_managed"] = true
		}
	}
	return json.Marshal(ev)
}

// Sender posts signed events.
type Sender struct {
	URL    string
	Secret string
	Client *http.Client
	// Standard uses the webhook-* header names instead of svix-*.
	Standard bool
	Now      func() time.Time
}

// Reply is the service's answer.
type Reply struct {
	Status int
	Body   []byte
}

// Send signs body with a fresh timestamp (as each Svix attempt does) and
// posts it under msgID.
func (s *Sender) Send(ctx context.Context, msgID string, body []byte) (Reply, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	h, err := verify.Sign(s.Secret, msgID, now(), body)
	if err != nil {
		return Reply{}, err
	}
	if s.Standard {
		h = verify.StandardHeaders(h)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return Reply{}, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Svix-Webhooks/1.0 (codewatch send)")
	client := http.Client{Timeout: 15 * time.Second}
	if s.Client != nil {
		client = *s.Client // shares the transport and its connections
	}
	// Svix does not follow redirects (a 3xx is a failed delivery): neither
	// does this, or a 302 would turn the POST into a GET without the event,
	// answered 200, and `codewatch send` would report a success.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return Reply{Status: resp.StatusCode, Body: b}, err
}
