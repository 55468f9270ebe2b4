package seam

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// DeleteAccessCode asks Seam to delete an access code (access_codes/delete)
// and returns the action attempt, usually still pending: the code is gone
// from the lock only when the attempt succeeds (GetActionAttempt) or Seam
// sends access_code.removed_from_device.
//
// deviceID, when given, is sent along and keys the per-device limit; when
// empty the limit is keyed by the code's device if this Client has read the
// code before, else only the global limit applies.
//
// Transport errors and 5xx answers are retried. A retry after a lost answer
// can meet a deletion that already went through: then the error is
// IsNotFound with Attempts > 1.
func (c *Client) DeleteAccessCode(ctx context.Context, accessCodeID, deviceID string) (*ActionAttempt, error) {
	return c.deleteAccessCode(ctx, accessCodeID, deviceID, deviceID)
}

// DeleteAccessCodeOf is DeleteAccessCode for a code codewatch knows to be on
// deviceID: the per-device limit is keyed by it, but only the code's id is
// sent (Seam finds the device itself; Seam's fake, given device_id, deletes
// the wrong code).
func (c *Client) DeleteAccessCodeOf(ctx context.Context, accessCodeID, deviceID string) (*ActionAttempt, error) {
	return c.deleteAccessCode(ctx, accessCodeID, "", deviceID)
}

func (c *Client) deleteAccessCode(ctx context.Context, accessCodeID, sendDevice, limitDevice string) (*ActionAttempt, error) {
	if accessCodeID == "" {
		return nil, errors.New("seam access_codes/delete: access code id is empty")
	}
	body := map[string]string{"access_code_id": accessCodeID}
	key := limitDevice
	if sendDevice != "" {
		body["device_id"] = sendDevice
	}
	if key == "" {
		key = c.codeDev.get(accessCodeID)
	}
	var out struct {
		ActionAttempt *ActionAttempt `json:"action_attempt"`
	}
	reqID, err := c.call(ctx, "access_codes/delete", body, &out, key)
	if err != nil {
		return nil, err
	}
	return attemptOf("access_codes/delete", reqID, out.ActionAttempt)
}

// GetActionAttempt reads an action attempt (action_attempts/get).
func (c *Client) GetActionAttempt(ctx context.Context, id string) (*ActionAttempt, error) {
	var out struct {
		ActionAttempt *ActionAttempt `json:"action_attempt"`
	}
	reqID, err := c.get(ctx, "action_attempts/get", "action_attempt_id", id, &out)
	if err != nil {
		return nil, err
	}
	return attemptOf("action_attempts/get", reqID, out.ActionAttempt)
}

// get calls a route that reads one object by its id, sent as idField
// (access_code_id, device_id...), and decodes the answer into out. An empty
// id is refused before any request.
func (c *Client) get(ctx context.Context, route, idField, id string, out any) (string, error) {
	if id == "" {
		return "", fmt.Errorf("seam %s: %s is empty", route, strings.ReplaceAll(idField, "_", " "))
	}
	return c.call(ctx, route, map[string]string{idField: id}, out, "")
}

func attemptOf(route, reqID string, a *ActionAttempt) (*ActionAttempt, error) {
	if a == nil || a.ID == "" {
		return nil, &AnswerError{Route: route, RequestID: reqID, Problem: "a 2xx answer without an action_attempt"}
	}
	a.RequestID = reqID
	return a, nil
}

// GetAccessCode reads an access code (access_codes/get). After a deletion
// has gone through Seam answers 404: IsNotFound(err).
func (c *Client) GetAccessCode(ctx context.Context, id string) (*AccessCode, error) {
	var out struct {
		AccessCode *AccessCode `json:"access_code"`
	}
	reqID, err := c.get(ctx, "access_codes/get", "access_code_id", id, &out)
	if err != nil {
		return nil, err
	}
	if out.AccessCode == nil {
		return nil, &AnswerError{Route: "access_codes/get", RequestID: reqID, Problem: "a 2xx answer without an access_code"}
	}
	if out.AccessCode.AccessCodeID != id {
		// Not an answer about this code: nothing it says can describe it.
		return nil, &AnswerError{Route: "access_codes/get", RequestID: reqID, Problem: "a 2xx answer about another access code"}
	}
	out.AccessCode.RequestID = reqID
	c.codeDev.put(out.AccessCode.AccessCodeID, out.AccessCode.DeviceID)
	return out.AccessCode, nil
}

// GetWorkspace reads the workspace the API key belongs to (workspaces/get).
// An API key reaches one workspace: Seam's answers about codes of another
// say nothing about them.
func (c *Client) GetWorkspace(ctx context.Context) (*Workspace, error) {
	var out struct {
		Workspace *Workspace `json:"workspace"`
	}
	reqID, err := c.call(ctx, "workspaces/get", map[string]string{}, &out, "")
	if err != nil {
		return nil, err
	}
	if out.Workspace == nil || out.Workspace.WorkspaceID == "" {
		return nil, &AnswerError{Route: "workspaces/get", RequestID: reqID, Problem: "a 2xx answer without a workspace"}
	}
	return out.Workspace, nil
}

// maxPages bounds paging, in case a server hands out cursors forever.
const maxPages = 1000

// ListUnmanagedAccessCodes lists the codes on a lock that Seam does not
// manage (access_codes/unmanaged/list), following page_cursor paging. A
// deleted code that shows up here is still on the lock.
func (c *Client) ListUnmanagedAccessCodes(ctx context.Context, deviceID string) ([]UnmanagedAccessCode, error) {
	if deviceID == "" {
		return nil, errors.New("seam access_codes/unmanaged/list: device id is empty")
	}
	var all []UnmanagedAccessCode
	cursor := ""
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("seam access_codes/unmanaged/list: more than %d pages", maxPages)
		}
		body := map[string]string{"device_id": deviceID}
		if cursor != "" {
			body["page_cursor"] = cursor
		}
		var out struct {
			AccessCodes []UnmanagedAccessCode `json:"access_codes"`
			Pagination  *struct {
				NextPageCursor *string `json:"next_page_cursor"`
			} `json:"pagination"`
		}
		if _, err := c.call(ctx, "access_codes/unmanaged/list", body, &out, ""); err != nil {
			return nil, err
		}
		for _, a := range out.AccessCodes {
			c.codeDev.put(a.AccessCodeID, a.DeviceID)
		}
		all = append(all, out.AccessCodes...)
		// Seam's fake has no pagination object: one page is all there is.
		if out.Pagination == nil || out.Pagination.NextPageCursor == nil || *out.Pagination.NextPageCursor == "" {
			return all, nil
		}
		cursor = *out.Pagination.NextPageCursor
		if seen[cursor] {
			return nil, fmt.Errorf("seam access_codes/unmanaged/list: page cursor repeated")
		}
		seen[cursor] = true
	}
}

// GetDevice reads a device (devices/get).
func (c *Client) GetDevice(ctx context.Context, id string) (*Device, error) {
	var out struct {
		Device *Device `json:"device"`
	}
	reqID, err := c.get(ctx, "devices/get", "device_id", id, &out)
	if err != nil {
		return nil, err
	}
	if out.Device == nil {
		return nil, fmt.Errorf("seam devices/get: answer has no device (request %s)", reqID)
	}
	return out.Device, nil
}
