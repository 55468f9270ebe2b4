package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"

	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// swClock is a fake clock shared by a test's Stores.
type swClock = clocktest.Clock

func newSwClock() *swClock {
	// Whole seconds: Seam bodies carry milliseconds, Postgres microseconds.
	return clocktest.New(time.Now().UTC().Truncate(time.Second))
}

// swEnv is one test's database, clock and started Store.
type swEnv struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	clock *swClock
	store *postgres.Store
	sinks []string
}

var swSinks = []string{"log", "webhook"}

func newSwEnv(t *testing.T, timeout time.Duration) *swEnv {
	t.Helper()
	pool := pgtest.New(t)
	clock := newSwClock()
	e := &swEnv{t: t, ctx: context.Background(), pool: pool, clock: clock, sinks: swSinks}
	e.store = e.newStore(pool, timeout)
	return e
}

// newStore starts another Store on pool with the env's clock and sinks.
func (e *swEnv) newStore(pool *pgxpool.Pool, timeout time.Duration) *postgres.Store {
	return storetest.New(e.t, pool, postgres.Config{RemovalTimeout: timeout, Sinks: e.sinks, Now: e.clock.Now})
}

const swDevice = "0f5d3c1e-8a4b-4c2d-9e6f-7a8b9c0d1e2f"

// send ingests one Seam event for code that occurred at at and returns its
// event id. The event must be new.
func (e *swEnv) send(typ, code string, at time.Time) string {
	e.t.Helper()
	id := seamevent.NewID()
	e.sendID(typ, code, id, at, lifecycle.Stored)
	return id
}

// sendID ingests an event with a given event id under a fresh message id and
// checks the outcome.
func (e *swEnv) sendID(typ, code, eventID string, at time.Time, want lifecycle.Outcome) {
	e.t.Helper()
	body, err := seamevent.Build(typ, seamevent.Options{EventID: eventID, AccessCodeID: code, DeviceID: swDevice, OccurredAt: at})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
	if err != nil {
		e.t.Fatalf("ingest %s for %s: %v", typ, code, err)
	}
	if res.Outcome != want {
		e.t.Fatalf("ingest %s for %s: outcome %q, want %q", typ, code, res.Outcome, want)
	}
}

func (e *swEnv) get(code string) *lifecycle.AccessCode {
	e.t.Helper()
	c, err := e.store.GetAccessCode(e.ctx, code)
	if err != nil {
		e.t.Fatalf("get %s: %v", code, err)
	}
	return c
}

func (e *swEnv) sweep(repeat time.Duration) lifecycle.SweepResult {
	e.t.Helper()
	res, err := e.store.Sweep(e.ctx, repeat)
	if err != nil {
		e.t.Fatalf("sweep: %v", err)
	}
	return res
}

// swAlert is one row of the alerts outbox.
type swAlert struct {
	ID         string
	Type       string
	Payload    lifecycle.AlertPayload
	Raw        map[string]any
	Deliveries []string // sinks, sorted
}

