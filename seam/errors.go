package seam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error is an answer from Seam other than 2xx. Seam's body is
// {"error":{"type","message","data","request_id"},"ok":false}; fields the
// answer lacks stay empty (a 503 from a proxy has no body at all).
type Error struct {
	// Status is the HTTP status.
	Status int
	// Type is Seam's error type, such as access_code_not_found.
	Type string
	// Message is Seam's message, for people.
	Message string
	// RequestID names the request for Seam's support: the body's
	// request_id, else the seam-request-id header.
	RequestID string
	// Data is the error's data object, if any.
	Data map[string]any

	// Route is the API route called, such as access_codes/delete.
	Route string
	// Attempts is how many attempts the call made, this one included.
	Attempts int
	// RetryAfter is the answer's Retry-After, if it had one.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seam %s: %d", e.Route, e.Status)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; Seam asks to retry after %s", e.RetryAfter)
	}
	return b.String()
}

// IsNotFound reports whether err is Seam saying the thing asked for does
// not exist: a 404, or one of the not-found types (Seam answers
// access_code_not_found, its fake not_found).
func IsNotFound(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Type {
	case "access_code_not_found", "not_found", "action_attempt_not_found":
		return true
	}
	return e.Status == http.StatusNotFound
}

// IsRateLimited reports whether err is Seam's 429: the call was refused for
// going over a rate limit, even after the client's retries.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusTooManyRequests
}

// parseError builds an *Error from a non-2xx answer.
func parseError(route string, status int, headerID string, body []byte) *Error {
	e := &Error{Status: status, Route: route, RequestID: headerID}
	var env struct {
		Error *struct {
			Type      string          `json:"type"`
			Message   string          `json:"message"`
			Data      json.RawMessage `json:"data"`
			RequestID string          `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Type = env.Error.Type
		e.Message = env.Error.Message
		if env.Error.RequestID != "" {
			e.RequestID = env.Error.RequestID
		}
		var data map[string]any
		if len(env.Error.Data) > 0 && json.Unmarshal(env.Error.Data, &data) == nil {
			e.Data = data
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}
