package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/verify"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testPlan(t *testing.T, seed uint64) ([]*code, []*delivery) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now()
	slots := uniformSlots(start, 5*time.Second, 40)
	slots = append(slots, wave(start.Add(2*time.Second), 50)...)
	return plan(rng, defaultMix, slots, 40)
}

// The plan sends every lifecycle whole, duplicates are what they claim to
// be, and in-order lifecycles are scheduled in order.
func TestPlan(t *testing.T) {
	codes, dels := testPlan(t, 1)
	inPlan := map[*delivery]int{}
	for _, d := range dels {
		inPlan[d]++
	}
	msgEvent := map[string]*event{}
	var shuffled, same, fresh int
	for _, c := range codes {
		if len(c.events) != len(kindTypes[c.kind]) {
			t.Fatalf("code %s: %d events for kind %s", c.id, len(c.events), c.kind)
		}
		if c.shuffled {
			shuffled++
		}
		var prev time.Time
		for i, e := range c.events {
			if len(e.deliveries) == 0 {
				t.Fatalf("event %s has no delivery", e.id)
			}
			orig := e.deliveries[0]
			if orig.dup != dupNone {
				t.Fatalf("event %s: first delivery is a duplicate", e.id)
			}
			if !c.shuffled && i > 0 && orig.sched.Before(prev) {
				t.Errorf("code %s in order, but event %d scheduled before event %d", c.id, i, i-1)
			}
			prev = orig.sched
			for _, d := range e.deliveries {
				if inPlan[d] != 1 {
					t.Fatalf("delivery %s of event %s is in the plan %d times", d.msgID, e.id, inPlan[d])
				}
				if d.sched.IsZero() || d.sched.Before(orig.sched) {
					t.Errorf("delivery %s (%s) scheduled %v, original %v", d.msgID, d.dup, d.sched, orig.sched)
				}
				switch d.dup {
				case dupSameID:
					same++
					if d.msgID != orig.msgID {
						t.Errorf("same-id duplicate has svix-id %s, original %s", d.msgID, orig.msgID)
					}
				case dupNewID, dupNone:
					if d.dup == dupNewID {
						fresh++
					}
					if o, ok := msgEvent[d.msgID]; ok {
						t.Errorf("svix-id %s used for events %s and %s", d.msgID, o.id, e.id)
					}
					msgEvent[d.msgID] = e
				}
				if d.ev != e {
					t.Errorf("delivery %s points at another event", d.msgID)
				}
			}
		}
	}
	total := 0
	for _, c := range codes {
		for _, e := range c.events {
			total += len(e.deliveries)
		}
	}
	if total != len(dels) {
		t.Errorf("plan has %d deliveries, the codes %d", len(dels), total)
	}
	if shuffled == 0 || same == 0 || fresh == 0 {
		t.Errorf("plan lacks variety: %d shuffled, %d same-id and %d new-id duplicates", shuffled, same, fresh)
	}
	// A lifecycle never has two steps at one instant, except a duplicate
	// racing its original.
	seen := map[*code]map[time.Time]*event{}
	for _, d := range dels {
		c := d.ev.code
		if seen[c] == nil {
			seen[c] = map[time.Time]*event{}
		}
		if o, ok := seen[c][d.sched]; ok && !(o == d.ev && d.sameSlot) {
			t.Errorf("code %s has two steps at %v", c.id, d.sched)
		}
		seen[c][d.sched] = d.ev
	}
}

func TestRetryDelay(t *testing.T) {
	for _, c := range []struct {
		retry int
		want  time.Duration
	}{{0, 0}, {1, 200 * time.Millisecond}, {2, 500 * time.Millisecond}, {6, 8 * time.Second}, {20, 8 * time.Second}} {
		if got := retryDelay(c.retry); got != c.want {
			t.Errorf("retryDelay(%d) = %v, want %v", c.retry, got, c.want)
		}
	}
}