// alerts returns code's alerts, oldest first, with their delivery sinks.
func (e *swEnv) alerts(code string) []swAlert {
	e.t.Helper()
	rs, err := e.pool.Query(e.ctx, `SELECT a.alert_id::text, a.type, a.payload::text,
			COALESCE((SELECT array_agg(sink ORDER BY sink) FROM alert_deliveries d WHERE d.alert_id = a.alert_id), '{}')
		FROM alerts a WHERE a.access_code_id = $1 ORDER BY a.sequence`, code)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rs.Close()
	var out []swAlert
	for rs.Next() {
		var a swAlert
		var payload string
		if err := rs.Scan(&a.ID, &a.Type, &payload, &a.Deliveries); err != nil {
			e.t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(payload), &a.Payload); err != nil {
			e.t.Fatalf("alert payload: %v", err)
		}
		if err := json.Unmarshal([]byte(payload), &a.Raw); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rs.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// alertsOfType filters alerts by type.
func alertsOfType(as []swAlert, typ string) []swAlert {
	var out []swAlert
	for _, a := range as {
		if a.Type == typ {
			out = append(out, a)
		}
	}
	return out
}

// checkAlert checks the common shape of an alert row.
func (e *swEnv) checkAlert(a swAlert, typ, code string) {
	e.t.Helper()
	if a.Type != typ || a.Payload.Type != typ {
		e.t.Errorf("alert type %q (payload %q), want %q", a.Type, a.Payload.Type, typ)
	}
	if a.Payload.AlertID != a.ID {
		e.t.Errorf("payload alert_id %q, row alert_id %q", a.Payload.AlertID, a.ID)
	}
	if a.Payload.AccessCodeID != code || a.Payload.DeviceID != swDevice {
		e.t.Errorf("alert for code %q device %q, want %q %q", a.Payload.AccessCodeID, a.Payload.DeviceID, code, swDevice)
	}
	if fmt.Sprint(a.Deliveries) != fmt.Sprint(e.sinks) {
		e.t.Errorf("alert %s deliveries %v, want one per sink %v", a.ID, a.Deliveries, e.sinks)
	}
}

func (e *swEnv) countAlerts(where string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM alerts WHERE `+where, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func strp(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestSweepFlagsOverdueDeletionOnceAndRemovalResolves(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	code := seamevent.NewID()
	t0 := e.clock.Now()
	e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-time.Hour))
	deletedAt := t0
	e.send(lifecycle.TypeDeleted, code, deletedAt)

	c := e.get(code)
	if c.DeletionState != lifecycle.AwaitingRemoval || c.NeedsTroubleshooting {
		t.Fatalf("after deletion: state %s needs %v, want awaiting_removal and not flagged", c.DeletionState, c.NeedsTroubleshooting)
	}

	// Before the timeout, and exactly at it, nothing is overdue.
	for _, at := range []time.Duration{time.Minute, timeout - time.Second, timeout} {
		e.clock.Set(deletedAt.Add(at))
		if res := e.sweep(0); res.Overdue != 0 {
			t.Fatalf("sweep %s after deletion flagged %d codes, want 0", at, res.Overdue)
		}
		if c := e.get(code); c.NeedsTroubleshooting || c.TroubleshootingReason != nil {
			t.Fatalf("flagged %s after deletion (timeout %s): reason %s", at, timeout, strp(c.TroubleshootingReason))
		}
	}
	if n := len(e.alerts(code)); n != 0 {
		t.Fatalf("%d alerts before the timeout, want 0", n)
	}

	// Past it, one sweep flags the code.
	e.clock.Set(deletedAt.Add(timeout + time.Second))
	if res := e.sweep(0); res.Overdue != 1 {
		t.Fatalf("sweep after the timeout: overdue %d, want 1", res.Overdue)
	}
	c = e.get(code)
	if !c.NeedsTroubleshooting || strp(c.TroubleshootingReason) != lifecycle.ReasonOverdue || c.DeletionState != lifecycle.AwaitingRemoval {
		t.Fatalf("after sweep: needs %v reason %s state %s, want flagged removal_overdue awaiting_removal",
			c.NeedsTroubleshooting, strp(c.TroubleshootingReason), c.DeletionState)
	}
	as := e.alerts(code)
	if len(as) != 1 {
		t.Fatalf("%d alerts after the sweep, want 1", len(as))
	}
	a := as[0]
	e.checkAlert(a, lifecycle.AlertTrouble, code)
	if strp(a.Payload.TroubleshootingReason) != lifecycle.ReasonOverdue {
		t.Errorf("alert reason %s", strp(a.Payload.TroubleshootingReason))
	}
	if a.Payload.DeletionState != lifecycle.AwaitingRemoval {
		t.Errorf("alert deletion_state %s", a.Payload.DeletionState)
	}
	if a.Payload.DeletedAt == nil || !a.Payload.DeletedAt.Equal(deletedAt) {
		t.Errorf("alert deleted_at %v, want %v", a.Payload.DeletedAt, deletedAt)
	}
	if want := int64((timeout + time.Second) / time.Second); a.Payload.AgeSeconds != want {
		t.Errorf("alert age_seconds %d, want %d", a.Payload.AgeSeconds, want)
	}
	if a.Payload.NextStep == "" || a.Payload.Message == "" {
		t.Errorf("alert lacks message or next step: %+v", a.Payload)
	}
	var pending int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM alert_deliveries WHERE alert_id = $1 AND status = 'pending' AND attempts = 0`, a.ID).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != len(e.sinks) {
		t.Errorf("%d pending fresh deliveries, want %d", pending, len(e.sinks))
	}

	// Further sweeps, later still, do nothing more.
	for i := 0; i < 3; i++ {
		e.clock.Advance(time.Minute)
		if res := e.sweep(0); res.Overdue != 0 || res.Reminders != 0 {
			t.Fatalf("sweep %d after flagging: %+v, want nothing", i+2, res)
		}
	}
	if n := len(e.alerts(code)); n != 1 {
		t.Fatalf("%d alerts after more sweeps, want 1", n)
	}

	// Seam's confirmation clears the flag with one resolution.
	e.send(lifecycle.TypeRemovedFromDevice, code, e.clock.Now().Add(-time.Second))
	c = e.get(code)
	if c.DeletionState != lifecycle.Removed || c.NeedsTroubleshooting {
		t.Fatalf("after removal: state %s needs %v, want removed and not flagged", c.DeletionState, c.NeedsTroubleshooting)
	}
	as = e.alerts(code)
	res := alertsOfType(as, lifecycle.AlertResolved)
	if len(as) != 2 || len(res) != 1 {
		t.Fatalf("alerts after removal: %d (%d resolved), want 2 (1 resolved)", len(as), len(res))
	}
	e.checkAlert(res[0], lifecycle.AlertResolved, code)
	if res[0].Payload.Resolution != string(lifecycle.Removed) {
		t.Errorf("resolution %q, want %q", res[0].Payload.Resolution, lifecycle.Removed)
	}
	e.clock.Advance(24 * time.Hour)
	if r := e.sweep(time.Hour); r.Overdue != 0 || r.Reminders != 0 {
		t.Fatalf("sweep after removal: %+v, want nothing", r)
	}
	if n := len(e.alerts(code)); n != 2 {
		t.Fatalf("%d alerts after the last sweep, want 2", n)
	}
}

func TestDelayAndFailureFlaggedAtIngestNotBySweeper(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	t0 := e.clock.Now()
	for _, tc := range []struct {
		typ    string
		reason string
		state  lifecycle.DeletionState
	}{
		{lifecycle.TypeDelayInRemoving, lifecycle.ReasonDelayed, lifecycle.Delayed},
		{lifecycle.TypeFailedToRemove, lifecycle.ReasonFailed, lifecycle.Failed},
	} {
		code := seamevent.NewID()
		e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-time.Hour))
		e.send(lifecycle.TypeDeleted, code, t0.Add(-2*time.Second))
		e.send(tc.typ, code, t0.Add(-time.Second))
		c := e.get(code)
		if c.DeletionState != tc.state || !c.NeedsTroubleshooting || strp(c.TroubleshootingReason) != tc.reason {
			t.Fatalf("%s right after ingest: state %s needs %v reason %s, want %s flagged %s",
				tc.typ, c.DeletionState, c.NeedsTroubleshooting, strp(c.TroubleshootingReason), tc.state, tc.reason)
		}
		as := e.alerts(code)
		if len(as) != 1 {
			t.Fatalf("%s: %d alerts at ingest, want 1", tc.typ, len(as))
		}
		e.checkAlert(as[0], lifecycle.AlertTrouble, code)
		if strp(as[0].Payload.TroubleshootingReason) != tc.reason {
			t.Errorf("%s: alert reason %s", tc.typ, strp(as[0].Payload.TroubleshootingReason))
		}
		if len(as[0].Payload.TroubleshootingDetails) == 0 || string(as[0].Payload.TroubleshootingDetails) == "null" {
			t.Errorf("%s: alert carries no troubleshooting details", tc.typ)
		}
	}
	// The sweeper, even long past the timeout, adds nothing to either.
	e.clock.Advance(2 * timeout)
	if res := e.sweep(0); res.Overdue != 0 {
		t.Fatalf("sweep flagged %d codes already flagged at ingest", res.Overdue)
	}
	if n := e.countAlerts("true"); n != 2 {
		t.Fatalf("%d alerts after the sweep, want 2", n)
	}
}

