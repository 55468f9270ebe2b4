package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

func newStoreT(t *testing.T, pool *pgxpool.Pool, cfg postgres.Config) *postgres.Store {
	t.Helper()
	return storetest.New(t, pool, cfg)
}

type sent struct {
	msgID string
	body  []byte
	ev    lifecycle.Event
}

// storeLifecycle makes the events of one code: created, set, deleted, then a
// delay, a failure and the confirmation, a second apart.
func storeLifecycle(t *testing.T, code string, base time.Time, types ...string) []sent {
	t.Helper()
	var out []sent
	for i, typ := range types {
		at := base.Add(time.Duration(i) * time.Second)
		id := seamevent.NewID()
		b, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, EventID: id, OccurredAt: at})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sent{msgID: "msg_" + id, body: b,
			ev: lifecycle.Event{EventID: id, Type: typ, OccurredAt: at.Truncate(time.Millisecond), AccessCodeID: code}})
	}
	return out
}

// Twenty events of one code arriving at once end in the state they give in
// order: the row lock serialises the recomputations and none is lost.
func TestIngestConcurrentEventsOfOneCode(t *testing.T) {
	pool := pgtest.New(t)
	store := newStoreT(t, pool, postgres.Config{RemovalTimeout: time.Hour})
	ctx := context.Background()
	base := time.Now().Add(-time.Minute)
	code := seamevent.NewID()
	types := []string{"access_code.created", "access_code.changed", "access_code.set_on_device"}
	for i := 0; i < 12; i++ {
		types = append(types, "access_code.changed")
	}
	types = append(types, "access_code.deleted", "access_code.delay_in_removing_from_device",
		"access_code.failed_to_remove_from_device", "access_code.changed", "access_code.removed_from_device")
	evs := storeLifecycle(t, code, base, types...)
	if len(evs) != 20 {
		t.Fatalf("%d events", len(evs))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, len(evs))
	for _, e := range evs {
		wg.Go(func() {
			<-start
			res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: e.msgID, Body: e.body})
			if err == nil && res.Outcome != lifecycle.Stored {
				err = fmt.Errorf("%s: outcome %s", e.ev.Type, res.Outcome)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.GetAccessCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	var all []lifecycle.Event
	for _, e := range evs {
		all = append(all, e.ev)
	}
	want := lifecycle.Fold(all)
	if got.DeletionState != want.DeletionState || got.DeletionState != lifecycle.Removed {
		t.Fatalf("state %s, fold says %s, want removed", got.DeletionState, want.DeletionState)
	}
	if len(got.Events) != 20 || got.NeedsTroubleshooting || *got.OnDevice {
		t.Fatalf("events %d needs %v on_device %v", len(got.Events), got.NeedsTroubleshooting, *got.OnDevice)
	}
	for i := 1; i < len(got.Events); i++ {
		if got.Events[i].OccurredAt.Before(got.Events[i-1].OccurredAt) {
			t.Fatalf("history not oldest first")
		}
	}
}

// Many codes, many concurrent deliveries, shuffled: every code ends as the
// pure fold of its events says, and each delivery is stored once.
func TestIngestGroupCommitManyCodes(t *testing.T) {
	pool := pgtest.New(t)
	store := newStoreT(t, pool, postgres.Config{RemovalTimeout: time.Hour, Workers: 3, MaxBatch: 16})
	ctx := context.Background()
	base := time.Now().Add(-10 * time.Minute)
	endings := [][]string{
		{"access_code.created", "access_code.set_on_device", "access_code.deleted", "access_code.removed_from_device"},
		{"access_code.created", "access_code.set_on_device", "access_code.deleted", "access_code.failed_to_remove_from_device"},
		{"access_code.created", "access_code.deleted"},
		{"access_code.set_on_device", "access_code.deleted", "access_code.delay_in_removing_from_device"},
		{"access_code.created", "access_code.set_on_device"},
	}
	byCode := map[string][]lifecycle.Event{}
	var all []sent
	for i := 0; i < 60; i++ {
		code := seamevent.NewID()
		evs := storeLifecycle(t, code, base, endings[i%len(endings)]...)
		for _, e := range evs {
			byCode[code] = append(byCode[code], e.ev)
		}
		all = append(all, evs...)
	}
	// Duplicates on purpose: a third of the messages twice.
	all = append(all, all[:len(all)/3]...)
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[lifecycle.Outcome]int{}
	sem := make(chan struct{}, 32)
	for _, e := range all {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: e.msgID, Body: e.body})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			outcomes[res.Outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	unique := len(all) - len(all)/4 // all = n + n/3, so n/3 = len/4
	if outcomes[lifecycle.Stored] != unique || outcomes[lifecycle.Duplicate] != len(all)-unique {
		t.Fatalf("outcomes %v, want %d stored", outcomes, unique)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&rows); err != nil || rows != unique {
		t.Fatalf("%d rows (%v), want %d", rows, err, unique)
	}
	for code, evs := range byCode {
		got, err := store.GetAccessCode(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if want := lifecycle.Fold(evs); got.DeletionState != want.DeletionState {
			t.Fatalf("%s: %s, want %s", code, got.DeletionState, want.DeletionState)
		}
	}
}

// A row the database refuses fails only its own delivery: the rest of the
// batch commits, and the refused one is kept in quarantine.
func TestIngestRefusedRowIsIsolated(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	// A constraint only this test's database has, to make Postgres refuse
	// one row that Parse accepts.
	if _, err := pool.Exec(ctx, `ALTER TABLE events ADD CONSTRAINT refuse_test CHECK (event_type <> 'test.refused')`); err != nil {
		t.Fatal(err)
	}
	store := newStoreT(t, pool, postgres.Config{Workers: 1, MaxBatch: 64})
	var wg sync.WaitGroup
	results := make([]lifecycle.Result, 30)
	errs := make([]error, 30)
	for i := range 30 {
		typ := "access_code.changed"
		if i == 7 {
			typ = "test.refused"
		}
		b, _ := seamevent.Build(typ, seamevent.Options{AccessCodeID: seamevent.NewID()})
		wg.Go(func() {
			results[i], errs[i] = store.Ingest(ctx, lifecycle.Delivery{MessageID: fmt.Sprintf("msg_refuse_%d", i), Body: b})
		})
	}
	wg.Wait()
	for i := range 30 {
		if errs[i] != nil {
			t.Fatalf("%d: %v", i, errs[i])
		}
		want := lifecycle.Stored
		if i == 7 {
			want = lifecycle.Quarantined
		}
		if results[i].Outcome != want {
			t.Fatalf("%d: %s, want %s", i, results[i].Outcome, want)
		}
	}
	var reason string
	if err := pool.QueryRow(ctx, `SELECT reason FROM quarantine WHERE message_id = 'msg_refuse_7'`).Scan(&reason); err != nil || reason != "store_failed: sqlstate 23514" {
		t.Fatalf("quarantine reason %q %v", reason, err)
	}
}

// Replay rebuilds rows from events: missing rows come back, wrong ones are
// corrected, and progress is reported.
func TestReplay(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	store := newStoreT(t, pool, postgres.Config{RemovalTimeout: time.Hour})
	base := time.Now().Add(-time.Minute)
	want := map[string]lifecycle.DeletionState{}
	for i := range 25 {
		code := seamevent.NewID()
		types := []string{"access_code.created", "access_code.set_on_device", "access_code.deleted"}
		if i%2 == 0 {
			types = append(types, "access_code.removed_from_device")
		}
		var evs []lifecycle.Event
		for _, e := range storeLifecycle(t, code, base, types...) {
			if _, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: e.msgID, Body: e.body}); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e.ev)
		}
		want[code] = lifecycle.Fold(evs).DeletionState
	}
	// Damage: rows lost and states wrong, as after an upgrade of the rules.
	if _, err := pool.Exec(ctx, `DELETE FROM access_codes WHERE access_code_id IN (SELECT access_code_id FROM access_codes LIMIT 5)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE access_codes SET deletion_state = 'active'`); err != nil {
		t.Fatal(err)
	}
	var reports []postgres.ReplayProgress
	p, err := store.Replay(ctx, 10, func(p postgres.ReplayProgress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 25 || p.Done != 25 || len(reports) != 3 {
		t.Fatalf("progress %+v, %d reports", p, len(reports))
	}
	for code, st := range want {
		got, err := store.GetAccessCode(ctx, code)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		if got.DeletionState != st {
			t.Fatalf("%s: %s, want %s", code, got.DeletionState, st)
		}
	}
	// A second replay changes nothing.
	p, err = store.Replay(ctx, 10, nil)
	if err != nil || p.Changed != 0 {
		t.Fatalf("second replay: %+v %v", p, err)
	}
}

func TestIngestAfterCloseIsUnavailable(t *testing.T) {
	pool := pgtest.New(t)
	store := postgres.New(pool, storetest.Inserter(t, pool), postgres.Config{Keys: storetest.Keys(t)})
	store.Start()
	store.Close()
	_, err := store.Ingest(context.Background(), lifecycle.Delivery{MessageID: "m", Body: []byte(`{}`)})
	if lifecycle.ErrorCode(err) != lifecycle.EUnavailable {
		t.Fatalf("got %v", err)
	}
}

// Details Postgres's jsonb would refuse (a lone surrogate, invalid UTF-8)
// must not cost the event: it is stored and folded, the raw body untouched.
func TestIngestTroubleWithOddDetails(t *testing.T) {
	pool := pgtest.New(t)
	store := newStoreT(t, pool, postgres.Config{})
	ctx := context.Background()
	code := seamevent.NewID()
	for i, body := range []string{
		`{"event_id":"odd-0","event_type":"access_code.deleted","access_code_id":"` + code + `","occurred_at":"2026-06-01T10:00:00Z"}`,
		`{"event_id":"odd-1","event_type":"access_code.failed_to_remove_from_device","access_code_id":"` + code + `","occurred_at":"2026-06-01T10:00:01Z",` +
			`"device_errors":[{"message":"half an emoji \ud83d","error_code":"device_offline"}],` +
			`"access_code_errors":[{"message":"bad bytes ` + "\xff\xfe" + `","error_code":"failed_to_remove_from_device"}]}`,
	} {
		res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: fmt.Sprintf("msg_odd_%d", i), Body: []byte(body)})
		if err != nil || res.Outcome != lifecycle.Stored {
			t.Fatalf("%d: %v %+v", i, err, res)
		}
	}
	got, err := store.GetAccessCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeletionState != lifecycle.Failed || !got.NeedsTroubleshooting {
		t.Fatalf("state %s needs %v", got.DeletionState, got.NeedsTroubleshooting)
	}
}

