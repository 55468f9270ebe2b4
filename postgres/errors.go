package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/codewatch/codewatch/lifecycle"
)

func unavailable(err error) error { return lifecycle.Unavailable(err) }

var errNotFound = &lifecycle.Error{Code: lifecycle.ENotFound, Message: "Could not find an access_code with access_code_id"}

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

// dataError reports an error caused by the values a transaction wrote (bad
// values, constraint violations), as opposed to the database being
// unreachable, overloaded or shutting down. Only a data error is worth
// splitting a batch for; whether the event itself is to blame is decided
// separately (see ingester.ownFault).
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