func TestLateDeletionFlaggedAtIngest(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	code := seamevent.NewID()
	now := e.clock.Now()
	// Delivered (or retried by Svix) long after it happened.
	e.send(lifecycle.TypeSetOnDevice, code, now.Add(-2*time.Hour))
	e.send(lifecycle.TypeDeleted, code, now.Add(-timeout-time.Minute))
	c := e.get(code)
	if !c.NeedsTroubleshooting || strp(c.TroubleshootingReason) != lifecycle.ReasonOverdue {
		t.Fatalf("late deletion: needs %v reason %s, want flagged removal_overdue at ingest", c.NeedsTroubleshooting, strp(c.TroubleshootingReason))
	}
	as := e.alerts(code)
	if len(as) != 1 {
		t.Fatalf("%d alerts, want 1", len(as))
	}
	e.checkAlert(as[0], lifecycle.AlertTrouble, code)
	if res := e.sweep(0); res.Overdue != 0 {
		t.Fatalf("sweep flagged %d, want 0", res.Overdue)
	}
	if n := len(e.alerts(code)); n != 1 {
		t.Fatalf("%d alerts after the sweep, want 1", n)
	}
}

func TestRemovalTimeoutZeroNeverOverdue(t *testing.T) {
	e := newSwEnv(t, 0)
	code := seamevent.NewID()
	now := e.clock.Now()
	e.send(lifecycle.TypeSetOnDevice, code, now.Add(-1000*time.Hour))
	e.send(lifecycle.TypeDeleted, code, now.Add(-999*time.Hour))
	e.clock.Advance(1000 * time.Hour)
	if res := e.sweep(time.Hour); res.Overdue != 0 || res.Reminders != 0 {
		t.Fatalf("sweep with RemovalTimeout 0: %+v, want nothing", res)
	}
	c := e.get(code)
	if c.DeletionState != lifecycle.AwaitingRemoval || c.NeedsTroubleshooting {
		t.Fatalf("state %s needs %v, want awaiting_removal not flagged", c.DeletionState, c.NeedsTroubleshooting)
	}
	if n := e.countAlerts("true"); n != 0 {
		t.Fatalf("%d alerts, want 0", n)
	}
}

