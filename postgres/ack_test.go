package postgres_test

import (
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// ackFailedCode ingests a code whose deletion Seam failed to carry out and
// returns the failure's event id.
func (e *swEnv) ackFailedCode(code string) string {
	e.t.Helper()
	t0 := e.clock.Now()
	e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, code, t0.Add(-2*time.Second))
	return e.send(lifecycle.TypeFailedToRemove, code, t0.Add(-time.Second))
}

func TestAcknowledgeClearsTroubleOnce(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code := seamevent.NewID()
	failureID := e.ackFailedCode(code)
	if c := e.get(code); !c.NeedsTroubleshooting {
		t.Fatal("failed removal not flagged")
	}

	ackAt := e.clock.Advance(10 * time.Minute)
	const by, note = "ops@example.com", "checked in the lock app: code gone"
	got, changed, err := e.store.Acknowledge(e.ctx, code, by, note, "")
	if err != nil || !changed {
		t.Fatalf("acknowledge: changed %v, %v", changed, err)
	}
	check := func(c *lifecycle.AccessCode, what string) {
		t.Helper()
		if c.NeedsTroubleshooting {
			t.Errorf("%s: still needs troubleshooting", what)
		}
		if c.AcknowledgedAt == nil || !c.AcknowledgedAt.Equal(ackAt) {
			t.Errorf("%s: acknowledged_at %v, want %v", what, c.AcknowledgedAt, ackAt)
		}
		if strp(c.AcknowledgedBy) != by || strp(c.AcknowledgementNote) != note {
			t.Errorf("%s: acknowledged by %s note %s", what, strp(c.AcknowledgedBy), strp(c.AcknowledgementNote))
		}
		if c.DeletionState != lifecycle.Failed {
			t.Errorf("%s: deletion_state %s, want failed (acknowledging does not rewrite history)", what, c.DeletionState)
		}
	}
	check(got, "Acknowledge's answer")
	check(e.get(code), "GetAccessCode")

	as := e.alerts(code)
	resolved := alertsOfType(as, lifecycle.AlertResolved)
	if len(as) != 2 || len(resolved) != 1 {
		t.Fatalf("alerts after acknowledging: %d (%d resolved), want 2 (1 resolved)", len(as), len(resolved))
	}
	r := resolved[0]
	e.checkAlert(r, lifecycle.AlertResolved, code)
	if r.Payload.Resolution != "acknowledged" || r.Payload.AcknowledgedBy != by || r.Payload.Note != note {
		t.Errorf("resolution alert: resolution %q by %q note %q", r.Payload.Resolution, r.Payload.AcknowledgedBy, r.Payload.Note)
	}
	if strp(r.Payload.TroubleshootingReason) != lifecycle.ReasonFailed {
		t.Errorf("resolution alert reason %s, want the acknowledged trouble's", strp(r.Payload.TroubleshootingReason))
	}

	// Again, later and by someone else: nothing changes, no alert.
	e.clock.Advance(time.Minute)
	again, changed, err := e.store.Acknowledge(e.ctx, code, "someone-else", "again", "")
	if err != nil || changed {
		t.Fatalf("second acknowledge: changed %v, %v; want an idempotent no-op", changed, err)
	}
	check(again, "second Acknowledge's answer")
	if n := len(e.alerts(code)); n != 2 {
		t.Fatalf("%d alerts after acknowledging twice, want 2", n)
	}

	// The same trouble redelivered, by Svix (same message) or by Seam under
	// another message id (same event id), does not flag it again, nor does
	// recomputing the code for an unrelated event.
	e.sendID(lifecycle.TypeFailedToRemove, code, failureID, e.clock.Now().Add(-time.Minute), lifecycle.Duplicate)
	e.send("access_code.changed", code, e.clock.Now())
	if c := e.get(code); c.NeedsTroubleshooting {
		t.Fatal("acknowledged trouble flagged again by a redelivery or recompute")
	}
	if n := len(e.alerts(code)); n != 2 {
		t.Fatalf("%d alerts after redelivery, want 2", n)
	}
	e.clock.Advance(5 * time.Hour)
	if res := e.sweep(time.Hour); res.Overdue != 0 || res.Reminders != 0 {
		t.Fatalf("sweep after acknowledging: %+v, want nothing", res)
	}

	// New trouble after the acknowledgement flags it again.
	e.send(lifecycle.TypeFailedToRemove, code, e.clock.Now().Add(-time.Second))
	c := e.get(code)
	if !c.NeedsTroubleshooting || strp(c.TroubleshootingReason) != lifecycle.ReasonFailed {
		t.Fatalf("new failure after acknowledgement: needs %v reason %s, want flagged", c.NeedsTroubleshooting, strp(c.TroubleshootingReason))
	}
	as = e.alerts(code)
	trouble := alertsOfType(as, lifecycle.AlertTrouble)
	if len(as) != 3 || len(trouble) != 2 {
		t.Fatalf("alerts after new trouble: %d (%d trouble), want 3 (2 trouble)", len(as), len(trouble))
	}
	e.checkAlert(trouble[1], lifecycle.AlertTrouble, code)

	// And that trouble can be acknowledged in turn.
	if _, _, err := e.store.Acknowledge(e.ctx, code, by, "second look", ""); err != nil {
		t.Fatal(err)
	}
	if c := e.get(code); c.NeedsTroubleshooting || strp(c.AcknowledgementNote) != "second look" {
		t.Fatalf("second trouble acknowledged: needs %v note %s", c.NeedsTroubleshooting, strp(c.AcknowledgementNote))
	}
	if n := len(alertsOfType(e.alerts(code), lifecycle.AlertResolved)); n != 2 {
		t.Fatalf("%d resolution alerts, want 2", n)
	}
}