func TestPercentileAndRecovery(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(ds, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of nothing = %v", p)
	}
	t0 := time.Now()
	acks := []time.Time{t0.Add(3 * time.Second), t0, t0.Add(10 * time.Second)}
	max, ok := recoveryTimes([]time.Time{t0.Add(time.Second), t0.Add(8 * time.Second)}, acks)
	if !ok || max != 2*time.Second {
		t.Errorf("recovery = %v, %v; want 2s, true", max, ok)
	}
	if _, ok := recoveryTimes([]time.Time{t0.Add(11 * time.Second)}, acks); ok {
		t.Error("a fault with no 2xx after it counts as recovered")
	}
}

// newTestCode makes a code of kind whose deliveries are acknowledged in
// event order, one second apart, except as changed by the caller.
func newTestCode(kind string) *code {
	rng := rand.New(rand.NewPCG(7, 7))
	m := mix{Window: 1}
	for range 10000 {
		c, _ := newCode(rng, m, time.Now())
		if c.kind != kind {
			continue
		}
		t0 := time.Now()
		for i, e := range c.events {
			for _, d := range e.deliveries {
				d.started, d.acked = true, true
				d.firstSend = t0.Add(time.Duration(i) * time.Second)
				d.ackAt = d.firstSend.Add(10 * time.Millisecond)
			}
		}
		return c
	}
	panic("no code of kind " + kind)
}

func TestExpectAlerts(t *testing.T) {
	stored := map[string]bool{}
	c := newTestCode(kindFailThenRemoved)
	if got := expectAlerts(c, stored); got.troubleMin != 1 || got.troubleMax != 1 || !got.resolvedEqualsTrouble {
		t.Errorf("failure acknowledged before the removal was sent: %+v, want exactly one alert and its resolution", got)
	}
	// The removal sent before the failure was acknowledged: the two may
	// commit together, and then there is no trouble to alert on.
	rem := c.events[len(c.events)-1]
	rem.deliveries[0].firstSend = c.events[3].deliveries[0].ackAt.Add(-time.Millisecond)
	if got := expectAlerts(c, stored); got.troubleMin != 0 || got.troubleMax != 1 || !got.resolvedEqualsTrouble {
		t.Errorf("racing removal: %+v", got)
	}
	d := newTestCode(kindDelayed)
	if got := expectAlerts(d, stored); got.troubleMin != 1 || got.troubleMax != 1 || got.resolvedEqualsTrouble {
		t.Errorf("delayed: %+v, want one alert and no resolution", got)
	}
	// The delay never acknowledged (given up, not stored): no alert.
	for _, x := range d.events[3].deliveries {
		x.acked, x.gaveUp = false, true
	}
	if got := expectAlerts(d, stored); got.troubleMax != 0 {
		t.Errorf("delay not acknowledged: %+v, want no alert", got)
	}
	// ... but stored anyway (its answer was lost): the alert is due.
	stored[d.events[3].id] = true
	if got := expectAlerts(d, stored); got.troubleMin != 1 {
		t.Errorf("delay stored without an answer: %+v, want one alert", got)
	}
	if got := expectAlerts(newTestCode(kindRemoved), map[string]bool{}); got.troubleMax != 0 {
		t.Errorf("removed: %+v, want no alert", got)
	}
}

// signedServer answers webhooks: verify the signature, then status(msgID,
// attempt).
func signedServer(t *testing.T, secret string, status func(msgID string, attempt int) int) *httptest.Server {
	v, err := verify.New([]string{secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read", 400)
			return
		}
		id, err := v.Verify(body, r.Header)
		if err != nil {
			t.Errorf("driver sent a bad signature: %v", err)
			http.Error(w, "sig", 401)
			return
		}
		mu.Lock()
		attempts[id]++
		n := attempts[id]
		mu.Unlock()
		w.WriteHeader(status(id, n))
	}))
}

