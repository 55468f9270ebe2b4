package alert_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// fakeClock is the clock of a test's Store and Dispatchers.
type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock {
	return clocktest.New(time.Now().UTC().Truncate(time.Second))
}

const (
	testWorkspace = "3f1c9a2e-5b7d-4e8f-a1b2-c3d4e5f60718"
	testDevice    = "8d2e4f60-1a3b-4c5d-9e7f-0a1b2c3d4e5f"
	testTimeout   = 30 * time.Minute
	testLease     = time.Minute
)

// outbox is a test database with a Store writing alerts for sinks.
type outbox struct {
	t     *testing.T
	ctx   context.Context
	url   string
	pool  *pgxpool.Pool
	clock *fakeClock
	store *lifecycle.Store
}

func newOutbox(t *testing.T, sinks ...string) *outbox {
	t.Helper()
	o := &outbox{t: t, ctx: context.Background(), url: pgtest.NewURL(t), clock: newFakeClock()}
	o.pool = o.newPool()
	o.store = lifecycle.NewStore(o.pool, lifecycle.Config{RemovalTimeout: testTimeout, Sinks: sinks, Now: o.clock.Now})
	o.store.Start()
	t.Cleanup(o.store.Close)
	return o
}

// newPool opens another pool on the test database, as another process would.
func (o *outbox) newPool() *pgxpool.Pool {
	o.t.Helper()
	p, err := pgxpool.New(o.ctx, o.url)
	if err != nil {
		o.t.Fatal(err)
	}
	o.t.Cleanup(p.Close)
	return p
}

func (o *outbox) dispatcher(pool *pgxpool.Pool, sinks ...alert.Sink) *alert.Dispatcher {
	return alert.NewDispatcher(pool, alert.Config{
		Sinks: sinks, Now: o.clock.Now, Lease: testLease,
		BackoffBase: time.Second, BackoffMax: time.Hour,
	})
}

func ingest(s *lifecycle.Store, typ, code string, at time.Time) error {
	body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, DeviceID: testDevice, WorkspaceID: testWorkspace, OccurredAt: at})
	if err != nil {
		return err
	}
	res, err := s.Ingest(context.Background(), lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
	if err == nil && res.Outcome != lifecycle.Stored {
		err = fmt.Errorf("outcome %s", res.Outcome)
	}
	if err != nil {
		return fmt.Errorf("ingest %s: %w", typ, err)
	}
	return nil
}

// failCodeErr makes code a failed removal (one trouble alert) with store.
func failCodeErr(s *lifecycle.Store, now time.Time, code string) error {
	for _, e := range []struct {
		typ string
		at  time.Duration
	}{
		{lifecycle.TypeSetOnDevice, -time.Hour},
		{lifecycle.TypeDeleted, -10 * time.Minute},
		{lifecycle.TypeFailedToRemove, -9 * time.Minute},
	} {
		if err := ingest(s, e.typ, code, now.Add(e.at)); err != nil {
			return err
		}
	}
	return nil
}

func failCode(t *testing.T, s *lifecycle.Store, now time.Time, code string) {
	t.Helper()
	if err := failCodeErr(s, now, code); err != nil {
		t.Fatal(err)
	}
}

// fail makes a new failed code and returns it with its trouble alert's id.
func (o *outbox) fail() (code, alertID string) {
	o.t.Helper()
	code = seamevent.NewID()
	failCode(o.t, o.store, o.clock.Now(), code)
	ids := o.alertIDs(code)
	if len(ids) != 1 {
		o.t.Fatalf("%d alerts for a failed removal, want 1", len(ids))
	}
	return code, ids[0]
}

// alertIDs lists code's alerts from the outbox, oldest first.
func (o *outbox) alertIDs(code string) []string {
	o.t.Helper()
	return queryStrings(o.t, o.pool, `SELECT alert_id::text FROM alerts WHERE access_code_id = $1 ORDER BY created_at, alert_id`, code)
}