func TestAcknowledgeOverdueStaysQuiet(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	code := seamevent.NewID()
	t0 := e.clock.Now()
	e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, code, t0)
	e.clock.Advance(timeout + time.Second)
	if res := e.sweep(0); res.Overdue != 1 {
		t.Fatalf("sweep: %+v, want 1 overdue", res)
	}
	if _, _, err := e.store.Acknowledge(e.ctx, code, "ops", "", ""); err != nil {
		t.Fatal(err)
	}
	if c := e.get(code); c.NeedsTroubleshooting {
		t.Fatal("still flagged after acknowledging")
	}
	// Later sweeps neither flag it again nor remind.
	for i := 0; i < 3; i++ {
		e.clock.Advance(5 * time.Hour)
		if res := e.sweep(4 * time.Hour); res.Overdue != 0 || res.Reminders != 0 {
			t.Fatalf("sweep %d after acknowledging: %+v, want nothing", i, res)
		}
	}
	if c := e.get(code); c.NeedsTroubleshooting {
		t.Fatal("acknowledged overdue flagged again by the sweeper")
	}
	as := e.alerts(code)
	if len(as) != 2 || len(alertsOfType(as, lifecycle.AlertResolved)) != 1 {
		t.Fatalf("alerts: %d, want trouble + resolution", len(as))
	}
	// New trouble (a failure report) is a different trouble: flagged.
	e.send(lifecycle.TypeFailedToRemove, code, e.clock.Now())
	if c := e.get(code); !c.NeedsTroubleshooting || strp(c.TroubleshootingReason) != lifecycle.ReasonFailed {
		t.Fatalf("failure after acknowledged overdue: needs %v reason %s", c.NeedsTroubleshooting, strp(c.TroubleshootingReason))
	}
	if n := len(alertsOfType(e.alerts(code), lifecycle.AlertTrouble)); n != 2 {
		t.Fatalf("%d trouble alerts, want 2", n)
	}
}

