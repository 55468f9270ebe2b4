package alert

import (
	"errors"
	"slices"
)

// StatusError is a sink's answer other than 2xx (a redirect included: never
// followed, see post).
type StatusError struct {
	Status int
	msg    string
}

func (e *StatusError) Error() string { return e.msg }

// PermanentError is a delivery that sending again cannot make succeed (the
// sink refused the alert itself): the worker gives it up at once, logged
// and counted, instead of retrying it until CODEWATCH_ALERT_MAX_AGE while
// the code's later alerts wait behind it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "not retried: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// refusedStatuses are the answers of the on-call services that say the
// request itself is wrong (400 invalid event, 413 too large, 422 not
// processable). Everything else is retried with backoff: 429 (PagerDuty
// sends no Retry-After: the backoff is the wait), 5xx, and 401/403/404,
// which a corrected key or URL fixes while the alert is still young.
var refusedStatuses = []int{400, 413, 422}

// permanentIfRefused makes err permanent when the sink answered one of
// refusedStatuses.
func permanentIfRefused(err error) error {
	var se *StatusError
	if errors.As(err, &se) && slices.Contains(refusedStatuses, se.Status) {
		return &PermanentError{Err: err}
	}
	return err
}