func queryStrings(t *testing.T, pool *pgxpool.Pool, q string, args ...any) []string {
	t.Helper()
	rs, err := pool.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type deliveryRow struct {
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     *string
	SentAt        *time.Time
}

func (o *outbox) delivery(alertID, sink string) deliveryRow {
	o.t.Helper()
	var d deliveryRow
	err := o.pool.QueryRow(o.ctx, `SELECT status, attempts, next_attempt_at, last_error, sent_at
		FROM alert_deliveries WHERE alert_id = $1 AND sink = $2`, alertID, sink).
		Scan(&d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastError, &d.SentAt)
	if err != nil {
		o.t.Fatalf("delivery %s/%s: %v", alertID, sink, err)
	}
	return d
}

func dispatch(t *testing.T, d *alert.Dispatcher, want int) {
	t.Helper()
	n, err := d.DispatchOnce(context.Background())
	if err != nil {
		t.Fatalf("dispatch: %v", err)
	}
	if n != want {
		t.Fatalf("dispatch claimed %d deliveries, want %d", n, want)
	}
}

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// received is one alert a receiver accepted.
type received struct {
	ID      string // webhook-id
	Payload map[string]any
}

// receiver is a webhook endpoint that verifies every alert with the svix
// library, as a customer's would, and accepts only genuine ones.
type receiver struct {
	t      *testing.T
	hook   *svix.Webhook
	srv    *httptest.Server
	client *http.Client

	mu       sync.Mutex
	failNext int // answer this many more requests with 500
	requests int
	rejected []string
	got      []received
	// during, when set, runs inside the handler before it answers.
	during func(n int)
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := newUnstartedReceiver(t, secret)
	r.srv.Start()
	return r
}

func newUnstartedReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, hook: wh, client: &http.Client{Timeout: 5 * time.Second}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	n := r.requests
	during := r.during
	fail := r.failNext > 0
	if fail {
		r.failNext--
	}
	r.mu.Unlock()
	if during != nil {
		during(n)
	}
	reject := func(code int, why string) {
		r.mu.Lock()
		r.rejected = append(r.rejected, why)
		r.mu.Unlock()
		http.Error(w, why, code)
	}
	switch {
	case err != nil:
		reject(http.StatusBadRequest, err.Error())
		return
	case fail:
		http.Error(w, "temporarily broken", http.StatusInternalServerError)
		return
	case req.Header.Get("svix-id") != "":
		reject(http.StatusBadRequest, "svix-* headers sent; want the webhook-* names")
		return
	}
	if err := r.hook.Verify(body, req.Header); err != nil {
		reject(http.StatusUnauthorized, "signature: "+err.Error())
		return
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		reject(http.StatusBadRequest, "payload: "+err.Error())
		return
	}
	id := req.Header.Get("webhook-id")
	if p["alert_id"] != id {
		reject(http.StatusBadRequest, fmt.Sprintf("webhook-id %q is not the payload's alert_id %v", id, p["alert_id"]))
		return
	}
	r.mu.Lock()
	r.got = append(r.got, received{ID: id, Payload: p})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) sink(secret string) alert.WebhookSink {
	return alert.WebhookSink{URL: r.srv.URL + "/codewatch", Secret: secret, Client: r.client}
}

// set changes the receiver's behaviour under its lock.
func (r *receiver) set(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// payloads returns the accepted alerts' payloads, in arrival order.
func (r *receiver) payloads() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]map[string]any, len(r.got))
	for i, g := range r.got {
		out[i] = g.Payload
	}
	return out
}

// ids returns the webhook-ids of accepted alerts, in arrival order.
func (r *receiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, g := range r.got {
		out[i] = g.ID
	}
	return out
}

func (r *receiver) stats() (requests int, rejected []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([]string(nil), r.rejected...)
}

func (r *receiver) noRejections() {
	r.t.Helper()
	if _, rej := r.stats(); len(rej) > 0 {
		r.t.Fatalf("receiver rejected alerts: %v", rej)
	}
}

