package postgres_test

import (
	"slices"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// A code's evidence is every event naming it, its access_code.* history and
// the others (a lock.unlocked with its access_code_id), oldest first, raw
// bodies included; a limit keeps the newest, and Total counts them all.
func TestCodeEvidence(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	t0 := e.clock.Now()
	code, other := seamevent.NewID(), seamevent.NewID()
	set := e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-3*time.Hour))
	unlocked := e.send("lock.unlocked", code, t0.Add(-2*time.Hour))
	deleted := e.send(lifecycle.TypeDeleted, code, t0.Add(-time.Hour))
	failed := e.send(lifecycle.TypeFailedToRemove, code, t0.Add(-30*time.Minute))
	e.send(lifecycle.TypeDeleted, other, t0.Add(-time.Hour))

	ev, err := e.store.CodeEvidence(e.ctx, code, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range ev.Events {
		ids = append(ids, x.EventID)
		if x.Source != "webhook" || len(x.Raw) == 0 || x.DeviceID != swDevice || x.ReceivedAt.IsZero() {
			t.Errorf("event %s: %+v", x.EventID, x)
		}
	}
	if want := []string{set, unlocked, deleted, failed}; !slices.Equal(ids, want) || ev.Total != 4 {
		t.Fatalf("evidence %v (total %d), want %v", ids, ev.Total, want)
	}
	if got := ev.Events[3]; got.EventType != lifecycle.TypeFailedToRemove || len(got.Details) == 0 ||
		!got.OccurredAt.Equal(t0.Add(-30*time.Minute)) {
		t.Errorf("the failure: %+v", got)
	}

	ev, err = e.store.CodeEvidence(e.ctx, code, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 2 || ev.Events[0].EventID != deleted || ev.Events[1].EventID != failed || ev.Total != 4 {
		t.Errorf("the newest 2: %+v, total %d", ev.Events, ev.Total)
	}
	ev, err = e.store.CodeEvidence(e.ctx, seamevent.NewID(), 10)
	if err != nil || len(ev.Events) != 0 || ev.Total != 0 || ev.Events == nil {
		t.Errorf("an unknown code: %+v %v, want an empty list", ev, err)
	}
}

// The outbox view: a code's alerts with every delivery; all deliveries by
// status and sink, newest alert first, paged without gaps or repeats; the
// counts by status.
func TestConsoleDeliveries(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	t0 := e.clock.Now()
	var codes []string
	for i := 0; i < 3; i++ {
		code := seamevent.NewID()
		codes = append(codes, code)
		e.send(lifecycle.TypeDeleted, code, t0.Add(-time.Minute))
		e.clock.Advance(time.Second)
		e.send(lifecycle.TypeFailedToRemove, code, t0)
		e.clock.Advance(time.Second)
	}
	if _, _, err := e.store.Acknowledge(e.ctx, codes[0], "alice", "checked", ""); err != nil {
		t.Fatal(err)
	}
	mine, err := e.store.CodeAlerts(e.ctx, codes[0])
	if err != nil {
		t.Fatal(err)
	}
	// Two alerts (trouble, resolution), each to both sinks.
	if len(mine) != 4 || mine[0].Sequence != 1 || mine[0].Sink != "log" || mine[1].Sink != "webhook" ||
		mine[2].Sequence != 2 || mine[2].Type != lifecycle.AlertResolved {
		t.Fatalf("the code's deliveries: %+v", mine)
	}
	// One delivered, one given up.
	for _, end := range []lifecycle.DeliveryEnd{
		{AlertID: mine[0].AlertID, Sink: "log", Status: lifecycle.DeliverySent},
		{AlertID: mine[0].AlertID, Sink: "webhook", Status: lifecycle.DeliveryGivenUp, Error: "HTTP 500"},
	} {
		if _, err := e.store.FinishDelivery(e.ctx, end, nil); err != nil {
			t.Fatal(err)
		}
	}
	counts, oldest, err := e.store.CountDeliveries(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[lifecycle.DeliveryPending] != 6 || counts[lifecycle.DeliverySent] != 1 || counts[lifecycle.DeliveryGivenUp] != 1 || oldest == nil {
		t.Errorf("counts %v, oldest pending %v", counts, oldest)
	}

	all := func(f lifecycle.DeliveryFilter) []lifecycle.AlertDelivery {
		t.Helper()
		var out []lifecycle.AlertDelivery
		for page := 0; page < 20; page++ {
			got, next, err := e.store.ListDeliveries(e.ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, got...)
			if next == nil {
				return out
			}
			f.Before = next
		}
		t.Fatal("paging does not end")
		return nil
	}
	whole := all(lifecycle.DeliveryFilter{Limit: 500})
	if len(whole) != 8 || whole[0].AccessCodeID != codes[0] || whole[0].Type != lifecycle.AlertResolved ||
		whole[7].AccessCodeID != codes[0] || whole[7].Sequence != 1 {
		t.Fatalf("every delivery, newest alert first: %+v", whole)
	}
	for _, size := range []int{1, 2, 3} {
		paged := all(lifecycle.DeliveryFilter{Limit: size})
		if len(paged) != len(whole) {
			t.Fatalf("pages of %d: %d deliveries, want %d", size, len(paged), len(whole))
		}
		for i := range paged {
			if paged[i].AlertID != whole[i].AlertID || paged[i].Sink != whole[i].Sink {
				t.Fatalf("pages of %d differ at %d", size, i)
			}
		}
	}
	given := all(lifecycle.DeliveryFilter{Status: lifecycle.DeliveryGivenUp})
	if len(given) != 1 || given[0].LastError == nil || *given[0].LastError != "HTTP 500" || given[0].GivenUpAt == nil {
		t.Errorf("given up: %+v", given)
	}
	if pend := all(lifecycle.DeliveryFilter{Status: lifecycle.DeliveryPending, Sink: "log"}); len(pend) != 3 {
		t.Errorf("pending to log: %d, want 3", len(pend))
	}
}

// Retrying one quarantined delivery: stored when it is usable now, still
// quarantined (with this version's reason) when not, not found when gone.
func TestRetryQuarantined(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code := seamevent.NewID()
	body, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: code})
	var fixed, bad int64
	if err := e.pool.QueryRow(e.ctx, `INSERT INTO quarantine (message_id, reason, raw)
		VALUES ('msg_fixed', 'invalid_occurred_at: an older version', $1) RETURNING id`, body).Scan(&fixed); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(e.ctx, `INSERT INTO quarantine (message_id, reason, raw)
		VALUES ('msg_bad', 'old reason', 'not json') RETURNING id`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	out, err := e.store.RetryQuarantined(e.ctx, fixed)
	if err != nil || out.Outcome != lifecycle.Stored {
		t.Fatalf("retry a usable body: %+v %v", out, err)
	}
	if c := e.get(code); c.DeletionState != lifecycle.AwaitingRemoval {
		t.Errorf("the stored deletion: %s", c.DeletionState)
	}
	if _, err := e.store.RetryQuarantined(e.ctx, fixed); lifecycle.ErrorCode(err) != lifecycle.ENotFound {
		t.Errorf("retry it again: %v, want not found", err)
	}
	out, err = e.store.RetryQuarantined(e.ctx, bad)
	if err != nil || out.Outcome != lifecycle.Quarantined || out.Reason == "" || out.Reason == "old reason" {
		t.Errorf("retry an unusable body: %+v %v, want it quarantined with this version's reason", out, err)
	}
}

// ListFilter.Reason selects codes by troubleshooting reason.
func TestListByReason(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	t0 := e.clock.Now()
	failed, delayed := seamevent.NewID(), seamevent.NewID()
	e.send(lifecycle.TypeDeleted, failed, t0.Add(-time.Minute))
	e.send(lifecycle.TypeFailedToRemove, failed, t0)
	e.send(lifecycle.TypeDeleted, delayed, t0.Add(-time.Minute))
	e.send(lifecycle.TypeDelayInRemoving, delayed, t0)
	for _, sort := range []string{lifecycle.SortUrgency, lifecycle.SortRecent} {
		got, _, err := e.store.ListAccessCodes(e.ctx, lifecycle.ListFilter{Reason: lifecycle.ReasonDelayed, Sort: sort})
		if err != nil || len(got) != 1 || got[0].AccessCodeID != delayed {
			t.Errorf("sort=%s reason=removal_delayed: %+v %v", sort, got, err)
		}
	}
}
