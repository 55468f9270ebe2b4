package seam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
	// SeamShaped says the body had Seam's error shape: a JSON object with
	// "ok": false and an "error" object carrying a string type and message.
	// Only such an answer is Seam's own word; a proxy, a load balancer, a
	// gateway or a wrong SEAM_API_URL answer with anything else.
	SeamShaped bool
	// Got describes an answer without Seam's shape (its content type and,
	// for a body that is not JSON, its first printable characters), so
	// that people can tell what answered instead of Seam.
	Got string

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
	if !e.SeamShaped && e.Got != "" {
		b.WriteString(" (not Seam's error body: " + e.Got + ")")
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

// AnswerError is a 2xx answer that is not what Seam answers to the call
// (no access_code, another code's, not JSON): nothing in it is Seam's word
// about what was asked.
type AnswerError struct {
	Route     string
	RequestID string
	Problem   string
}

func (e *AnswerError) Error() string {
	s := "seam " + e.Route + ": " + e.Problem
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// Seam's not-found error types: Seam's own, and those of its fake
// (@seamapi/fake-seam-connect answers not_found for a missing access code).
var (
	accessCodeNotFound    = []string{"access_code_not_found", "not_found"}
	actionAttemptNotFound = []string{"action_attempt_not_found", "not_found"}
	anyNotFound           = []string{"access_code_not_found", "action_attempt_not_found", "device_not_found", "not_found"}
)

// seamSays reports whether err is an answer in Seam's own error shape with
// the given status and one of types.
func seamSays(err error, status int, types []string) bool {
	var e *Error
	if !errors.As(err, &e) || !e.SeamShaped || e.Status != status {
		return false
	}
	return slices.Contains(types, e.Type)
}

// IsAccessCodeNotFound reports whether err is Seam itself saying it has no
// such access code: a 404 in Seam's error shape whose type is
// access_code_not_found (not_found from Seam's fake). Nothing else is: an
// HTML 404 from a proxy, a gateway's JSON 404, another error type, a
// redirect or a 5xx says nothing about the code.
func IsAccessCodeNotFound(err error) bool {
	return seamSays(err, http.StatusNotFound, accessCodeNotFound)
}

// IsActionAttemptNotFound is IsAccessCodeNotFound for action attempts.
func IsActionAttemptNotFound(err error) bool {
	return seamSays(err, http.StatusNotFound, actionAttemptNotFound)
}

// IsNotFound reports whether err is Seam itself saying the thing asked for
// does not exist: a 404 in Seam's error shape with one of its not-found
// types. A 404 without Seam's shape is not.
func IsNotFound(err error) bool { return seamSays(err, http.StatusNotFound, anyNotFound) }

// IsRateLimited reports whether err is Seam's 429: the call was refused for
// going over a rate limit, even after the client's retries.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusTooManyRequests
}

// parseError builds an *Error from a non-2xx answer.
func parseError(route string, status int, headerID, contentType string, body []byte) *Error {
	e := &Error{Status: status, Route: route, RequestID: headerID}
	var env struct {
		OK    *bool `json:"ok"`
		Error *struct {
			Type      *string         `json:"type"`
			Message   *string         `json:"message"`
			Data      json.RawMessage `json:"data"`
			RequestID string          `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Type != nil {
		e.Type = *env.Error.Type
		if env.Error.Message != nil {
			e.Message = *env.Error.Message
		}
		if env.Error.RequestID != "" {
			e.RequestID = env.Error.RequestID
		}
		var data map[string]any
		if len(env.Error.Data) > 0 && json.Unmarshal(env.Error.Data, &data) == nil {
			e.Data = data
		}
		e.SeamShaped = env.OK != nil && !*env.OK && e.Type != "" && env.Error.Message != nil
	}
	if !e.SeamShaped {
		e.Got = describeBody(contentType, body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// describeBody says what an answer without Seam's error shape was, for
// people: its content type, and the start of a body that is not JSON (an
// HTML error page names the proxy that sent it). A JSON body is not quoted:
// it could be a misrouted answer carrying a PIN.
func describeBody(contentType string, body []byte) string {
	ct := contentType
	if ct == "" {
		ct = "no content type"
	}
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return ct + ", empty body"
	case json.Valid(trimmed):
		return ct + ", a JSON body without Seam's error shape"
	}
	return ct + `, body starting "` + printable(trimmed, 80) + `"`
}

// printable is the start of b as one line of at most n printable runes
// (valid UTF-8, whitespace runs folded), for quoting an unknown body.
func printable(b []byte, n int) string {
	var out strings.Builder
	space := false
	for _, r := range string(b) {
		if n == 0 {
			out.WriteString("…")
			break
		}
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case r == utf8.RuneError || !unicode.IsPrint(r) || r == '"' || r == '\\':
			r = '?'
		}
		if space && out.Len() > 0 {
			out.WriteByte(' ')
			n--
		}
		space = false
		out.WriteRune(r)
		n--
	}
	return out.String()
}