// The driver retries a 503 with a fresh signature and the same svix-id, and
// keeps a ledger that balances.
func TestDriverRetriesUntilAcked(t *testing.T) {
	secret := newSecret()
	srv := signedServer(t, secret, func(_ string, attempt int) int {
		if attempt == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	defer srv.Close()
	_, dels := testPlan(t, 2)
	dels = dels[:20]
	now := time.Now()
	for _, d := range dels {
		d.sched = now
	}
	drv := newDriver(srv.URL, secret, 10*time.Second)
	drv.run(context.Background(), dels)
	if !drv.wait(10 * time.Second) {
		t.Fatal("driver did not finish")
	}
	r := &result{dupAnswers: map[string]int{}}
	checkLedger(r, drv, dels)
	if len(r.violations) > 0 || r.void {
		t.Fatalf("violations: %v", r.violations)
	}
	// Same svix-id duplicates share a retry counter on the server, so count
	// distinct ids.
	ids := map[string]bool{}
	for _, d := range dels {
		ids[d.msgID] = true
	}
	if r.acked != 20 || drv.statuses[503] < len(ids) || r.retries < len(ids) {
		t.Errorf("acked %d, 503s %d, retries %d; want 20, >= %d, >= %d", r.acked, drv.statuses[503], r.retries, len(ids), len(ids))
	}
}

// A message never acknowledged is given up after the budget; the ledger
// still balances and the run reports it.
func TestDriverGivesUp(t *testing.T) {
	secret := newSecret()
	srv := signedServer(t, secret, func(string, int) int { return http.StatusInternalServerError })
	defer srv.Close()
	_, dels := testPlan(t, 3)
	dels = dels[:5]
	now := time.Now()
	for _, d := range dels {
		d.sched = now
	}
	drv := newDriver(srv.URL, secret, 800*time.Millisecond)
	drv.run(context.Background(), dels)
	if !drv.wait(10 * time.Second) {
		t.Fatal("driver did not finish")
	}
	r := &result{dupAnswers: map[string]int{}}
	checkLedger(r, drv, dels)
	if r.void {
		t.Fatalf("ledger void: %v", r.violations)
	}
	if r.gaveUp != 5 || r.acked != 0 {
		t.Errorf("gave up %d, acked %d; want 5, 0", r.gaveUp, r.acked)
	}
	if !hasViolation(r, "availability") {
		t.Errorf("given-up messages not reported: %v", r.violations)
	}
	if drv.statuses[500] == 0 {
		t.Error("500s not recorded")
	}
}

func hasViolation(r *result, prefix string) bool {
	for _, v := range r.violations {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

// The checks pass on what the real Store does with a plan, and catch each
// kind of damage: a lost event, a wrong state, an alert twice or never.
func TestChecksCatchViolations(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	store := storetest.New(t, pool, postgres.Config{Sinks: []string{"webhook"}, RemovalTimeout: time.Hour})

	codes, dels := testPlan(t, 4)
	sort.SliceStable(dels, func(i, j int) bool { return dels[i].sched.Before(dels[j].sched) })
	// Deliver in plan order, one at a time, as acknowledged messages.
	for _, d := range dels {
		d.started, d.attempts, d.firstSend = true, 1, time.Now()
		res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: d.msgID, Body: d.ev.body})
		if err != nil {
			t.Fatal(err)
		}
		d.acked, d.ackAt, d.ackDuplicate = true, time.Now(), res.Outcome == lifecycle.Duplicate
	}
	drv := &driver{}
	drv.sent.Store(int64(len(dels)))
	drv.acked.Store(int64(len(dels)))

	var receipts []receipt
	rows, err := pool.Query(ctx, `SELECT alert_id::text, type, access_code_id, sequence FROM alerts ORDER BY created_at, sequence`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var rc receipt
		if err := rows.Scan(&rc.AlertID, &rc.Type, &rc.AccessCodeID, &rc.Sequence); err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, rc)
	}
	rows.Close()
	if len(receipts) == 0 {
		t.Fatal("the plan raised no alert")
	}
	if _, err := pool.Exec(ctx, `UPDATE alert_deliveries SET status = 'sent', attempts = 1`); err != nil {
		t.Fatal(err)
	}

	checkAll := func(receipts []receipt, crashy bool) *result {
		r := &result{dupAnswers: map[string]int{}}
		checkLedger(r, drv, dels)
		stored, err := checkStore(ctx, r, pool, dels)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkStates(ctx, r, pool, codes, stored); err != nil {
			t.Fatal(err)
		}
		if err := checkAlerts(ctx, r, pool, codes, stored, receipts, nil, crashy); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := checkAll(receipts, false); len(r.violations) > 0 {
		t.Fatalf("the real Store fails the checks:\n%s", strings.Join(r.violations, "\n"))
	}

	// An alert received twice: a violation, unless a crash explains it
	// with an attempt per receipt.
	// (Repeated where a repeat arrives: before the code's next alert.)
	twice := append([]receipt{receipts[0]}, receipts...)
	if r := checkAll(twice, false); !hasViolation(r, "alerts: alert "+receipts[0].AlertID) {
		t.Errorf("alert received twice not reported: %v", r.violations)
	}
	if r := checkAll(twice, true); !hasViolation(r, "alerts: alert "+receipts[0].AlertID) {
		t.Errorf("alert received twice with one attempt passed: %v", r.violations)
	}
	if _, err := pool.Exec(ctx, `UPDATE alert_deliveries SET attempts = 2 WHERE alert_id = $1`, receipts[0].AlertID); err != nil {
		t.Fatal(err)
	}
	if r := checkAll(twice, true); len(r.violations) > 0 || r.redeliv != 1 {
		t.Errorf("explained redelivery: %v (redelivered %d)", r.violations, r.redeliv)
	}
	// A code's alerts out of order: its resolution before its trouble.
	swapped := append([]receipt(nil), receipts...)
	swappedCode := ""
	for i := range swapped {
		for j := i + 1; j < len(swapped) && swappedCode == ""; j++ {
			if swapped[j].AccessCodeID == swapped[i].AccessCodeID {
				swapped[i], swapped[j] = swapped[j], swapped[i]
				swappedCode = swapped[i].AccessCodeID
			}
		}
	}
	if swappedCode == "" {
		t.Fatal("the plan raised no code with two alerts")
	}
	if r := checkAll(swapped, false); !hasViolation(r, "alerts: out of order for code "+swappedCode) {
		t.Errorf("alerts out of order not reported: %v", r.violations)
	}
	// An alert that never arrived.
	if r := checkAll(receipts[1:], false); !hasViolation(r, "alerts: alert "+receipts[0].AlertID) {
		t.Errorf("missing alert not reported: %v", r.violations)
	}

	// A wrong state.
	victim := codes[0]
	if _, err := pool.Exec(ctx, `UPDATE access_codes SET deletion_state = 'active' WHERE access_code_id = $1`, victim.id); err != nil {
		t.Fatal(err)
	}
	if r := checkAll(receipts, false); !hasViolation(r, "state: code "+victim.id) {
		t.Errorf("wrong state not reported: %v", r.violations)
	}

	// A lost event: acknowledged, not stored.
	ev := codes[1].events[0]
	if _, err := pool.Exec(ctx, `DELETE FROM events WHERE event_id = $1`, ev.id); err != nil {
		t.Fatal(err)
	}
	if r := checkAll(receipts, false); r.lost != 1 || !hasViolation(r, "store: event "+ev.id) {
		t.Errorf("lost event: lost %d, violations %v", r.lost, r.violations)
	}

	// A stored event nobody sent.
	if _, err := pool.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, raw) VALUES ('msg_x', 'evt_x', 'access_code.created', '{}')`); err != nil {
		t.Fatal(err)
	}
	if r := checkAll(receipts, false); r.duplicated != 1 {
		t.Errorf("phantom event: duplicated %d, violations %v", r.duplicated, r.violations)
	}
}
