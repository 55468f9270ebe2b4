package postgres

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// retClock is a settable clock for the store.
type retClock = clocktest.Clock

var retT0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

const retDay = 24 * time.Hour

func retStore(t *testing.T, pool *pgxpool.Pool, clock *retClock) *Store {
	t.Helper()
	ins, err := jobs.NewInserter(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := datakeys.Generate("test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := datakeys.Parse(entry)
	if err != nil {
		t.Fatal(err)
	}
	s := New(pool, ins, Config{RemovalTimeout: 30 * time.Minute, Sinks: []string{"log", "webhook"}, Now: clock.Now, Keys: keys})
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// retIngest stores events of the given types for code, occurring at the
// clock's time a second apart, and fails the test unless each is stored. It
// may run on any goroutine.
func retIngest(t *testing.T, s *Store, clock *retClock, code string, types ...string) {
	t.Helper()
	for i, typ := range types {
		body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, OccurredAt: clock.Now().Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Error(err)
			return
		}
		res, err := s.Ingest(context.Background(), lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
		if err != nil || res.Outcome != lifecycle.Stored {
			t.Errorf("ingest %s for %s: %+v %v", typ, code, res, err)
			return
		}
	}
}

// retCounts is what the database holds for one code.
type retCounts struct {
	Events, Alerts, Deliveries int
	Row                        bool
	State                      lifecycle.DeletionState
}

func retCount(t *testing.T, pool *pgxpool.Pool, code string) retCounts {
	t.Helper()
	var c retCounts
	var state *string
	err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM events WHERE access_code_id = $1),
			(SELECT count(*) FROM alerts WHERE access_code_id = $1),
			(SELECT count(*) FROM alert_deliveries d JOIN alerts a USING (alert_id) WHERE a.access_code_id = $1),
			(SELECT deletion_state FROM access_codes WHERE access_code_id = $1)`, code).
		Scan(&c.Events, &c.Alerts, &c.Deliveries, &state)
	if err != nil {
		t.Fatal(err)
	}
	if state != nil {
		c.Row, c.State = true, lifecycle.DeletionState(*state)
	}
	return c
}

func retTotals(t *testing.T, pool *pgxpool.Pool) (events, alerts, deliveries, codes int) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM alerts),
		(SELECT count(*) FROM alert_deliveries), (SELECT count(*) FROM access_codes)`).Scan(&events, &alerts, &deliveries, &codes)
	if err != nil {
		t.Fatal(err)
	}
	return
}

// retPrune runs Prune and returns the per-table counts it reported.
func retPrune(t *testing.T, s *Store, retention time.Duration) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	var mu sync.Mutex
	if _, err := s.Prune(context.Background(), retention, 0, func(table string, n int64) {
		mu.Lock()
		got[table] += n
		mu.Unlock()
	}); err != nil {
		t.Fatalf("prune: %v", err)
	}
	return got
}

