// Package handlers holds codewatch's HTTP routes: the public webhook receiver
// and the ops status API. Handlers parse, call the domain, and map errors;
// every error body has Seam's shape:
//
//	{"error":{"type":"...","message":"...","request_id":"..."},"ok":false}
package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

// apiError is a client-facing error.
type apiError struct {
	Status           int
	Type             string
	Message          string
	ValidationErrors map[string]any
	Data             map[string]any
	// Beside is shown beside "error" at the top of the body, e.g. the
	// current access_code of a refused acknowledgement.
	Beside map[string]any
}

func (e *apiError) Error() string { return e.Message }

func newError(status int, typ, msg string) *apiError {
	return &apiError{Status: status, Type: typ, Message: msg}
}

// invalidParam is a 400 naming one parameter, in Seam's validation_errors shape.
func invalidParam(name, problem string) *apiError {
	return &apiError{
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

// fromDomain maps a lifecycle error to its HTTP form: the one place where
// domain codes become statuses.
func fromDomain(err error) *apiError {
	var de *lifecycle.Error
	if !errors.As(err, &de) {
		return newError(http.StatusInternalServerError, "internal_error", "internal error")
	}
	switch de.Code {
	case lifecycle.ENotFound:
		return newError(http.StatusNotFound, "not_found", de.Message)
	case lifecycle.EInvalid:
		return newError(http.StatusBadRequest, "invalid_input", de.Message)
	case lifecycle.EConflict:
		return newError(http.StatusConflict, "conflict", de.Message)
	case lifecycle.EUnavailable:
		return newError(http.StatusServiceUnavailable, "unavailable", de.Message)
	case lifecycle.ESeam:
		return newError(http.StatusBadGateway, "seam_api_error", de.Message)
	case lifecycle.ESeamOff:
		return newError(http.StatusNotImplemented, "seam_api_not_configured", de.Message)
	case lifecycle.ETroubleChanged:
		return newError(http.StatusConflict, "trouble_changed", de.Message)
	case lifecycle.ENotCovered:
		// Like a missing key: this codewatch cannot ask Seam about it.
		return newError(http.StatusConflict, "workspace_not_covered", de.Message)
	}
	return newError(http.StatusInternalServerError, "internal_error", "internal error")
}

// asAPIError is any error as the client sees it: ours, Echo's own (404,
// 405), a domain error, or an internal error.
func asAPIError(err error) *apiError {
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &he):
		ae = newError(he.Code, echoType(he.Code), http.StatusText(he.Code))
		if m, ok := he.Message.(string); ok && m != "" {
			ae.Message = m
		}
		return ae
	case lifecycle.ErrorCode(err) != "":
		return fromDomain(err)
	}
	return newError(http.StatusInternalServerError, "internal_error", "internal error")
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