func TestAcknowledgeErrors(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	now := e.clock.Now()

	active := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, active, now.Add(-time.Hour))
	waiting := seamevent.NewID() // deleted, not yet overdue
	e.send(lifecycle.TypeSetOnDevice, waiting, now.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, waiting, now.Add(-time.Minute))
	removed := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, removed, now.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, removed, now.Add(-2*time.Minute))
	e.send(lifecycle.TypeRemovedFromDevice, removed, now.Add(-time.Minute))

	for _, code := range []string{active, waiting, removed} {
		_, _, err := e.store.Acknowledge(e.ctx, code, "ops", "nothing to see", "")
		if lifecycle.ErrorCode(err) != lifecycle.EConflict {
			t.Errorf("acknowledge %s (%s): error %v, want %s", code, e.get(code).DeletionState, err, lifecycle.EConflict)
		}
		if c := e.get(code); c.AcknowledgedAt != nil || c.AcknowledgedBy != nil {
			t.Errorf("refused acknowledgement was recorded on %s", code)
		}
	}
	_, _, err := e.store.Acknowledge(e.ctx, seamevent.NewID(), "ops", "", "")
	if lifecycle.ErrorCode(err) != lifecycle.ENotFound {
		t.Errorf("acknowledge unknown code: error %v, want %s", err, lifecycle.ENotFound)
	}
	if n := e.countAlerts("true"); n != 0 {
		t.Fatalf("%d alerts, want 0", n)
	}
}

// Issue 19, point 6: an acknowledgement is bound to the trouble that was
// shown. A failure is on screen (trouble_id A); meanwhile the lock reports
// the deleted code opening the door (critical, trouble B). Acknowledging A
// acknowledges nothing (ETroubleChanged) and the critical stays; B can be
// acknowledged. Without trouble_id, today's behaviour.
func TestAcknowledgeIsBoundToTheTroubleShown(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code := seamevent.NewID()
	e.ackFailedCode(code)
	shown := e.get(code)
	if !shown.NeedsTroubleshooting || shown.TroubleID == nil {
		t.Fatalf("failed code: needs %v trouble_id %v", shown.NeedsTroubleshooting, shown.TroubleID)
	}
	a := *shown.TroubleID
	if again := e.get(code); again.TroubleID == nil || *again.TroubleID != a {
		t.Fatalf("trouble_id not stable across reads: %v, %s", again.TroubleID, a)
	}
	e.send(lifecycle.TypeLockUnlocked, code, e.clock.Now())
	now := e.get(code)
	if now.TroubleshootingReason == nil || *now.TroubleshootingReason != lifecycle.ReasonUsedAfterDeletion || now.TroubleID == nil || *now.TroubleID == a {
		t.Fatalf("after the unlock: reason %v trouble_id %v (was %s)", now.TroubleshootingReason, now.TroubleID, a)
	}
	_, changed, err := e.store.Acknowledge(e.ctx, code, "ops", "checked the failure", a)
	if lifecycle.ErrorCode(err) != lifecycle.ETroubleChanged || changed {
		t.Fatalf("acknowledging the trouble shown before: changed %v, err %v", changed, err)
	}
	if c := e.get(code); !c.NeedsTroubleshooting || c.AcknowledgedBy != nil {
		t.Fatalf("the critical was acknowledged by a stale page: %+v", c)
	}
	if n := len(alertsOfType(e.alerts(code), lifecycle.AlertResolved)); n != 0 {
		t.Fatalf("%d resolutions sent for a refused acknowledgement", n)
	}
	got, changed, err := e.store.Acknowledge(e.ctx, code, "ops", "removed it at the lock", *now.TroubleID)
	if err != nil || !changed || got.NeedsTroubleshooting {
		t.Fatalf("acknowledging the trouble now shown: changed %v, err %v", changed, err)
	}
	// A trouble_id once the trouble has been acknowledged is a no-op, as
	// acknowledging twice is.
	if _, changed, err := e.store.Acknowledge(e.ctx, code, "ops", "again", *now.TroubleID); err != nil || changed {
		t.Fatalf("again: changed %v, err %v", changed, err)
	}
	// A code without trouble refuses a trouble_id as changed.
	quiet := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, quiet, e.clock.Now())
	if _, _, err := e.store.Acknowledge(e.ctx, quiet, "ops", "", a); lifecycle.ErrorCode(err) != lifecycle.ETroubleChanged {
		t.Fatalf("a trouble_id on a code without trouble: %v", err)
	}
}
