package handlers

// Get one or 404: a route that names a code or a lock by id answers 404
// in Seam's shape (access_code_not_found, device_not_found) both for an id
// codewatch cannot hold (not text it can store: not asked) and for one the
// store does not know.

import (
	"context"
	"net/http"

	"github.com/codewatch/codewatch/lifecycle"
)

// GetAccessCode reads the access code id names, or returns
// AccessCodeNotFound.
func GetAccessCode(ctx context.Context, s OpsStore, id string) (*lifecycle.AccessCode, error) {
	return getOne(ctx, id, s.GetAccessCode, AccessCodeNotFound)
}

// GetDevice reads the lock id names, or returns DeviceNotFound.
func GetDevice(ctx context.Context, s OpsStore, id string) (*lifecycle.Device, error) {
	return getOne(ctx, id, s.GetDevice, DeviceNotFound)
}

func getOne[T any](ctx context.Context, id string, get func(context.Context, string) (*T, error), notFound func(string) *APIError) (*T, error) {
	if !ValidText(id) {
		return nil, notFound(id)
	}
	v, err := get(ctx, id)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// AccessCodeNotFound is the 404 of a code codewatch does not know.
func AccessCodeNotFound(id string) *APIError {
	e := NewError(http.StatusNotFound, "access_code_not_found", "Could not find an access_code with access_code_id")
	e.Data = map[string]any{"access_code_id": id}
	return e
}

// DeviceNotFound is the 404 of a lock codewatch does not know.
func DeviceNotFound(id string) *APIError {
	e := NewError(http.StatusNotFound, "device_not_found", "Could not find a device with device_id")
	e.Data = map[string]any{"device_id": id}
	return e
}