// Defect: a database error while writing a code's state (not the event's own
// row) quarantined a valid event and answered 200, so Seam never sent it
// again. Only the event's own content may quarantine it; anything else is
// unavailable (503), nothing is stored, and Seam's retry stores it once the
// cause is gone.
func TestStateWriteErrorIsRetriedNotQuarantined(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	// A rule only this database has, refusing the code row (not the event).
	if _, err := pool.Exec(ctx, `ALTER TABLE access_codes ADD CONSTRAINT refuse_device CHECK (device_id IS DISTINCT FROM 'refused-device')`); err != nil {
		t.Fatal(err)
	}
	store := newStoreT(t, pool, postgres.Config{Workers: 1})
	body, _ := seamevent.Build(lifecycle.TypeSetOnDevice, seamevent.Options{AccessCodeID: seamevent.NewID(), DeviceID: "refused-device"})
	d := lifecycle.Delivery{MessageID: "msg_state_refused", Body: body}
	_, err := store.Ingest(ctx, d)
	if lifecycle.ErrorCode(err) != lifecycle.EUnavailable {
		t.Fatalf("ingest when the code row is refused: %v, want unavailable", err)
	}
	var events, quarantined int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM quarantine)`).Scan(&events, &quarantined); err != nil {
		t.Fatal(err)
	}
	if events != 0 || quarantined != 0 {
		t.Fatalf("%d events and %d quarantined after a refused state write, want none", events, quarantined)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE access_codes DROP CONSTRAINT refuse_device`); err != nil {
		t.Fatal(err)
	}
	if res, err := store.Ingest(ctx, d); err != nil || res.Outcome != lifecycle.Stored {
		t.Fatalf("Seam's retry: %+v %v, want stored", res, err)
	}
}