func TestDispatchWebhookSignedAndDeliveredOnce(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	d := o.dispatcher(o.pool, rcv.sink(secret))

	code, alertID := o.fail()
	dispatch(t, d, 1)
	rcv.noRejections()
	if got := rcv.ids(); len(got) != 1 || got[0] != alertID {
		t.Fatalf("receiver got %v, want [%s]", got, alertID)
	}
	p := rcv.payloads()[0]
	want := map[string]any{
		"type":                   lifecycle.AlertTrouble,
		"alert_id":               alertID,
		"access_code_id":         code,
		"workspace_id":           testWorkspace,
		"device_id":              testDevice,
		"deletion_state":         string(lifecycle.Failed),
		"troubleshooting_reason": lifecycle.ReasonFailed,
		"age_seconds":            float64(10 * 60),
		"deleted_at":             o.clock.Now().Add(-10 * time.Minute).Format(time.RFC3339),
	}
	for k, v := range want {
		got, ok := p[k]
		if k == "deleted_at" && ok {
			if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got)); err == nil {
				got = ts.UTC().Format(time.RFC3339)
			}
		}
		if !ok || got != v {
			t.Errorf("payload %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	det, _ := json.Marshal(p["troubleshooting_details"])
	if !strings.Contains(string(det), "Failed to remove code from device.") {
		t.Errorf("payload troubleshooting_details lack Seam's error: %s", det)
	}

	row := o.delivery(alertID, "webhook")
	if row.Status != "sent" || row.Attempts != 1 || row.SentAt == nil || !row.SentAt.Equal(o.clock.Now()) || row.LastError != nil {
		t.Fatalf("delivery row %+v, want sent once at %v", row, o.clock.Now())
	}
	// Sent is final: later passes, past any lease or backoff, send nothing.
	for i := 0; i < 3; i++ {
		o.clock.Advance(time.Hour)
		dispatch(t, d, 0)
	}
	if n, _ := rcv.stats(); n != 1 {
		t.Fatalf("receiver saw %d requests, want 1", n)
	}
}

func TestDispatchWrongSecretIsRejectedAndRetried(t *testing.T) {
	o := newOutbox(t, "webhook")
	rcv := newReceiver(t, newSecret(t))
	// Signed with another secret: the receiver's svix check must refuse it.
	d := o.dispatcher(o.pool, rcv.sink(newSecret(t)))
	_, alertID := o.fail()
	dispatch(t, d, 1)
	if _, rej := rcv.stats(); len(rej) != 1 || !strings.HasPrefix(rej[0], "signature:") {
		t.Fatalf("receiver rejections %v, want one bad signature", rej)
	}
	if len(rcv.ids()) != 0 {
		t.Fatal("receiver accepted a badly signed alert")
	}
	row := o.delivery(alertID, "webhook")
	if row.Status != "pending" || row.LastError == nil || !strings.Contains(*row.LastError, "401") {
		t.Fatalf("delivery row %+v, want pending with the 401 recorded", row)
	}
}

func TestDispatchRetriesWithExponentialBackoff(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	const failures = 3
	rcv.set(func() { rcv.failNext = failures })
	d := o.dispatcher(o.pool, rcv.sink(secret))
	_, alertID := o.fail()

	var prevDelay time.Duration
	for attempt := 1; attempt <= failures; attempt++ {
		at := o.clock.Now()
		dispatch(t, d, 1)
		row := o.delivery(alertID, "webhook")
		delay := row.NextAttemptAt.Sub(at)
		base := time.Second << (attempt - 1)
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		if row.Status != "pending" || row.Attempts != attempt || row.LastError == nil || !strings.Contains(*row.LastError, "500") {
			t.Fatalf("after failure %d: %+v, want pending, %d attempts, the 500 recorded", attempt, row, attempt)
		}
		if delay < lo || delay > hi+time.Microsecond {
			t.Fatalf("after failure %d: retry in %s, want %s..%s", attempt, delay, lo, hi)
		}
		if delay <= prevDelay {
			t.Fatalf("after failure %d: retry in %s, not longer than the previous %s", attempt, delay, prevDelay)
		}
		prevDelay = delay
		// Not due before its time.
		o.clock.Set(row.NextAttemptAt.Add(-time.Millisecond))
		dispatch(t, d, 0)
		o.clock.Set(row.NextAttemptAt)
	}
	dispatch(t, d, 1)
	row := o.delivery(alertID, "webhook")
	if row.Status != "sent" || row.Attempts != failures+1 || row.LastError != nil || row.SentAt == nil {
		t.Fatalf("after success: %+v, want sent after %d attempts, error cleared", row, failures+1)
	}
	rcv.noRejections()
	for i := 0; i < 3; i++ {
		o.clock.Advance(2 * time.Hour)
		dispatch(t, d, 0)
	}
	if n, _ := rcv.stats(); n != failures+1 {
		t.Fatalf("receiver saw %d requests, want %d", n, failures+1)
	}
	if got := rcv.ids(); len(got) != 1 || got[0] != alertID {
		t.Fatalf("receiver accepted %v, want [%s] once", got, alertID)
	}
}

func TestDispatchSinkDownLosesNothing(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	// A port nobody listens on yet: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rcv := newUnstartedReceiver(t, secret)
	sink := rcv.sink(secret)
	sink.URL = "http://" + addr + "/codewatch"
	d := o.dispatcher(o.pool, sink)

	code, first := o.fail()
	for i := 1; i <= 3; i++ {
		dispatch(t, d, 1)
		row := o.delivery(first, "webhook")
		if row.Status != "pending" || row.Attempts != i || row.LastError == nil || !strings.Contains(*row.LastError, "refused") {
			t.Fatalf("attempt %d while down: %+v, want pending with connection refused", i, row)
		}
		o.clock.Set(row.NextAttemptAt)
	}
	// More alerts queue up while the sink is down.
	if _, err := o.store.Acknowledge(o.ctx, code, "ops", "checked"); err != nil {
		t.Fatal(err)
	}
	_, third := o.fail()
	want := append(o.alertIDs(code), third)
	if len(want) != 3 {
		t.Fatalf("outbox holds %d alerts, want 3", len(want))
	}

	// The sink comes back on the same address.
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	rcv.srv.Listener.Close()
	rcv.srv.Listener = ln2
	rcv.srv.Start()

	o.clock.Advance(time.Hour)
	dispatch(t, d, 3)
	rcv.noRejections()
	got := rcv.ids()
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	var pending int
	if err := o.pool.QueryRow(o.ctx, `SELECT count(*) FROM alert_deliveries WHERE status <> 'sent'`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Fatalf("%d deliveries not sent", pending)
	}
}

func TestDispatchAfterCrashBeforeAnyDispatch(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)

	// The state change commits its alert; the process dies before any
	// dispatcher runs.
	code := seamevent.NewID()
	failCode(t, o.store, o.clock.Now(), code)
	o.store.Close()
	o.pool.Close()

	// A new process, a new pool.
	pool := o.newPool()
	want := queryStrings(t, pool, `SELECT alert_id::text FROM alerts WHERE access_code_id = $1`, code)
	if len(want) != 1 {
		t.Fatalf("%d alerts committed, want 1", len(want))
	}
	o.clock.Advance(time.Minute)
	d := o.dispatcher(pool, rcv.sink(secret))
	dispatch(t, d, 1)
	rcv.noRejections()
	if got := rcv.ids(); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("delivered %v, want the original alert_id %v", got, want)
	}
	if p := rcv.payloads()[0]; p["access_code_id"] != code {
		t.Fatalf("delivered alert for %v, want %s", p["access_code_id"], code)
	}
}

