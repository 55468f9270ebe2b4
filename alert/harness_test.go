package alert_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
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
)

// outbox is a test database with a Store writing alerts for sinks.
type outbox struct {
	t     *testing.T
	ctx   context.Context
	url   string
	pool  *pgxpool.Pool
	clock *fakeClock
	store *postgres.Store
}

func newOutbox(t *testing.T, sinks ...string) *outbox {
	t.Helper()
	o := &outbox{t: t, ctx: context.Background(), url: pgtest.NewURL(t), clock: newFakeClock()}
	o.pool = o.newPool()
	o.store = storetest.New(t, o.pool, postgres.Config{RemovalTimeout: testTimeout, Sinks: sinks, Now: o.clock.Now})
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

// work starts a River client on pool (a replica, when the pool is its own)
// delivering alerts to sinks with cfg, and returns a channel of its finished
// jobs.
func (o *outbox) work(pool *pgxpool.Pool, cfg alert.WorkerConfig, sinks ...alert.Sink) <-chan *river.Event {
	o.t.Helper()
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase, cfg.BackoffMax = 50*time.Millisecond, time.Second
	}
	cfg.Sinks = sinks
	cfg.Outbox = storetest.New(o.t, pool, postgres.Config{RemovalTimeout: testTimeout, Now: o.clock.Now})
	workers := river.NewWorkers()
	river.AddWorker(workers, alert.NewWorker(cfg))
	c := storetest.Start(o.t, pool, workers)
	events, cancel := c.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobSnoozed)
	o.t.Cleanup(cancel)
	return events
}

// waitFor polls the database (cheaply) until done says so, or fails after
// a generous deadline.
func (o *outbox) waitFor(what string, done func() bool) {
	o.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			o.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSettled waits until n deliveries have ended (sent or given up).
func (o *outbox) waitSettled(n int) {
	o.t.Helper()
	o.waitFor(fmt.Sprintf("%d deliveries to end", n), func() bool {
		var got int
		_ = o.pool.QueryRow(o.ctx, `SELECT count(*) FROM alert_deliveries WHERE status <> 'pending'`).Scan(&got)
		return got >= n
	})
}

func ingest(s *postgres.Store, typ, code string, at time.Time) error {
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
func failCodeErr(s *postgres.Store, now time.Time, code string) error {
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

func failCode(t *testing.T, s *postgres.Store, now time.Time, code string) {
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
	return queryStrings(o.t, o.pool, `SELECT alert_id::text FROM alerts WHERE access_code_id = $1 ORDER BY sequence`, code)
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
	GivenUpAt     *time.Time
	Attempts      int
	NextAttemptAt time.Time
	LastError     *string
	SentAt        *time.Time
}

func (o *outbox) delivery(alertID, sink string) deliveryRow {
	o.t.Helper()
	var d deliveryRow
	err := o.pool.QueryRow(o.ctx, `SELECT status, attempts, next_attempt_at, last_error, sent_at, given_up_at
		FROM alert_deliveries WHERE alert_id = $1 AND sink = $2`, alertID, sink).
		Scan(&d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastError, &d.SentAt, &d.GivenUpAt)
	if err != nil {
		o.t.Fatalf("delivery %s/%s: %v", alertID, sink, err)
	}
	return d
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
	addr   string
	client *http.Client

	mu       sync.Mutex
	failNext int    // answer this many more requests with 500
	failID   string // answer every request for this alert with 500
	requests int
	rejected []string
	got      []received
	// during, when set, runs inside the handler before it answers.
	during func(n int)
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := newUnstartedReceiver(t, secret)
	r.start()
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
	// Its address is fixed now, so a sink made before it starts finds it
	// once it does (and meanwhile finds nobody listening).
	r.addr = r.srv.Listener.Addr().String()
	r.srv.Listener.Close()
	t.Cleanup(r.srv.Close)
	return r
}

// start starts an unstarted receiver at its address.
func (r *receiver) start() {
	r.t.Helper()
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv.Listener = l
	r.srv.Start()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	n := r.requests
	during := r.during
	fail := r.failNext > 0 || (r.failID != "" && req.Header.Get("webhook-id") == r.failID)
	if r.failNext > 0 {
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
	return alert.WebhookSink{URL: "http://" + r.addr + "/codewatch", Secret: secret, Client: r.client}
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
	s := &slackReceiver{path: "/services/T0001/B0002/" + randomHex(t, 12)}
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

// randomHex is n random bytes in hex: a path part with no '/' in it.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
