package lifecycle

import (
	"errors"
	"fmt"
)

// Code classifies an Error. handlers maps each to one HTTP status, in one place.
type Code string

// Error codes.
const (
	ENotFound    Code = "not_found"
	EInvalid     Code = "invalid_input"
	EConflict    Code = "conflict"
	EUnavailable Code = "unavailable"
	// ESeam: Seam's API refused or failed a call codewatch made for the
	// caller; the message is Seam's.
	ESeam Code = "seam_api_error"
	// ESeamOff: the call needs Seam's API and SEAM_API_KEY is not set.
	ESeamOff Code = "seam_api_not_configured"
	// ENotCovered: the code is in a workspace SEAM_API_KEY does not reach;
	// codewatch does not call Seam's API about it with that key.
	ENotCovered Code = "workspace_not_covered"
	// ETroubleChanged: an acknowledgement named a trouble (trouble_id) that
	// is no longer the code's.
	ETroubleChanged Code = "trouble_changed"
)

// Error is the domain's error: a code for the caller and a message fit to show.
type Error struct {
	Code    Code
	Message string
	Err     error // cause, for logs; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns err's Code, or "" when err is not an *Error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, a ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// Unavailable wraps a failure of a dependency (the database, Seam) that a
// retry may cure.
func Unavailable(err error) error {
	return &Error{Code: EUnavailable, Message: "the database is unavailable; retry later", Err: err}
}