func TestPruneRetention(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	clock := clocktest.New(retT0)
	s := retStore(t, pool, clock)
	const retention = 90 * retDay

	// At t0: codes that end up terminal, and codes that stay open.
	troubled := seamevent.NewID() // failed, then removed: two alerts
	retIngest(t, s, clock, troubled, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove, lifecycle.TypeRemovedFromDevice)
	notProgrammed := seamevent.NewID()
	retIngest(t, s, clock, notProgrammed, lifecycle.TypeCreated, lifecycle.TypeDeleted, "lock.locked")
	awaiting := seamevent.NewID()
	retIngest(t, s, clock, awaiting, lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted)
	failed := seamevent.NewID()
	retIngest(t, s, clock, failed, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove)
	reopened := seamevent.NewID() // removed at t0, programmed again later
	retIngest(t, s, clock, reopened, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice)
	active := seamevent.NewID()
	retIngest(t, s, clock, active, lifecycle.TypeCreated, lifecycle.TypeSetOnDevice)
	// More terminal codes than one prune batch holds.
	bulk := make([]string, pruneBatch+57)
	var wg sync.WaitGroup
	for i := range bulk {
		bulk[i] = seamevent.NewID()
		wg.Go(func() {
			retIngest(t, s, clock, bulk[i], lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice)
		})
		if i%16 == 15 {
			wg.Wait()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	clock.Set(retT0.Add(retDay))
	boundary := seamevent.NewID() // terminal at t0+1d exactly
	retIngest(t, s, clock, boundary, lifecycle.TypeCreated, lifecycle.TypeDeleted)
	clock.Set(retT0.Add(10 * retDay))
	retIngest(t, s, clock, reopened, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted)
	clock.Set(retT0.Add(80 * retDay))
	recent := seamevent.NewID() // terminal at t0+80d
	retIngest(t, s, clock, recent, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice)

	before := map[string]retCounts{}
	for _, c := range []string{troubled, notProgrammed, awaiting, failed, reopened, active, boundary, recent} {
		before[c] = retCount(t, pool, c)
	}
	wantStates := map[string]lifecycle.DeletionState{troubled: lifecycle.Removed, notProgrammed: lifecycle.DeletedNotProgrammed, awaiting: lifecycle.AwaitingRemoval,
		failed: lifecycle.Failed, reopened: lifecycle.AwaitingRemoval, active: lifecycle.Active, boundary: lifecycle.DeletedNotProgrammed, recent: lifecycle.Removed}
	for c, want := range wantStates {
		if before[c].State != want {
			t.Fatalf("setup: %s is %s, want %s", c, before[c].State, want)
		}
	}
	if b := before[troubled]; b.Alerts != 2 || b.Deliveries != 4 {
		t.Fatalf("setup: the troubled code has %d alerts and %d deliveries, want 2 and 4", b.Alerts, b.Deliveries)
	}
	ev0, al0, de0, co0 := retTotals(t, pool)

	// 91 days after t0.
	clock.Set(retT0.Add(91 * retDay))
	t.Run("retention 0 keeps everything", func(t *testing.T) {
		for _, r := range []time.Duration{0, -time.Hour} {
			if got := retPrune(t, s, r); len(got) != 0 {
				t.Errorf("Prune(%s) reported deletions %v", r, got)
			}
			if ev, al, de, co := retTotals(t, pool); ev != ev0 || al != al0 || de != de0 || co != co0 {
				t.Errorf("Prune(%s) deleted rows: events %d->%d alerts %d->%d deliveries %d->%d codes %d->%d", r, ev0, ev, al0, al, de0, de, co0, co)
			}
		}
	})

	got := retPrune(t, s, retention)
	// Pruned: the troubled, not-programmed and bulk codes, terminal at t0.
	wantCodes := int64(2 + len(bulk))
	wantEvents := int64(before[troubled].Events + before[notProgrammed].Events + 3*len(bulk))
	if got["access_codes"] != wantCodes || got["events"] != wantEvents || got["alerts"] != int64(before[troubled].Alerts) {
		t.Errorf("prune reported %v, want access_codes %d, events %d, alerts %d", got, wantCodes, wantEvents, before[troubled].Alerts)
	}
	for _, c := range append([]string{troubled, notProgrammed}, bulk...) {
		if n := retCount(t, pool, c); n.Row || n.Events != 0 || n.Alerts != 0 || n.Deliveries != 0 {
			t.Errorf("%s terminal 91 days ago was not pruned: %+v", c, n)
			break
		}
	}
	// Kept: open codes whatever their age, and codes terminal for less than
	// the retention (the boundary one exactly 90 days ago: not older).
	for _, c := range []string{awaiting, failed, reopened, active, boundary, recent} {
		if n := retCount(t, pool, c); n != before[c] {
			t.Errorf("%s (%s) was touched by prune: %+v, before %+v", c, before[c].State, n, before[c])
		}
	}
	if ev, al, de, co := retTotals(t, pool); int64(ev0-ev) != wantEvents || int64(co0-co) != wantCodes ||
		al0-al != before[troubled].Alerts || de0-de != before[troubled].Deliveries {
		t.Errorf("totals: events %d->%d alerts %d->%d deliveries %d->%d codes %d->%d", ev0, ev, al0, al, de0, de, co0, co)
	}
	if _, err := s.GetAccessCode(context.Background(), troubled); lifecycle.ErrorCode(err) != lifecycle.ENotFound {
		t.Errorf("a pruned code is still served: %v", err)
	}
	if got := retPrune(t, s, retention); got["access_codes"] != 0 || got["events"] != 0 {
		t.Errorf("a second prune deleted more: %v", got)
	}

	// Strictly older than the retention: a microsecond later the boundary
	// code goes.
	clock.Set(retT0.Add(91*retDay + time.Microsecond))
	if got := retPrune(t, s, retention); got["access_codes"] != 1 || retCount(t, pool, boundary).Row {
		t.Errorf("the code terminal exactly 90 days ago is not pruned once older: %v", got)
	}

	// A late event for a pruned code recreates its row from what is left.
	retIngest(t, s, clock, troubled, lifecycle.TypeRemovedFromDevice)
	c, err := s.GetAccessCode(context.Background(), troubled)
	if err != nil {
		t.Fatalf("late event for a pruned code: %v", err)
	}
	if c.DeletionState != lifecycle.Active || len(c.Events) != 1 || c.Events[0].EventType != lifecycle.TypeRemovedFromDevice || c.NeedsTroubleshooting {
		t.Errorf("recreated row: state %s, %d events, needs %v; want active with the one late event", c.DeletionState, len(c.Events), c.NeedsTroubleshooting)
	}

	// 171 days after t0 the recent code is 91 days terminal; the open ones
	// stay, and so does the recreated (active) one.
	clock.Set(retT0.Add(171 * retDay))
	got = retPrune(t, s, retention)
	if got["access_codes"] != 1 || retCount(t, pool, recent).Row {
		t.Errorf("at t0+171d: prune reported %v; the code terminal at t0+80d should be the only one pruned", got)
	}
	for _, c := range []string{awaiting, failed, reopened, active} {
		if n := retCount(t, pool, c); n != before[c] {
			t.Errorf("open code %s (%s) pruned: %+v", c, before[c].State, n)
		}
	}
	if !retCount(t, pool, troubled).Row {
		t.Error("the recreated active code was pruned")
	}
}

// Prune running while late events arrive for the codes it deletes: no event
// is left without its code's row, no row without events, and every row is
// the fold of the events that remain.
func TestPruneConcurrentWithLateEvents(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	clock := clocktest.New(retT0)
	s := retStore(t, pool, clock)
	// Terminal a minute apart, so prune takes them in this order while the
	// late events come in the opposite order: the two meet in the middle.
	codes := make([]string, 300)
	for i := range codes {
		codes[i] = seamevent.NewID()
		clock.Set(retT0.Add(time.Duration(i) * time.Minute))
		retIngest(t, s, clock, codes[i], lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice)
	}
	if t.Failed() {
		t.FailNow()
	}
	clock.Set(retT0.Add(100 * retDay))
	var wg sync.WaitGroup
	gate := make(chan struct{})

	stop := make(chan struct{})
	var prunes, pruned atomic.Int64
	var pruneErr atomic.Value
	pruneDone := make(chan struct{})
	go func() {
		defer close(pruneDone)
		<-gate
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := s.Prune(context.Background(), 90*retDay, 0, func(table string, n int64) {
				if table == "access_codes" {
					pruned.Add(n)
				}
			})
			if err != nil {
				pruneErr.Store(err)
				return
			}
			prunes.Add(1)
		}
	}()
	var failures atomic.Int64
	next := make(chan string)
	for range 8 {
		wg.Go(func() {
			<-gate
			for code := range next {
				body, _ := seamevent.Build("access_code.changed", seamevent.Options{AccessCodeID: code, OccurredAt: clock.Now()})
				if _, err := s.Ingest(context.Background(), lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body}); err != nil {
					failures.Add(1)
					t.Errorf("late event for %s: %v", code, err)
				}
			}
		})
	}
	close(gate)
	for i := range codes {
		next <- codes[len(codes)-1-i]
	}
	close(next)
	wg.Wait()
	close(stop)
	<-pruneDone
	if err := pruneErr.Load(); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if failures.Load() > 0 {
		t.Fatalf("%d late events failed", failures.Load())
	}

	ctx := context.Background()
	var orphanEvents, emptyRows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events e WHERE access_code_id IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM access_codes c WHERE c.access_code_id = e.access_code_id)`).Scan(&orphanEvents); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM access_codes c
		WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.access_code_id = c.access_code_id)`).Scan(&emptyRows); err != nil {
		t.Fatal(err)
	}
	if orphanEvents != 0 || emptyRows != 0 {
		t.Errorf("%d events without their code's row, %d rows without events", orphanEvents, emptyRows)
	}
	var survivors, recreated, gone int
	for _, code := range codes {
		evs := retLoadEvents(t, pool, code)
		n := retCount(t, pool, code)
		if len(evs) == 0 {
			gone++
			continue
		}
		st := lifecycle.Fold(evs)
		if n.State != st.DeletionState {
			t.Errorf("%s: row %s, fold of its %d events %s", code, n.State, len(evs), st.DeletionState)
		}
		if len(evs) == 1 {
			recreated++
		} else {
			survivors++
		}
	}
	t.Logf("%d prune passes deleted %d codes while %d late events arrived: %d codes recreated from the late event alone, "+
		"%d pruned with their late event (it arrived first), %d kept whole",
		prunes.Load(), pruned.Load(), len(codes), recreated, gone, survivors)
}