// quarantine retry re-ingests what this version can use: stored, duplicates
// and still-unusable rows are counted; used rows leave quarantine in the
// transaction that stores them.
func TestRetryQuarantine(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	store := newStoreT(t, pool, postgres.Config{RemovalTimeout: time.Hour})
	code, dupCode, reusedCode := seamevent.NewID(), seamevent.NewID(), seamevent.NewID()
	build := func(typ, code string) []byte {
		b, _ := seamevent.Build(typ, seamevent.Options{AccessCodeID: code})
		return b
	}
	ingest := func(msg string, body []byte) {
		t.Helper()
		if _, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: msg, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	ingest("msg_bad", []byte(`not json`))
	dupBody := build(lifecycle.TypeDeleted, dupCode)
	ingest("msg_dup_first", dupBody)
	ingest("msg_reused", build(lifecycle.TypeSetOnDevice, reusedCode))
	// Rows an older version quarantined: bodies this version accepts.
	for _, q := range []struct {
		msg, reason string
		body        []byte
	}{
		{"msg_fixed", "invalid_occurred_at: refused by an older version", build(lifecycle.TypeDeleted, code)},
		{"msg_dup_later", "invalid_occurred_at: refused by an older version", dupBody},
		{"msg_reused", lifecycle.QuarantineMessageIDReused, build(lifecycle.TypeDeleted, reusedCode)},
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO quarantine (message_id, reason, raw) VALUES ($1, $2, $3)`, q.msg, q.reason, q.body); err != nil {
			t.Fatal(err)
		}
	}
	// By reason: only the older version's refusals.
	res, err := store.RetryQuarantine(ctx, postgres.QuarantineRetry{Reason: "invalid_occurred_at"}, nil)
	if err != nil || res != (postgres.QuarantineRetryResult{Stored: 1, Duplicates: 1}) {
		t.Fatalf("retry by reason: %+v %v, want 1 stored and 1 duplicate", res, err)
	}
	if c, err := store.GetAccessCode(ctx, code); err != nil || c.DeletionState != lifecycle.AwaitingRemoval {
		t.Fatalf("the re-ingested deletion did not reach its code: %+v %v", c, err)
	}
	var reports []postgres.QuarantineRetryResult
	res, err = store.RetryQuarantine(ctx, postgres.QuarantineRetry{}, func(r postgres.QuarantineRetryResult) { reports = append(reports, r) })
	if err != nil || res != (postgres.QuarantineRetryResult{Stored: 1, Unusable: 1}) || len(reports) != 1 {
		t.Fatalf("retry all: %+v %v (progress %v), want the reused message stored and the bad one still unusable", res, err, reports)
	}
	if c, err := store.GetAccessCode(ctx, reusedCode); err != nil || len(c.Events) != 2 {
		t.Fatalf("the body signed under a reused message id: %+v %v", c, err)
	}
	var left []string
	rs, _ := pool.Query(ctx, `SELECT message_id || ' ' || reason FROM quarantine ORDER BY id`)
	for rs.Next() {
		var s string
		_ = rs.Scan(&s)
		left = append(left, s)
	}
	rs.Close()
	if len(left) != 1 || !strings.HasPrefix(left[0], "msg_bad not_json") {
		t.Fatalf("left in quarantine: %q, want only msg_bad", left)
	}
}

// Defect (issue 19, point 8): a quarantine retry only parsed the body again,
// skipping the webhook's other checks: whatever a row was quarantined for, a
// body claiming a codewatch.* type was then stored. Retried bodies go
// through the webhook's gate (lifecycle.Admit): such a body, and one whose
// time codewatch cannot write back, stay; a backfilled body is stored with
// the source a backfill gives it.
func TestRetryQuarantineAppliesWebhookChecks(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	store := newStoreT(t, pool, postgres.Config{RemovalTimeout: time.Hour})
	code, backfilled := seamevent.NewID(), seamevent.NewID()
	for _, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
		body, _ := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, OccurredAt: time.Now().Add(-time.Minute)})
		if _, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	forged := lifecycle.OwnEvent("cw_forged", lifecycle.TypeAccessCodeGone, time.Now(), lifecycle.CodeRef{AccessCodeID: code},
		lifecycle.PollDetails{Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}).Body
	late, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: seamevent.NewID()})
	late = bytes.Replace(late, []byte(`"occurred_at":"`), []byte(`"occurred_at":"9999-12-31T23:30:00-01:00","x":"`), 1)
	fromBackfill, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: backfilled})
	for _, q := range []struct {
		msg, reason string
		body        []byte
	}{
		{"msg_forged", "store_failed: sqlstate 57014", forged},
		{"msg_late", "store_failed: sqlstate 57014", late},
		{lifecycle.BackfillMessagePrefix + "ev_1#00", "store_failed: sqlstate 57014", fromBackfill},
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO quarantine (message_id, reason, raw) VALUES ($1, $2, $3)`, q.msg, q.reason, q.body); err != nil {
			t.Fatal(err)
		}
	}
	res, err := store.RetryQuarantine(ctx, postgres.QuarantineRetry{Reason: "store_failed"}, nil)
	if err != nil || res != (postgres.QuarantineRetryResult{Stored: 1, Unusable: 2}) {
		t.Fatalf("retry: %+v %v, want the backfilled body stored and two still unusable", res, err)
	}
	if c, err := store.GetAccessCode(ctx, code); err != nil || c.DeletionState != lifecycle.AwaitingRemoval {
		t.Fatalf("the code a forged codewatch.* body named: %+v %v, want it still awaiting removal", c, err)
	}
	if c, err := store.GetAccessCode(ctx, backfilled); err != nil || len(c.Events) != 1 || c.Events[0].Source != lifecycle.SourcePoll {
		t.Fatalf("the backfilled body: %+v %v, want it stored with source poll", c, err)
	}
	left := map[string]string{}
	rs, _ := pool.Query(ctx, `SELECT message_id, reason FROM quarantine`)
	for rs.Next() {
		var m, r string
		_ = rs.Scan(&m, &r)
		left[m] = r
	}
	rs.Close()
	if len(left) != 2 || !strings.HasPrefix(left["msg_forged"], "reserved_event_type") || !strings.HasPrefix(left["msg_late"], "invalid_time") {
		t.Fatalf("left in quarantine: %q", left)
	}
}