// swIngestDeletions ingests one access_code.deleted per code (enough for
// awaiting_removal: Seam sent no created event for it), concurrently so that
// group commit batches them.
func (e *swEnv) swIngestDeletions(codes []string, at time.Time) {
	e.t.Helper()
	const workers = 64
	ch := make(chan string)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for code := range ch {
				body, err := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: code, DeviceID: swDevice, OccurredAt: at})
				if err == nil {
					var res lifecycle.Result
					res, err = e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
					if err == nil && res.Outcome != lifecycle.Stored {
						err = fmt.Errorf("outcome %s", res.Outcome)
					}
				}
				if err != nil {
					errs <- err
					for range ch {
					}
					return
				}
			}
		}()
	}
	for _, c := range codes {
		ch <- c
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatalf("ingest deletions: %v", err)
	}
}

func TestConcurrentSweepersFlagEachCodeOnce(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	// A second replica: its own pool and Store on the same database.
	pool2, err := pgxpool.New(e.ctx, e.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool2.Close)
	stores := []*postgres.Store{e.store, e.newStore(pool2, timeout)}

	rounds := []int{3000, 300, 300, 300}
	if testing.Short() {
		rounds = []int{600, 100}
	}
	total := 0
	for round, n := range rounds {
		codes := make([]string, n)
		for i := range codes {
			codes[i] = seamevent.NewID()
		}
		began := time.Now()
		e.swIngestDeletions(codes, e.clock.Now())
		ingestTook := time.Since(began)
		if got := e.countAlerts("true"); got != total {
			t.Fatalf("round %d: %d alerts before the timeout, want %d", round, got, total)
		}
		e.clock.Advance(timeout + time.Second)

		// Many sweepers on both replicas at once, each sweeping repeatedly.
		const sweepers = 6
		var wg sync.WaitGroup
		var mu sync.Mutex
		flagged := 0
		errs := make(chan error, sweepers)
		start := make(chan struct{})
		for g := 0; g < sweepers; g++ {
			wg.Add(1)
			go func(s *postgres.Store) {
				defer wg.Done()
				<-start
				for i := 0; i < 3; i++ {
					res, err := s.Sweep(e.ctx, 0)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					flagged += res.Overdue
					mu.Unlock()
				}
			}(stores[g%len(stores)])
		}
		began = time.Now()
		close(start)
		wg.Wait()
		t.Logf("round %d: ingested %d deletions in %s; %d concurrent sweepers (2 replicas) flagged them in %s",
			round, n, ingestTook.Round(time.Millisecond), sweepers, time.Since(began).Round(time.Millisecond))
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: sweep: %v", round, err)
		}
		total += n
		if flagged != n {
			t.Errorf("round %d: sweepers reported %d overdue, want %d", round, flagged, n)
		}

		var alerts, codesAlerted, deliveries, needs, dup int
		err := e.pool.QueryRow(e.ctx, `SELECT
				(SELECT count(*) FROM alerts WHERE type = 'deletion.needs_troubleshooting'),
				(SELECT count(DISTINCT access_code_id) FROM alerts WHERE type = 'deletion.needs_troubleshooting'),
				(SELECT count(*) FROM alert_deliveries),
				(SELECT count(*) FROM access_codes WHERE needs_troubleshooting AND troubleshooting_reason = 'removal_overdue'),
				(SELECT count(*) FROM (SELECT access_code_id FROM alerts GROUP BY 1 HAVING count(*) > 1) d)`).
			Scan(&alerts, &codesAlerted, &deliveries, &needs, &dup)
		if err != nil {
			t.Fatal(err)
		}
		if alerts != total || codesAlerted != total || dup != 0 || needs != total || deliveries != total*len(e.sinks) {
			t.Fatalf("round %d: %d trouble alerts for %d codes (%d codes with more than one), %d deliveries, %d flagged; want %d, %d, 0, %d, %d",
				round, alerts, codesAlerted, dup, deliveries, needs, total, total, total*len(e.sinks), total)
		}
		if n := e.countAlerts("type <> 'deletion.needs_troubleshooting'"); n != 0 {
			t.Fatalf("round %d: %d other alerts, want 0", round, n)
		}
	}
}

