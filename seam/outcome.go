package seam

import (
	"errors"
	"net/http"
)

// Routes are the routes of Seam's API that codewatch calls (the label of
// the Seam API metrics; the client calls no other).
var Routes = []string{"access_codes/delete", "access_codes/get", "access_codes/unmanaged/list",
	"action_attempts/get", "devices/get", "events/list", "workspaces/get"}

// Outcomes are the values of Outcome.
var Outcomes = []string{"ok", "not_found", "client_error", "rate_limited", "server_error", "transport_error", "invalid_answer"}

// Outcome names what one attempt got back: ok; not_found (Seam's 404),
// client_error (another 4xx, or a redirect), rate_limited (429),
// server_error (5xx), transport_error (no answer), invalid_answer (a 2xx
// that is not Seam's JSON, or too large).
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var se *Error
	var te *transportError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		return "not_found"
	case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
		return "rate_limited"
	case errors.As(err, &se) && se.Status >= 500:
		return "server_error"
	case errors.As(err, &se):
		return "client_error"
	case errors.As(err, &te):
		return "transport_error"
	}
	return "invalid_answer"
}
