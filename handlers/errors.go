// Package handlers holds codewatch's HTTP routes: the public webhook receiver
// (public.go) and the ops status API (ops.go, devices.go), on the plumbing
// they share (server.go). Handlers parse, call the domain, and map errors;
// every error body has Seam's shape:
//
//	{"error":{"type":"...","message":"...","request_id":"..."},"ok":false}
//
// The ops console is package handlers/console, which imports this one; the
// ops server mounts it through Ops.Console.
package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

// APIError is a client-facing error.
type APIError struct {
	Status           int
	Type             string
	Message          string
	ValidationErrors map[string]any
	Data             map[string]any
	// Beside is shown beside "error" at the top of the body, e.g. the
	// current access_code of a refused acknowledgement.
	Beside map[string]any
}

func (e *APIError) Error() string { return e.Message }

// NewError is an error the client sees with status and Seam's error type typ.
func NewError(status int, typ, msg string) *APIError {
	return &APIError{Status: status, Type: typ, Message: msg}
}

// InvalidParam is a 400 naming one parameter, in Seam's validation_errors shape.
func InvalidParam(name, problem string) *APIError {
	return &APIError{
		Status:  http.StatusBadRequest,
		Type:    "invalid_input",
		Message: "Invalid " + name + ": " + problem,
		ValidationErrors: map[string]any{
			"_errors": []string{},
			name:      map[string]any{"_errors": []string{problem}},
		},
	}
}

// maxMessage bounds an error answer's message.
const maxMessage = 4096

type errorBody struct {
	Type             string         `json:"type"`
	Message          string         `json:"message"`
	ValidationErrors map[string]any `json:"validation_errors,omitempty"`
	Data             map[string]any `json:"data,omitempty"`
	RequestID        string         `json:"request_id"`
}

// fromDomain maps a lifecycle error to its HTTP form (domainErrors).
func fromDomain(err error) *APIError {
	var de *lifecycle.Error
	if errors.As(err, &de) {
		if m, ok := domainErrors[de.Code]; ok {
			return NewError(m.status, m.typ, de.Message)
		}
	}
	return NewError(http.StatusInternalServerError, "internal_error", "internal error")
}

// domainErrors is the one place where domain codes become statuses.
var domainErrors = map[lifecycle.Code]struct {
	status int
	typ    string
}{
	lifecycle.ENotFound:       {http.StatusNotFound, "not_found"},
	lifecycle.EInvalid:        {http.StatusBadRequest, "invalid_input"},
	lifecycle.EConflict:       {http.StatusConflict, "conflict"},
	lifecycle.EUnavailable:    {http.StatusServiceUnavailable, "unavailable"},
	lifecycle.ESeam:           {http.StatusBadGateway, "seam_api_error"},
	lifecycle.ESeamOff:        {http.StatusNotImplemented, "seam_api_not_configured"},
	lifecycle.ETroubleChanged: {http.StatusConflict, "trouble_changed"},
	// Like a missing key: this codewatch cannot ask Seam about it.
	lifecycle.ENotCovered: {http.StatusConflict, "workspace_not_covered"},
}

// AsAPIError is any error as the client sees it: ours, Echo's own (404,
// 405), a domain error, or an internal error.
func AsAPIError(err error) *APIError {
	var ae *APIError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &he):
		ae = NewError(he.Code, echoType(he.Code), http.StatusText(he.Code))
		if m, ok := he.Message.(string); ok && m != "" {
			ae.Message = m
		}
		return ae
	case lifecycle.ErrorCode(err) != "":
		return fromDomain(err)
	}
	return NewError(http.StatusInternalServerError, "internal_error", "internal error")
}

func echoType(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal_error"
	}
	return "invalid_input"
}