func TestSweepReminders(t *testing.T) {
	const timeout = 30 * time.Minute
	const repeat = 4 * time.Hour
	e := newSwEnv(t, timeout)
	t0 := e.clock.Now()

	failed := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, failed, t0.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, failed, t0.Add(-2*time.Second))
	e.send(lifecycle.TypeFailedToRemove, failed, t0.Add(-time.Second)) // trouble alert at t0

	overdue := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, overdue, t0.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, overdue, t0)
	flaggedAt := e.clock.Advance(timeout + time.Second) // trouble alert at t0+timeout+1s
	if res := e.sweep(repeat); res.Overdue != 1 || res.Reminders != 0 {
		t.Fatalf("first sweep: %+v, want 1 overdue and no reminder", res)
	}

	reminders := func(code string) []swAlert { return alertsOfType(e.alerts(code), lifecycle.AlertReminder) }
	step := func(at time.Time, wantFailed, wantOverdue int) {
		t.Helper()
		e.clock.Set(at)
		res := e.sweep(repeat)
		if got := []int{len(reminders(failed)), len(reminders(overdue))}; got[0] != wantFailed || got[1] != wantOverdue {
			t.Fatalf("at t0+%s: reminders (failed, overdue) = %v, want [%d %d] (sweep %+v)", at.Sub(t0), got, wantFailed, wantOverdue, res)
		}
	}

	// Nothing before 4h after each trouble alert, exactly at it included.
	step(t0.Add(time.Hour), 0, 0)
	step(t0.Add(repeat), 0, 0)
	// Past it: one reminder for the failure; the overdue code's clock started
	// when the sweeper flagged it.
	step(t0.Add(repeat+time.Second), 1, 0)
	step(t0.Add(repeat+2*time.Second), 1, 0)
	step(flaggedAt.Add(repeat), 1, 0)
	step(flaggedAt.Add(repeat+time.Second), 1, 1)
	// One per window: the next is due 4h after the previous reminder.
	step(t0.Add(2*repeat), 1, 1)
	step(t0.Add(2*repeat+time.Second), 1, 1)
	step(t0.Add(2*repeat+2*time.Second), 2, 1)
	step(t0.Add(2*repeat+3*time.Second), 2, 1)

	for _, code := range []string{failed, overdue} {
		for _, a := range reminders(code) {
			e.checkAlert(a, lifecycle.AlertReminder, code)
			if a.Payload.TroubleshootingReason == nil || a.Payload.NextStep == "" {
				t.Errorf("reminder without reason or next step: %+v", a.Payload)
			}
		}
	}
	if r := reminders(failed)[0].Payload; strp(r.TroubleshootingReason) != lifecycle.ReasonFailed {
		t.Errorf("failure reminder reason %s", strp(r.TroubleshootingReason))
	}
	if r := reminders(overdue)[0].Payload; strp(r.TroubleshootingReason) != lifecycle.ReasonOverdue {
		t.Errorf("overdue reminder reason %s", strp(r.TroubleshootingReason))
	}

	// repeat 0: no reminders however long the trouble lasts.
	before := e.countAlerts("true")
	e.clock.Advance(100 * time.Hour)
	if res := e.sweep(0); res.Reminders != 0 {
		t.Fatalf("sweep with repeat 0 sent %d reminders", res.Reminders)
	}
	if n := e.countAlerts("true"); n != before {
		t.Fatalf("repeat 0 wrote %d alerts", n-before)
	}

	// Acknowledged trouble gets no reminders; the other code still does.
	if _, _, err := e.store.Acknowledge(e.ctx, failed, "ops@example.com", "on it", ""); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(repeat + time.Second)
	if res := e.sweep(repeat); res.Reminders != 1 {
		t.Fatalf("sweep after acknowledging one: %d reminders, want 1", res.Reminders)
	}
	if got := len(reminders(failed)); got != 2 {
		t.Fatalf("acknowledged code got a reminder: %d, want 2", got)
	}
}

