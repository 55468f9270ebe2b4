package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Code classifies an Error. handlers maps each to one HTTP status, in one place.
type Code string

// Error codes.
const (
	ENotFound    Code = "not_found"
	EInvalid     Code = "invalid_input"
	EConflict    Code = "conflict"
	EUnavailable Code = "unavailable"
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

func unavailable(err error) error {
	return &Error{Code: EUnavailable, Message: "the database is unavailable; retry later", Err: err}
}

func errorf(code Code, format string, a ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// errRowVanished means a locked code's row was deleted (by retention)
// under a transaction; running it again recreates the row.
var errRowVanished = errors.New("access code row deleted concurrently")

// sqlState returns the Postgres error code of err, or "".
func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// retryable reports a transaction worth running again as it was:
// serialization failures and deadlocks.
func retryable(err error) bool {
	if errors.Is(err, errRowVanished) {
		return true
	}
	switch sqlState(err) {
	case "40001", "40P01":
		return true
	}
	return false
}

// dataError reports an error caused by the rows a transaction wrote (bad
// values, constraint violations), as opposed to the database being
// unreachable, overloaded or shutting down. Only a data error is worth
// splitting a batch for.
func dataError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	code := sqlState(err)
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "22", "23", "54": // data exception, integrity violation, program limit
		return true
	}
	return false
}
