package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// record stores codewatch's own events for code.
func (e *swEnv) record(ds ...lifecycle.Delivery) []lifecycle.Result {
	e.t.Helper()
	res, err := e.store.Record(e.ctx, ds, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func requested(code, attempt string, at time.Time) lifecycle.Delivery {
	return lifecycle.OwnEvent("cw_request_"+attempt, lifecycle.TypeDeletionRequested, at,
		lifecycle.CodeRef{AccessCodeID: code, DeviceID: swDevice},
		lifecycle.AttemptDetails{ActionAttemptID: attempt, Status: "pending", RequestedBy: "ops"})
}

// A request Seam has not turned into a deletion within the removal timeout
// is overdue, flagged once by the sweeper; Seam's deletion then resolves it.
func TestSweepFlagsOverdueRequest(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code := seamevent.NewID()
	now := e.clock.Now()
	e.send(lifecycle.TypeSetOnDevice, code, now.Add(-2*time.Hour))
	e.record(requested(code, "aa_1", now.Add(-29*time.Minute)))
	if c := e.get(code); c.DeletionState != lifecycle.DeletionRequested || c.NeedsTroubleshooting {
		t.Fatalf("before the sweep: %s %v", c.DeletionState, c.NeedsTroubleshooting)
	}
	if res := e.sweep(0); res.Overdue != 0 {
		t.Fatalf("sweep before the timeout: %+v", res)
	}
	e.clock.Advance(2 * time.Minute)
	now = e.clock.Now()
	if res := e.sweep(0); res.Overdue != 1 {
		t.Fatalf("sweep: %+v", res)
	}
	if res := e.sweep(0); res.Overdue != 0 {
		t.Fatalf("second sweep: %+v", res)
	}
	c := e.get(code)
	if !c.NeedsTroubleshooting || *c.TroubleshootingReason != lifecycle.ReasonOverdue {
		t.Fatalf("after the sweep: %+v", c)
	}
	if as := alertsOfType(e.alerts(code), lifecycle.AlertTrouble); len(as) != 1 {
		t.Fatalf("%d trouble alerts", len(as))
	}
	// Seam's deletion now: awaiting removal, newly within its own timeout.
	e.send(lifecycle.TypeDeleted, code, now)
	c = e.get(code)
	if c.DeletionState != lifecycle.AwaitingRemoval || c.NeedsTroubleshooting {
		t.Fatalf("after Seam's deletion: %s %v", c.DeletionState, c.NeedsTroubleshooting)
	}
	if as := alertsOfType(e.alerts(code), lifecycle.AlertResolved); len(as) != 1 {
		t.Fatalf("%d resolutions", len(as))
	}
}

// Only codewatch records codewatch.* events: a signed webhook that claims
// one is kept in quarantine, and stored events carry their source.
func TestOwnEventTypesAreCodewatchs(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code := seamevent.NewID()
	forged := requested(code, "aa_forged", e.clock.Now())
	res, err := e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: forged.Body})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != lifecycle.Quarantined || !strings.HasPrefix(res.Reason, "reserved_event_type") {
		t.Fatalf("forged: %+v", res)
	}
	if _, err := e.store.GetAccessCode(e.ctx, code); lifecycle.ErrorCode(err) != lifecycle.ENotFound {
		t.Fatalf("a forged request made a code: %v", err)
	}
	e.send(lifecycle.TypeSetOnDevice, code, e.clock.Now().Add(-time.Minute))
	if r := e.record(requested(code, "aa_2", e.clock.Now())); r[0].Outcome != lifecycle.Stored {
		t.Fatalf("record: %+v", r)
	}
	// Recorded again (a retried job): a duplicate.
	if r := e.record(requested(code, "aa_2", e.clock.Now())); r[0].Outcome != lifecycle.Duplicate {
		t.Fatalf("record again: %+v", r)
	}
	c := e.get(code)
	if len(c.Events) != 2 || c.Events[0].Source != "webhook" || c.Events[1].Source != "poll" ||
		c.DeletionState != lifecycle.DeletionRequested {
		t.Fatalf("code: %s %+v", c.DeletionState, c.Events)
	}
	// Replay folds codewatch's events too.
	if _, err := e.pool.Exec(e.ctx, `UPDATE access_codes SET deletion_state = 'active', deletion_request = NULL WHERE access_code_id = $1`, code); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Replay(e.ctx, 100, nil); err != nil {
		t.Fatal(err)
	}
	if c := e.get(code); c.DeletionState != lifecycle.DeletionRequested || c.DeletionRequest == nil || c.DeletionRequest.ActionAttemptID != "aa_2" {
		t.Fatalf("after replay: %s %+v", c.DeletionState, c.DeletionRequest)
	}
}