// Defect: the sweeper's flagging UPDATE locked code rows in plan order
// (oldest deletion first) while ingest locks them in access_code_id order, so
// the two could deadlock. Here code a sorts first by id and was deleted last;
// a transaction standing in for an ingest batch holds a and then asks for b
// while a sweep is waiting: with one lock order there is no cycle, b is
// granted at once, and the sweep flags both afterwards.
func TestSweepLocksInIngestOrder(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newSwEnv(t, timeout)
	suffix := seamevent.NewID()
	a, b := "lockorder-a-"+suffix, "lockorder-b-"+suffix
	t0 := e.clock.Now()
	e.send(lifecycle.TypeDeleted, b, t0.Add(-2*time.Minute))
	e.send(lifecycle.TypeDeleted, a, t0.Add(-time.Minute))
	e.clock.Advance(time.Hour)
	var deadlocksBefore int64
	if err := e.pool.QueryRow(e.ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocksBefore); err != nil {
		t.Fatal(err)
	}

	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(e.ctx) //nolint:errcheck
	if _, err := tx.Exec(e.ctx, `SELECT 1 FROM access_codes WHERE access_code_id = $1 FOR UPDATE`, a); err != nil {
		t.Fatal(err)
	}
	swept := make(chan error, 1)
	var res lifecycle.SweepResult
	go func() {
		var err error
		res, err = e.store.Sweep(e.ctx, 0)
		swept <- err
	}()
	// Wait until the sweep waits for a row lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep never waited for the row lock held on a")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The ingest-like transaction now takes b. Under a second lock order
	// this would be a deadlock (Postgres aborts one side after
	// deadlock_timeout); the lock timeout keeps a regression from hanging.
	if _, err := tx.Exec(e.ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `SELECT 1 FROM access_codes WHERE access_code_id = $1 FOR UPDATE`, b); err != nil {
		t.Fatalf("locking b after a while the sweep runs: %v", err)
	}
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-swept; err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if res.Overdue != 2 {
		t.Fatalf("sweep flagged %d, want both codes", res.Overdue)
	}
	var deadlocks int64
	if err := e.pool.QueryRow(e.ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocks); err != nil {
		t.Fatal(err)
	}
	if deadlocks != deadlocksBefore {
		t.Fatalf("%d deadlocks detected", deadlocks-deadlocksBefore)
	}
}

