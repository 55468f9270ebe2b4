package lifecycle

import (
	"math/big"
	"testing"
	"time"
)

// Defect (issue 19, sibling of point 7): an alert's age_seconds was
// now.Sub(deleted_at), which saturates at about 292 years: a deletion at a
// time codewatch accepts (0001 to 9999) got a wrong age. Ages are whole
// seconds (truncated toward zero) whatever the span.
func TestAgeSecondsSpansEveryStoredTime(t *testing.T) {
	now := time.Date(2026, 6, 1, 10, 0, 0, 500_000_000, time.UTC)
	nanos := func(t time.Time) *big.Int {
		n := big.NewInt(t.Unix())
		n.Mul(n, big.NewInt(1e9))
		return n.Add(n, big.NewInt(int64(t.Nanosecond())))
	}
	for _, at := range []time.Time{MinTime, time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-90 * time.Second),
		now.Add(-1500 * time.Millisecond), now, now.Add(time.Hour), MaxTime.Add(-time.Microsecond),
		MinTime.Add(time.Second - time.Nanosecond), MaxTime.Add(-time.Second + time.Nanosecond)} {
		d := new(big.Int).Sub(nanos(now), nanos(at))
		want := d.Quo(d, big.NewInt(1e9)).Int64()
		if got := AgeSeconds(now, at); got != want {
			t.Errorf("AgeSeconds(%s): %d, want %d", at, got, want)
		}
		st := State{AccessCodeID: "ac", DeletionState: AwaitingRemoval, DeletedAt: &at}
		if p := NewAlert(now, "al", 1, AlertTrouble, st, nil, "", LockStatus{}); p.AgeSeconds != want {
			t.Errorf("alert for a deletion at %s: age_seconds %d, want %d", at, p.AgeSeconds, want)
		}
	}
}
