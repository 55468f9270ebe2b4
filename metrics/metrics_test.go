package metrics_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
)

type summary struct {
	sum   *lifecycle.StatusSummary
	err   error
	calls int
}

func (s *summary) Summarize(context.Context) (*lifecycle.StatusSummary, error) {
	s.calls++
	return s.sum, s.err
}

// The names deploy/prometheus/alerts.yml relies on are exported, with the
// state read from the store and cached between scrapes.
func TestStateGauges(t *testing.T) {
	age := int64(4000)
	last := time.Unix(1700000000, 0)
	src := &summary{sum: &lifecycle.StatusSummary{
		DeletionStates:                      map[lifecycle.DeletionState]int64{lifecycle.Failed: 2, lifecycle.Removed: 7},
		ByReason:                            map[string]int64{lifecycle.ReasonFailed: 2},
		OldestUnconfirmedDeletionAgeSeconds: &age,
		LastEventReceivedAt:                 &last,
		OutboxDepth:                         3,
	}}
	m := metrics.New()
	m.RegisterState(src, time.Minute, nil)
	m.WebhooksReceived.WithLabelValues("access_code.deleted", "stored").Inc()
	m.SignatureFailures.WithLabelValues("no_matching_signature").Inc()

	want := map[string]float64{
		"codewatch_access_codes":                            9, // summed over states
		"codewatch_needs_troubleshooting":                   2,
		"codewatch_oldest_unconfirmed_deletion_age_seconds": 4000,
		"codewatch_outbox_depth":                            3,
		"codewatch_last_webhook_received_timestamp_seconds": 1700000000,
		"codewatch_database_up":                             1,
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			sums[mf.GetName()] += mt.GetGauge().GetValue()
		}
	}
	for name, v := range want {
		if sums[name] != v {
			t.Errorf("%s = %v, want %v", name, sums[name], v)
		}
	}
	if v := testutil.ToFloat64(m.WebhooksReceived.WithLabelValues("access_code.deleted", "stored")); v != 1 {
		t.Fatalf("webhooks stored %v", v)
	}
	for i := 0; i < 2; i++ {
		if _, err := m.Registry.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if src.calls != 1 {
		t.Fatalf("summarized %d times for 3 scrapes within the cache time", src.calls)
	}
}

func TestStateGaugesWhenDatabaseDown(t *testing.T) {
	m := metrics.New()
	m.RegisterState(&summary{err: errors.New("down")}, time.Minute, nil)
	if n, _ := testutil.GatherAndCount(m.Registry, "codewatch_access_codes"); n != 0 {
		t.Fatalf("state gauges exported without a database: %d", n)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "codewatch_database_up" && mf.GetMetric()[0].GetGauge().GetValue() == 0 {
			return
		}
	}
	t.Fatal("codewatch_database_up 0 not exported")
}

// Defect: any signed event_type made a new series. Only Seam's own types
// are labels; a typo or an invented type is "other".
func TestEventTypeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"access_code.deleted": "access_code.deleted", "lock.locked": "lock.locked",
		"device.connection_became_flaky": "device.connection_became_flaky",
		"":                               "unknown", "DROP TABLE": "other", "a.b.c.d.e.f": "other",
		"access_code.delted": "other", "access_code.x1": "other", "made.up": "other",
	} {
		if got := metrics.EventTypeLabel(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// The quarantine kinds made at zero are the kinds lifecycle gives those
// reasons (a label nobody could ever count would chart nothing).
func TestQuarantineKindsAreLifecycles(t *testing.T) {
	for _, body := range []string{`[1]`, `{"event_type":"access_code.deleted","access_code_id":"a"}`,
		`{"event_id":"e","event_type":"access_code.deleted"}`} {
		_, err := lifecycle.Parse([]byte(body))
		var u *lifecycle.Unusable
		if !errors.As(err, &u) || !slices.Contains(metrics.QuarantineKinds, u.Kind()) {
			t.Errorf("%s: %v is not one of %v", body, err, metrics.QuarantineKinds)
		}
	}
	if !slices.Contains(metrics.QuarantineKinds, (&lifecycle.Unusable{Reason: lifecycle.ReservedEventType}).Kind()) {
		t.Errorf("the reserved event type's kind is not made at zero")
	}
}