// dyingSink stands for a process that dies while delivering: it closes the
// process's pool, so nothing after the claim reaches the database.
type dyingSink struct {
	pool *pgxpool.Pool
}

func (dyingSink) Name() string { return "webhook" }

func (s dyingSink) Deliver(context.Context, *lifecycle.AlertPayload, []byte) error {
	s.pool.Close()
	return fmt.Errorf("process died")
}

func TestDispatchRedeliversAfterLeaseWhenClaimedAndDropped(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	_, alertID := o.fail()

	// Process 1 claims the delivery and dies before sending it.
	pool1 := o.newPool()
	claimedAt := o.clock.Now()
	dispatch(t, o.dispatcher(pool1, dyingSink{pool1}), 1)
	row := o.delivery(alertID, "webhook")
	if row.Status != "pending" || row.Attempts != 1 || !row.NextAttemptAt.Equal(claimedAt.Add(testLease)) {
		t.Fatalf("after the crash: %+v, want pending, 1 attempt, leased until %v", row, claimedAt.Add(testLease))
	}

	// Process 2 leaves it alone while the lease lasts, then delivers it.
	d2 := o.dispatcher(o.newPool(), rcv.sink(secret))
	dispatch(t, d2, 0)
	o.clock.Set(claimedAt.Add(testLease - time.Second))
	dispatch(t, d2, 0)
	o.clock.Set(claimedAt.Add(testLease))
	dispatch(t, d2, 1)
	rcv.noRejections()
	if got := rcv.ids(); len(got) != 1 || got[0] != alertID {
		t.Fatalf("delivered %v, want [%s]", got, alertID)
	}
	if row := o.delivery(alertID, "webhook"); row.Status != "sent" || row.Attempts != 2 {
		t.Fatalf("after redelivery: %+v, want sent after 2 attempts", row)
	}
}