// An alert's delivery jobs are inserted with it, one per sink, in the
// transaction that raised it (rivertest reads River's own table).
func TestAlertJobsInsertedWithTheAlert(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code := seamevent.NewID()
	t0 := e.clock.Now()
	e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, code, t0.Add(-time.Minute))
	e.send(lifecycle.TypeFailedToRemove, code, t0)
	as := e.alerts(code)
	if len(as) != 1 {
		t.Fatalf("%d alerts, want 1", len(as))
	}
	var want []rivertest.ExpectedJob
	for _, sink := range e.sinks {
		want = append(want, rivertest.ExpectedJob{Args: jobs.DeliverAlert{AlertID: as[0].ID, Sink: sink},
			Opts: &rivertest.RequireInsertedOpts{Queue: jobs.QueueAlerts}})
	}
	rivertest.RequireManyInserted[*riverpgxv5.Driver](e.ctx, t, riverpgxv5.New(e.pool), want)
}

// Defect: the overdue counter counted only the sweeper's flags. Every flag
// is reported, by reason, whoever raised it: ingest (a late deletion already
// overdue, a failure), the sweeper, a replay.
func TestEveryFlagIsReported(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	var mu sync.Mutex
	got := map[string]int{}
	store := storetest.New(t, e.pool, postgres.Config{RemovalTimeout: 30 * time.Minute, Sinks: e.sinks, Now: e.clock.Now,
		OnFlag: func(r string) { mu.Lock(); got[r]++; mu.Unlock() }})
	e.store = store
	t0 := e.clock.Now()
	late := seamevent.NewID()
	e.send(lifecycle.TypeDeleted, late, t0.Add(-time.Hour)) // overdue on arrival
	failed := seamevent.NewID()
	e.send(lifecycle.TypeDeleted, failed, t0)
	e.send(lifecycle.TypeFailedToRemove, failed, t0)
	swept := seamevent.NewID()
	e.send(lifecycle.TypeDeleted, swept, t0)
	e.clock.Advance(time.Hour)
	if res := e.sweep(0); res.Overdue != 1 {
		t.Fatalf("sweep flagged %d", res.Overdue)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[lifecycle.ReasonOverdue] != 2 || got[lifecycle.ReasonFailed] != 1 || len(got) != 2 {
		t.Fatalf("flags reported %v, want 2 removal_overdue (one at ingest, one by the sweep) and 1 failed_to_remove", got)
	}
}
