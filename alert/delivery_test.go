package alert_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

func TestDeliveryWebhookSignedAndDeliveredOnce(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	o.work(o.pool, alert.WorkerConfig{}, rcv.sink(secret))

	code, alertID := o.fail()
	o.waitSettled(1)
	rcv.noRejections()
	if got := rcv.ids(); len(got) != 1 || got[0] != alertID {
		t.Fatalf("receiver got %v, want [%s]", got, alertID)
	}
	p := rcv.payloads()[0]
	for k, want := range map[string]any{
		"type": lifecycle.AlertTrouble, "access_code_id": code, "device_id": testDevice,
		"workspace_id": testWorkspace, "troubleshooting_reason": lifecycle.ReasonFailed,
		"deletion_state": string(lifecycle.Failed), "sequence": float64(1),
	} {
		if p[k] != want {
			t.Errorf("payload %s = %v, want %v", k, p[k], want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(p["created_at"])); err != nil {
		t.Errorf("payload created_at %v: %v", p["created_at"], err)
	}
	if row := o.delivery(alertID, "webhook"); row.Status != "sent" || row.Attempts != 1 || row.SentAt == nil {
		t.Fatalf("delivery %+v, want sent after one attempt", row)
	}

	// The acknowledgement's resolution is the code's second alert.
	if _, _, err := o.store.Acknowledge(o.ctx, code, "ops", "", ""); err != nil {
		t.Fatal(err)
	}
	o.waitSettled(2)
	ps := rcv.payloads()
	if len(ps) != 2 || ps[1]["type"] != lifecycle.AlertResolved || ps[1]["sequence"] != float64(2) {
		t.Fatalf("second alert %v, want the resolution with sequence 2", ps[len(ps)-1])
	}
}

// A sink that fails is retried with growing waits, and the delivery is made
// once it answers.
func TestDeliveryRetriesWithExponentialBackoff(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	var mu sync.Mutex
	var at []time.Time
	rcv.set(func() {
		rcv.failNext = 4
		rcv.during = func(int) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
		}
	})
	o.work(o.pool, alert.WorkerConfig{BackoffBase: 100 * time.Millisecond, BackoffMax: 10 * time.Second}, rcv.sink(secret))
	_, alertID := o.fail()
	o.waitSettled(1)
	row := o.delivery(alertID, "webhook")
	if row.Status != "sent" || row.Attempts != 5 || row.LastError == nil || !strings.Contains(*row.LastError, "500") {
		t.Fatalf("delivery %+v, want sent on the fifth attempt with the last error kept", row)
	}
	if got := rcv.ids(); len(got) != 1 {
		t.Fatalf("receiver accepted %d alerts, want 1", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	// Waits of about 100, 200, 400, 800 ms (±20%), plus River's polling and
	// whatever a busy machine adds: each at least its doubling's lower
	// bound, which a backoff that does not grow cannot meet.
	for i := 1; i < len(at); i++ {
		wait, floor := at[i].Sub(at[i-1]), time.Duration(float64(100*time.Millisecond<<(i-1))*0.8)
		if wait < floor {
			t.Errorf("wait %d was %s, less than %s: not growing exponentially", i, wait, floor)
		}
	}
}

// Defect: a sink that failed once made the dispatcher retry a code's first
// alert after its backoff while it delivered the code's later alerts, so a
// receiver saw deletion.resolved before deletion.needs_troubleshooting. Now
// each code's alerts reach each sink in the order they were raised.
func TestDeliveryKeepsEachCodesOrderWhenASendFails(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	rcv.set(func() { rcv.failNext = 1 })
	o.work(o.pool, alert.WorkerConfig{BackoffBase: 300 * time.Millisecond, BackoffMax: time.Second}, rcv.sink(secret))

	// Each code: failure (1), acknowledged (2), a new failure (3), removed (4).
	const codes = 6
	var all []string
	for range codes {
		code := seamevent.NewID()
		now := o.clock.Now()
		failCode(t, o.store, now, code)
		if _, _, err := o.store.Acknowledge(o.ctx, code, "ops", "", ""); err != nil {
			t.Fatal(err)
		}
		if err := ingest(o.store, lifecycle.TypeFailedToRemove, code, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := ingest(o.store, lifecycle.TypeRemovedFromDevice, code, now); err != nil {
			t.Fatal(err)
		}
		all = append(all, code)
	}
	o.waitSettled(4 * codes)
	rcv.noRejections()
	seen := map[string][]float64{}
	for _, p := range rcv.payloads() {
		code := p["access_code_id"].(string)
		seen[code] = append(seen[code], p["sequence"].(float64))
	}
	for _, code := range all {
		if got := fmt.Sprint(seen[code]); got != "[1 2 3 4]" {
			t.Errorf("code %s: alerts arrived in sequence order %s, want [1 2 3 4]", code, got)
		}
	}
}

// Defect: a dispatcher claimed 50 deliveries under one lease and sent them
// one after another; when sends were slow, another replica claimed the rest
// and sent them again. Two replicas, a sink that takes nearly the whole
// timeout for every send: each alert still arrives once.
func TestTwoReplicasWithASlowSinkDeliverEachAlertOnce(t *testing.T) {
	o := newOutbox(t, "webhook", "slack")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	rcv.set(func() { rcv.during = func(int) { time.Sleep(400 * time.Millisecond) } })
	slack := newSlackReceiver(t)
	// Slow sends, but inside the timeout even on a loaded machine: a send
	// that times out after the receiver got it is (rightly) sent again,
	// which is not what this test is about.
	cfg := alert.WorkerConfig{SendTimeout: 2 * time.Second}
	o.work(o.newPool(), cfg, rcv.sink(secret), slack.sink())
	o.work(o.newPool(), cfg, rcv.sink(secret), slack.sink())

	const codes = 40
	var wg sync.WaitGroup
	errs := make(chan error, codes)
	for range codes {
		wg.Go(func() {
			if err := failCodeErr(o.store, o.clock.Now(), seamevent.NewID()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	o.waitSettled(2 * codes)
	rcv.noRejections()
	want := queryStrings(t, o.pool, `SELECT alert_id::text FROM alerts ORDER BY 1`)
	perWebhook := map[string]int{}
	for _, id := range rcv.ids() {
		perWebhook[id]++
	}
	perSlack := map[string]int{}
	for _, text := range slack.got() {
		i := strings.Index(text, "alert_id `")
		if i < 0 {
			t.Fatalf("slack text without alert_id: %q", text)
		}
		perSlack[strings.TrimSuffix(text[i+len("alert_id `"):], "`")]++
	}
	for _, id := range want {
		if perWebhook[id] != 1 || perSlack[id] != 1 {
			t.Errorf("alert %s delivered %d times to the webhook and %d to slack, want once each", id, perWebhook[id], perSlack[id])
		}
	}
	if len(want) != codes || len(perWebhook) != codes || len(perSlack) != codes {
		t.Errorf("%d alerts; delivered %d distinct to the webhook and %d to slack", len(want), len(perWebhook), len(perSlack))
	}
	var sentOnce int
	if err := o.pool.QueryRow(o.ctx, `SELECT count(*) FROM alert_deliveries WHERE status = 'sent' AND attempts = 1`).Scan(&sentOnce); err != nil {
		t.Fatal(err)
	}
	if sentOnce != 2*codes {
		t.Fatalf("%d deliveries sent on their one attempt, want %d", sentOnce, 2*codes)
	}
}

// Give-up rule: a delivery is retried until its alert is older than MaxAge,
// then given up (recorded, logged, counted); the code's next alert then goes
// out, in order.
func TestDeliveryGivenUpAfterMaxAgeThenTheNextGoesOut(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	rcv.set(func() { rcv.failNext = 1 << 30 })
	var givenUp, failed atomic.Int64
	var buf syncBuffer
	o.work(o.pool, alert.WorkerConfig{MaxAge: 3 * time.Second, BackoffBase: 100 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, Logger: newJSONLogger(&buf),
		Counters: alert.Counters{GivenUp: func(string) { givenUp.Add(1) }, Failed: func(string) { failed.Add(1) }}},
		rcv.sink(secret))
	code, first := o.fail()
	if _, _, err := o.store.Acknowledge(o.ctx, code, "ops", "done", ""); err != nil {
		t.Fatal(err)
	}
	ids := o.alertIDs(code)
	// From now on the sink refuses the first alert only: the second must
	// still wait for the first to be given up (one code's alerts go out in
	// order). Mending the sink only once the test saw the give-up raced the
	// worker, which tries the second at once, old enough to be given up too.
	rcv.set(func() { rcv.failNext, rcv.failID = 0, first })
	o.waitFor("the first delivery to be given up", func() bool { return o.delivery(first, "webhook").Status == "given_up" })
	o.waitSettled(2)
	row := o.delivery(first, "webhook")
	if row.Attempts < 2 || row.GivenUpAt == nil || row.LastError == nil || !strings.Contains(*row.LastError, "500") {
		t.Fatalf("first delivery %+v, want given up after several attempts with the error kept", row)
	}
	if second := o.delivery(ids[1], "webhook"); second.Status != "sent" || second.SentAt == nil || second.SentAt.Before(*row.GivenUpAt) {
		t.Fatalf("second delivery %+v, want sent after the first was given up (%v)", second, row.GivenUpAt)
	}
	if got := rcv.ids(); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("receiver accepted %v, want only the resolution %s", got, ids[1])
	}
	if givenUp.Load() != 1 || failed.Load() < 2 {
		t.Fatalf("counted %d given up and %d failed attempts", givenUp.Load(), failed.Load())
	}
	if !strings.Contains(buf.String(), first) || !strings.Contains(buf.String(), "given up") {
		t.Fatalf("the give-up is not logged:\n%s", buf.String())
	}
}

// A sink that is down for a while loses nothing: every alert arrives once,
// each code's in order, when it comes back.
func TestDeliverySinkDownLosesNothing(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newUnstartedReceiver(t, secret)
	o.work(o.pool, alert.WorkerConfig{BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, rcv.sink(secret))
	const codes = 15
	codeIDs := make([]string, codes)
	for i := range codeIDs {
		codeIDs[i] = seamevent.NewID()
		failCode(t, o.store, o.clock.Now(), codeIDs[i])
		if _, _, err := o.store.Acknowledge(o.ctx, codeIDs[i], "ops", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	o.waitFor("failed attempts while the sink is down", func() bool {
		var n int
		_ = o.pool.QueryRow(o.ctx, `SELECT count(*) FROM alert_deliveries WHERE attempts >= 2`).Scan(&n)
		return n >= codes
	})
	rcv.start()
	o.waitSettled(2 * codes)
	rcv.noRejections()
	got := map[string][]float64{}
	for _, p := range rcv.payloads() {
		got[p["access_code_id"].(string)] = append(got[p["access_code_id"].(string)], p["sequence"].(float64))
	}
	for _, c := range codeIDs {
		if fmt.Sprint(got[c]) != "[1 2]" {
			t.Errorf("code %s: got sequences %v, want [1 2]", c, got[c])
		}
	}
}

// A send that succeeds while the database briefly refuses to record it is
// recorded once the database answers again: sent once, not repeated.
func TestDeliveryRecordedAfterADatabaseHiccup(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	if _, err := o.pool.Exec(o.ctx, `ALTER TABLE alert_deliveries ADD CONSTRAINT not_yet CHECK (status <> 'sent')`); err != nil {
		t.Fatal(err)
	}
	rcv.set(func() {
		rcv.during = func(int) {
			go func() {
				time.Sleep(700 * time.Millisecond)
				if _, err := o.pool.Exec(context.Background(), `ALTER TABLE alert_deliveries DROP CONSTRAINT IF EXISTS not_yet`); err != nil {
					t.Error(err)
				}
			}()
		}
	})
	o.work(o.pool, alert.WorkerConfig{}, rcv.sink(secret))
	_, alertID := o.fail()
	o.waitSettled(1)
	if ids := rcv.ids(); len(ids) != 1 || ids[0] != alertID {
		t.Fatalf("receiver got %v, want %s once", ids, alertID)
	}
}

// A send that cannot be recorded for longer (RecordFor) is sent again, with
// the same alert_id (the receiver drops the repeat): at least once, never
// lost.
func TestDeliverySentButNotRecordedIsRepeatedWithTheSameID(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	// While this constraint stands the delivery cannot be marked sent.
	if _, err := o.pool.Exec(o.ctx, `ALTER TABLE alert_deliveries ADD CONSTRAINT not_yet CHECK (status <> 'sent')`); err != nil {
		t.Fatal(err)
	}
	rcv.set(func() {
		rcv.during = func(n int) {
			if n == 1 {
				return
			}
			if _, err := o.pool.Exec(context.Background(), `ALTER TABLE alert_deliveries DROP CONSTRAINT IF EXISTS not_yet`); err != nil {
				t.Error(err)
			}
		}
	})
	o.work(o.pool, alert.WorkerConfig{BackoffBase: 50 * time.Millisecond, RecordFor: 300 * time.Millisecond}, rcv.sink(secret))
	_, alertID := o.fail()
	o.waitSettled(1)
	ids := rcv.ids()
	if len(ids) != 2 || ids[0] != alertID || ids[1] != alertID {
		t.Fatalf("receiver got %v, want %s twice", ids, alertID)
	}
	if row := o.delivery(alertID, "webhook"); row.Status != "sent" {
		t.Fatalf("delivery %+v, want sent", row)
	}
}

// An alert pruned by retention before its delivery ends the job quietly; a
// pending delivery whose job was lost gets a new one (RequeueAlerts).
func TestDeliveryRequeueAndPrunedAlerts(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	_, lost := o.fail()
	_, pruned := o.fail()
	if _, err := o.pool.Exec(o.ctx, `DELETE FROM river_job WHERE args->>'alert_id' = $1`, lost); err != nil {
		t.Fatal(err)
	}
	if _, err := o.pool.Exec(o.ctx, `DELETE FROM alerts WHERE alert_id = $1`, pruned); err != nil {
		t.Fatal(err)
	}
	events := o.work(o.pool, alert.WorkerConfig{}, rcv.sink(secret))
	waitEvents(t, events, 1) // the pruned alert's job completes without a send
	if n, err := o.store.RequeueAlerts(o.ctx); err != nil || n != 1 {
		t.Fatalf("RequeueAlerts = %d, %v; want 1 job for the lost delivery", n, err)
	}
	if n, err := o.store.RequeueAlerts(o.ctx); err != nil || n != 0 {
		t.Fatalf("RequeueAlerts again = %d, %v; want 0 (the job exists)", n, err)
	}
	o.waitSettled(1)
	if got := rcv.ids(); len(got) != 1 || got[0] != lost {
		t.Fatalf("receiver got %v, want [%s]", got, lost)
	}
}

// waitEvents waits for n finished jobs reported by River.
func waitEvents(t *testing.T, events <-chan *river.Event, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for range n {
		select {
		case <-events:
		case <-timeout:
			t.Fatalf("timed out waiting for %d jobs to finish", n)
		}
	}
}

// Defect: a retry was timed from the failed attempt's start. When the attempt
// itself outlasted the backoff (a sink that hangs until the send timeout),
// that time was already past, and River replaced it with its default policy,
// attempt⁴ seconds: 16 s after the second attempt, hours after the tenth.
// Alerts to a sink that had been down waited hours after it came back, and
// the next_attempt_at shown was not when River would try. Now a retry is
// timed from the attempt's end.
func TestDeliveryRetryIsTimedFromTheAttemptsEnd(t *testing.T) {
	o := newOutbox(t, "webhook")
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(stop) })
	const sendTimeout, backoffMax = 500 * time.Millisecond, 200 * time.Millisecond
	o.work(o.pool, alert.WorkerConfig{SendTimeout: sendTimeout, BackoffBase: 100 * time.Millisecond, BackoffMax: backoffMax},
		alert.WebhookSink{URL: hang.URL, Secret: newSecret(t), Client: &http.Client{}})
	_, alertID := o.fail()
	var attempt int
	var attemptedAt, scheduledAt time.Time
	o.waitFor("the second attempt to fail", func() bool {
		err := o.pool.QueryRow(o.ctx, `SELECT attempt, attempted_at, scheduled_at FROM river_job
			WHERE kind = 'deliver_alert' AND args->>'alert_id' = $1 
			AND state IN ('retryable', 'available') AND coalesce(jsonb_array_length(to_jsonb(errors)), 0) = attempt`, alertID).
			Scan(&attempt, &attemptedAt, &scheduledAt)
		return err == nil && attempt >= 2
	})
	// (River makes a job due within its scheduler's tick available at once.)
	// River's default would be 2⁴ = 16 s after the attempt.
	if wait := scheduledAt.Sub(attemptedAt); wait > sendTimeout+backoffMax*2+2*time.Second {
		t.Fatalf("attempt %d at %v retried %v later, want the send timeout plus at most %v", attempt, attemptedAt, wait, backoffMax*6/5)
	}
	row := o.delivery(alertID, "webhook")
	if d := scheduledAt.Sub(row.NextAttemptAt); d < 0 || d > time.Second {
		t.Fatalf("next_attempt_at %v, River retries at %v", row.NextAttemptAt, scheduledAt)
	}
}