func TestDispatchRedeliversSameAlertIDWhenSentButNotRecorded(t *testing.T) {
	o := newOutbox(t, "webhook")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	_, alertID := o.fail()

	// Process 1 sends; while the receiver handles it, the delivery is
	// leased, and then process 1 dies before recording the success.
	pool1 := o.newPool()
	claimedAt := o.clock.Now()
	during := make(chan deliveryRow, 1)
	hook := func(n int) {
		if n != 1 {
			return
		}
		var row deliveryRow
		err := o.pool.QueryRow(o.ctx, `SELECT status, attempts, next_attempt_at FROM alert_deliveries
			WHERE alert_id = $1`, alertID).Scan(&row.Status, &row.Attempts, &row.NextAttemptAt)
		if err != nil {
			row.Status = err.Error()
		}
		during <- row
		pool1.Close()
	}
	rcv.set(func() { rcv.during = hook })
	dispatch(t, o.dispatcher(pool1, rcv.sink(secret)), 1)
	if row := <-during; row.Status != "pending" || row.Attempts != 1 || !row.NextAttemptAt.Equal(claimedAt.Add(testLease)) {
		t.Fatalf("during delivery: %+v, want pending, 1 attempt, leased until %v", row, claimedAt.Add(testLease))
	}
	if row := o.delivery(alertID, "webhook"); row.Status != "pending" {
		t.Fatalf("recorded %+v although the process died", row)
	}

	d2 := o.dispatcher(o.newPool(), rcv.sink(secret))
	dispatch(t, d2, 0) // leased
	o.clock.Set(claimedAt.Add(testLease))
	dispatch(t, d2, 1)
	rcv.noRejections()
	// Delivered twice, under one alert_id the receiver can drop it by.
	if got := rcv.ids(); len(got) != 2 || got[0] != alertID || got[1] != alertID {
		t.Fatalf("delivered %v, want %s twice", got, alertID)
	}
	if row := o.delivery(alertID, "webhook"); row.Status != "sent" {
		t.Fatalf("after redelivery: %+v, want sent", row)
	}
	o.clock.Advance(time.Hour)
	dispatch(t, d2, 0)
}

// slackReceiver is a Slack incoming webhook: it records each message's text.
type slackReceiver struct {
	srv   *httptest.Server
	path  string
	mu    sync.Mutex
	texts []string
	fail  bool
}

func newSlackReceiver(t *testing.T) *slackReceiver {
	t.Helper()
	s := &slackReceiver{path: "/services/T0001/B0002/" + strings.TrimPrefix(newSecret(t), "whsec_")[:24]}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Text   string `json:"text"`
			Blocks []any  `json:"blocks"`
		}
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case s.fail:
			http.Error(w, "no_service", http.StatusInternalServerError)
		case r.URL.Path != s.path || r.Header.Get("Content-Type") != "application/json":
			http.Error(w, "bad request", http.StatusBadRequest)
		case json.Unmarshal(body, &m) != nil || m.Text == "" || len(m.Blocks) == 0:
			http.Error(w, "invalid_payload", http.StatusBadRequest)
		default:
			s.texts = append(s.texts, m.Text)
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slackReceiver) sink() alert.SlackSink {
	return alert.SlackSink{URL: s.srv.URL + s.path, Client: &http.Client{Timeout: 5 * time.Second}}
}

func (s *slackReceiver) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.texts...)
}

func TestTwoDispatchersDeliverEachAlertOncePerSink(t *testing.T) {
	o := newOutbox(t, "webhook", "slack")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	slack := newSlackReceiver(t)

	const codes = 120
	var wg sync.WaitGroup
	ingestErrs := make(chan error, codes)
	for i := 0; i < codes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := failCodeErr(o.store, o.clock.Now(), seamevent.NewID()); err != nil {
				ingestErrs <- err
			}
		}()
	}
	wg.Wait()
	close(ingestErrs)
	for err := range ingestErrs {
		t.Fatal(err)
	}
	want := queryStrings(t, o.pool, `SELECT alert_id::text FROM alerts ORDER BY 1`)
	if len(want) != codes {
		t.Fatalf("%d alerts, want %d", len(want), codes)
	}

	ds := []*alert.Dispatcher{
		o.dispatcher(o.newPool(), rcv.sink(secret), slack.sink()),
		o.dispatcher(o.newPool(), rcv.sink(secret), slack.sink()),
	}
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(d *alert.Dispatcher) {
			defer wg.Done()
			for {
				n, err := d.DispatchOnce(context.Background())
				if err != nil {
					errs <- err
					return
				}
				if n == 0 {
					return
				}
			}
		}(ds[g%2])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rcv.noRejections()

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
	if len(perWebhook) != codes || len(perSlack) != codes {
		t.Errorf("delivered %d distinct alerts to the webhook and %d to slack, want %d", len(perWebhook), len(perSlack), codes)
	}
	var sent, onceOnly int
	if err := o.pool.QueryRow(o.ctx, `SELECT count(*) FILTER (WHERE status = 'sent'),
			count(*) FILTER (WHERE attempts = 1) FROM alert_deliveries`).Scan(&sent, &onceOnly); err != nil {
		t.Fatal(err)
	}
	if sent != 2*codes || onceOnly != 2*codes {
		t.Fatalf("%d deliveries sent and %d claimed exactly once, want %d each", sent, onceOnly, 2*codes)
	}
}