// retLoadEvents loads one code's events the way ingest does.
func retLoadEvents(t *testing.T, pool *pgxpool.Pool, code string) []lifecycle.Event {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT event_id, event_type, COALESCE(occurred_at, created_at, received_at),
			COALESCE(workspace_id, ''), COALESCE(device_id, ''), COALESCE(connected_account_id, ''), details
		FROM events WHERE access_code_id = $1 AND event_type LIKE 'access_code.%'`, code)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []lifecycle.Event
	for rs.Next() {
		e := lifecycle.Event{AccessCodeID: code}
		if err := rs.Scan(&e.EventID, &e.Type, &e.OccurredAt, &e.WorkspaceID, &e.DeviceID, &e.ConnectedAccountID, &e.Details); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// Defect: retention's DELETE omitted the partial index's predicate, so it
// scanned the whole events table for every batch. Each prune statement must
// be able to use its index: with sequential scans priced out, a statement
// that can use the index does; one that cannot still shows a Seq Scan.
func TestPruneStatementsUseTheirIndexes(t *testing.T) {
	pool := pgtest.New(t)
	ids := []string{"a", "b"}
	cutoff := time.Now()
	for _, c := range []struct {
		sql   string
		args  []any
		index string
	}{
		{pruneCodeEventsSQL, []any{ids}, "events_access_code_idx"},
		{pruneCodeOtherSQL, []any{ids}, "events_code_other_idx"},
		{pruneAlertsSQL, []any{ids}, "alerts_code_sequence_idx"},
		{pruneUnownedSQL, []any{cutoff, pruneBatch}, "events_unowned_received_idx"},
		{pruneQuarantineSQL, []any{cutoff, pruneBatch}, "quarantine_received_idx"},
	} {
		plan := explainNoSeqScan(t, pool, c.sql, c.args...)
		if !strings.Contains(plan, c.index) {
			t.Errorf("%s\ndoes not use %s:\n%s", c.sql, c.index, plan)
		}
	}
	// The statement as it was: no partial-index predicate, no index.
	if plan := explainNoSeqScan(t, pool, `DELETE FROM events WHERE access_code_id = ANY($1)`, ids); strings.Contains(plan, "events_access_code_idx") {
		t.Errorf("the check cannot tell: the old statement uses the index too:\n%s", plan)
	}
}

func explainNoSeqScan(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rs, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// Retention also prunes quarantined deliveries and events in no code's
// history with the same horizon, and keeps events that name a code still
// kept.
func TestPruneQuarantineAndUnownedEvents(t *testing.T) {
	pool := pgtest.New(t)
	clock := clocktest.New(retT0)
	s := retStore(t, pool, clock)
	ctx := context.Background()
	live := seamevent.NewID()
	retIngest(t, s, clock, live, lifecycle.TypeSetOnDevice)
	send := func(typ, code string) string {
		t.Helper()
		body, _ := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, OccurredAt: clock.Now()})
		msg := seamevent.NewMessageID()
		if _, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: msg, Body: body}); err != nil {
			t.Fatal(err)
		}
		return msg
	}
	oldDevice, newDevice := send("device.disconnected", ""), send("device.connected", "")
	oldUnlockLive := send("lock.unlocked", live)
	oldUnlockGone := send("lock.unlocked", seamevent.NewID())
	oldQ, newQ := "msg_q_old", "msg_q_new"
	for _, m := range []string{oldQ, newQ} {
		if res, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: m, Body: []byte(`not json`)}); err != nil || res.Outcome != lifecycle.Quarantined {
			t.Fatalf("quarantine %s: %+v %v", m, res, err)
		}
	}
	// Age the "old" rows past the horizon.
	if _, err := pool.Exec(ctx, `UPDATE events SET received_at = $2 WHERE message_id = ANY($1)`,
		[]string{oldDevice, oldUnlockLive, oldUnlockGone}, retT0.Add(-100*retDay)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE quarantine SET received_at = $2 WHERE message_id = $1`, oldQ, retT0.Add(-100*retDay)); err != nil {
		t.Fatal(err)
	}
	got := retPrune(t, s, 90*retDay)
	if got["events"] != 2 || got["quarantine"] != 1 {
		t.Errorf("prune reported %v, want 2 events (old device event, old unlock of an unknown code) and 1 quarantined", got)
	}
	var left []string
	rs, _ := pool.Query(ctx, `SELECT message_id FROM events UNION ALL SELECT message_id FROM quarantine ORDER BY 1`)
	left, _ = pgx.CollectRows(rs, pgx.RowTo[string])
	want := map[string]bool{newDevice: true, oldUnlockLive: true, newQ: true}
	for _, m := range []string{oldDevice, oldUnlockGone, oldQ} {
		if slices.Contains(left, m) {
			t.Errorf("%s was kept", m)
		}
	}
	for m := range want {
		if !slices.Contains(left, m) {
			t.Errorf("%s was pruned", m)
		}
	}
}