// Defect: an svix-id reused with a different body was answered as a
// duplicate and the new body kept nowhere. Seam signed it: it is kept in
// quarantine (message_id_reused) and answered as such (200, so Seam stops);
// its retries are duplicates; a true retry of either body stays a duplicate.
func TestMessageIDReusedWithADifferentBody(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	store := newStoreT(t, pool, postgres.Config{})
	code := seamevent.NewID()
	first, _ := seamevent.Build(lifecycle.TypeSetOnDevice, seamevent.Options{AccessCodeID: code})
	second, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: code})
	third := []byte(`not even JSON, but signed`)
	ingest := func(body []byte) lifecycle.Result {
		t.Helper()
		res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: "msg_reused", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := ingest(first); res.Outcome != lifecycle.Stored {
		t.Fatalf("first body: %+v", res)
	}
	for i, c := range []struct {
		body []byte
		want lifecycle.Outcome
	}{
		{second, lifecycle.Quarantined}, {second, lifecycle.Duplicate},
		{first, lifecycle.Duplicate}, {third, lifecycle.Quarantined}, {third, lifecycle.Duplicate},
	} {
		res := ingest(c.body)
		// An unusable body is quarantined for what it is (not_json here).
		wantReason := lifecycle.QuarantineMessageIDReused
		if bytes.Equal(c.body, third) {
			wantReason = "not_json: body is not a JSON object"
		}
		if res.Outcome != c.want || (c.want == lifecycle.Quarantined && res.Reason != wantReason) {
			t.Fatalf("step %d: %+v, want %s", i, res, c.want)
		}
	}
	// Two different bodies under one new message id at once.
	a, _ := seamevent.Build(lifecycle.TypeCreated, seamevent.Options{AccessCodeID: seamevent.NewID()})
	b, _ := seamevent.Build(lifecycle.TypeCreated, seamevent.Options{AccessCodeID: seamevent.NewID()})
	var wg sync.WaitGroup
	outs := make([]lifecycle.Result, 2)
	for i, body := range [][]byte{a, b} {
		wg.Go(func() {
			res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: "msg_race", Body: body})
			if err != nil {
				t.Error(err)
			}
			outs[i] = res
		})
	}
	wg.Wait()
	got := []lifecycle.Outcome{outs[0].Outcome, outs[1].Outcome}
	if !slices.Contains(got, lifecycle.Stored) || !slices.Contains(got, lifecycle.Quarantined) {
		t.Fatalf("two bodies under one new message id: %v, want one stored and one quarantined", got)
	}
	var events, reused, all int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM quarantine
		WHERE reason = 'message_id_reused'), (SELECT count(*) FROM quarantine)`).Scan(&events, &reused, &all); err != nil {
		t.Fatal(err)
	}
	if events != 2 || reused != 2 || all != 3 {
		t.Fatalf("%d events, %d reused bodies and %d in quarantine, want 2, 2 and 3", events, reused, all)
	}
}
