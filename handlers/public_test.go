package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

const pubSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type pubEnv struct {
	srv     *httptest.Server
	pool    *pgxpool.Pool
	store   *postgres.Store
	keys    *datakeys.Keyring
	metrics *metrics.Metrics
	logs    *syncBuffer
}

type syncBuffer = logtest.Buffer

func newPubEnv(t testing.TB, pool *pgxpool.Pool) *pubEnv {
	t.Helper()
	return newPubEnvBudget(t, pool, nil)
}

func newPubEnvBudget(t testing.TB, pool *pgxpool.Pool, budget *handlers.Budget) *pubEnv {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	keys := storetest.Keys(t)
	store := postgres.New(pool, storetest.Inserter(t, pool), postgres.Config{RemovalTimeout: 30 * time.Minute, Logger: logger, TxTimeout: 3 * time.Second, Keys: keys})
	store.Start()
	v, err := verify.New([]string{pubSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	e := handlers.NewPublicServer(&handlers.Public{Verifier: v, Store: store, Metrics: m, Logger: logger, IngestTimeout: 5 * time.Second, Budget: budget})
	srv := httptest.NewUnstartedServer(e)
	srv.Config.MaxHeaderBytes = 64 << 10 // as serve sets it
	srv.Start()
	t.Cleanup(func() { srv.Close(); store.Close() })
	return &pubEnv{srv: srv, pool: pool, store: store, keys: keys, metrics: m, logs: logs}
}

// storedBodies returns the bodies stored (opened) in table's rows whose
// message id is msgID or, with prefix, starts with msgID + "#".
func (e *pubEnv) storedBodies(t testing.TB, table, msgID string, prefix bool) [][]byte {
	t.Helper()
	rs, err := e.pool.Query(context.Background(), `SELECT message_id, key_id, raw FROM `+table+`
		WHERE message_id = $1 OR ($2 AND starts_with(message_id, $1 || '#'))`, msgID, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out [][]byte
	for rs.Next() {
		var m string
		var keyID *string
		var raw []byte
		if err := rs.Scan(&m, &keyID, &raw); err != nil {
			t.Fatal(err)
		}
		if keyID == nil || *keyID != e.keys.PrimaryID() {
			t.Fatalf("%s row %s is not sealed under the data key (key_id %v)", table, m, keyID)
		}
		body, err := postgres.OpenBody(e.keys, table, m, keyID, raw)
		if err != nil {
			t.Fatalf("%s row %s: %v", table, m, err)
		}
		out = append(out, body)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *pubEnv) url() string { return e.srv.URL + "/webhooks/seam" }

// post sends body with the given headers and decodes the JSON answer.
func (e *pubEnv) post(t testing.TB, body []byte, h http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url(), bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("status %d, body is not JSON: %q", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func signed(t testing.TB, msgID string, body []byte) http.Header {
	t.Helper()
	h, err := verify.Sign(pubSecret, msgID, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func count(t testing.TB, pool *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func event(t testing.TB, typ, code string) []byte {
	t.Helper()
	b, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantError(t *testing.T, status int, body map[string]any, wantStatus int, wantType string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d (%v)", status, wantStatus, body)
	}
	if body["ok"] != false {
		t.Fatalf("ok is %v, want false", body["ok"])
	}
	e, _ := body["error"].(map[string]any)
	if e == nil || e["type"] != wantType || e["message"] == "" || e["request_id"] == "" {
		t.Fatalf("error body %v, want type %s with message and request_id", body, wantType)
	}
}

func TestWebhookStoresVerifiedEvent(t *testing.T) {
	env := newPubEnv(t, pgtest.New(t))
	code := seamevent.NewID()
	// Key order, spacing and an unknown field as Seam might send them: the
	// raw bytes must be kept exactly.
	body := []byte(`{ "event_id": "ev-1", "event_type": "access_code.deleted", "workspace_id": "ws-1",
 "created_at": "2026-06-01T10:00:01.000Z", "occurred_at": "2026-06-01T10:00:00.000Z",
 "access_code_id": "` + code + `", "device_id": "dev-1", "connected_account_id": "ca-1",
 "code": "4821", "brand_new_field": {"nested": [1,2,3]} }`)
	status, out := env.post(t, body, signed(t, "msg_store_1", body))
	if status != 200 || out["ok"] != true || out["duplicate"] != nil || out["quarantined"] != nil {
		t.Fatalf("got %d %v", status, out)
	}
	var (
		msg, eid, typ, ws, ac, dev, ca string
		occ, cre                       time.Time
		raw                            []byte
		keyID                          *string
	)
	err := env.pool.QueryRow(context.Background(), `SELECT message_id, event_id, event_type, workspace_id,
		access_code_id, device_id, connected_account_id, occurred_at, created_at, key_id, raw FROM events`).
		Scan(&msg, &eid, &typ, &ws, &ac, &dev, &ca, &occ, &cre, &keyID, &raw)
	if err != nil {
		t.Fatal(err)
	}
	if msg != "msg_store_1" || eid != "ev-1" || typ != "access_code.deleted" || ws != "ws-1" ||
		ac != code || dev != "dev-1" || ca != "ca-1" {
		t.Fatalf("stored fields wrong: %v %v %v %v %v %v %v", msg, eid, typ, ws, ac, dev, ca)
	}
	if !occ.Equal(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)) || !cre.Equal(time.Date(2026, 6, 1, 10, 0, 1, 0, time.UTC)) {
		t.Fatalf("times %v %v", occ, cre)
	}
	// Stored sealed (never the PIN in clear), and opened it is the body
	// exactly as received.
	if bytes.Contains(raw, []byte("4821")) || bytes.Contains(raw, []byte("brand_new_field")) {
		t.Fatalf("the stored body is readable: %q", raw)
	}
	opened, err := postgres.OpenBody(env.keys, "events", msg, keyID, raw)
	if err != nil {
		t.Fatalf("open the stored body (key_id %v): %v", keyID, err)
	}
	if !bytes.Equal(opened, body) {
		t.Fatalf("raw body changed:\n%s\n%s", opened, body)
	}
	if got := testutil.ToFloat64(env.metrics.WebhooksReceived.WithLabelValues("access_code.deleted", "stored")); got != 1 {
		t.Fatalf("stored metric %v", got)
	}
}

func TestWebhookResponses(t *testing.T) {
	env := newPubEnv(t, pgtest.New(t))
	code := seamevent.NewID()
	first := event(t, "access_code.set_on_device", code)
	if status, out := env.post(t, first, signed(t, "msg_a", first)); status != 200 || out["ok"] != true {
		t.Fatalf("first delivery: %d %v", status, out)
	}

	t.Run("same message again is a duplicate", func(t *testing.T) {
		status, out := env.post(t, first, signed(t, "msg_a", first))
		if status != 200 || out["ok"] != true || out["duplicate"] != true {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("same event under a new message id is a duplicate", func(t *testing.T) {
		status, out := env.post(t, first, signed(t, "msg_a_other", first))
		if status != 200 || out["duplicate"] != true {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("webhook-* header names", func(t *testing.T) {
		b := event(t, "access_code.deleted", code)
		status, out := env.post(t, b, verify.StandardHeaders(signed(t, "msg_std", b)))
		if status != 200 || out["ok"] != true || out["duplicate"] != nil {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("other event types are stored", func(t *testing.T) {
		for i, typ := range []string{"lock.locked", "device.connected", "connected_account.disconnected", "access_code.changed"} {
			b := event(t, typ, code)
			status, out := env.post(t, b, signed(t, fmt.Sprintf("msg_other_%d", i), b))
			if status != 200 || out["ok"] != true || out["duplicate"] != nil {
				t.Fatalf("%s: %d %v", typ, status, out)
			}
		}
		if n := count(t, env.pool, `SELECT count(*) FROM events WHERE event_type = 'device.connected'`); n != 1 {
			t.Fatalf("device.connected rows: %d", n)
		}
	})
	before := count(t, env.pool, `SELECT count(*) FROM events`)

	rejected := []struct {
		name    string
		body    []byte
		headers http.Header
	}{
		{"no signature", first, http.Header{}},
		{"bad signature", first, func() http.Header {
			h := signed(t, "msg_bad", first)
			h.Set("svix-signature", "v1,"+strings.Repeat("Zm9v", 11))
			return h
		}()},
		{"wrong secret", first, func() http.Header {
			h, _ := verify.Sign("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCEh", "msg_bad2", time.Now(), first)
			return h
		}()},
		{"stale timestamp", first, func() http.Header {
			h, _ := verify.Sign(pubSecret, "msg_old", time.Now().Add(-10*time.Minute), first)
			return h
		}()},
	}
	for _, c := range rejected {
		t.Run("401 "+c.name, func(t *testing.T) {
			status, out := env.post(t, c.body, c.headers)
			wantError(t, status, out, 401, "invalid_signature")
		})
	}
	if n := count(t, env.pool, `SELECT count(*) FROM events`); n != before {
		t.Fatalf("rejected deliveries stored rows: %d -> %d", before, n)
	}
	if n := count(t, env.pool, `SELECT count(*) FROM quarantine`); n != 0 {
		t.Fatalf("rejected deliveries quarantined: %d", n)
	}
	if got := testutil.ToFloat64(env.metrics.SignatureFailures.WithLabelValues("stale_timestamp")); got != 1 {
		t.Fatalf("stale metric %v", got)
	}
	if strings.Contains(env.logs.String(), pubSecret) || strings.Contains(env.logs.String(), `"event_type"`) {
		t.Fatalf("logs leak the secret or a body:\n%s", env.logs.String())
	}

	t.Run("413 over 1 MiB", func(t *testing.T) {
		big := append([]byte(`{"event_id":"big","event_type":"access_code.deleted","pad":"`), bytes.Repeat([]byte("x"), handlers.MaxBody)...)
		big = append(big, `"}`...)
		status, out := env.post(t, big, signed(t, "msg_big", big))
		wantError(t, status, out, 413, "payload_too_large")
	})
	t.Run("413 over 1 MiB without content length", func(t *testing.T) {
		big := bytes.Repeat([]byte("y"), handlers.MaxBody+10)
		req, _ := http.NewRequest(http.MethodPost, env.url(), io.MultiReader(bytes.NewReader(big)))
		req.ContentLength = -1 // chunked
		for k, v := range signed(t, "msg_big2", big) {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("exactly 1 MiB is accepted", func(t *testing.T) {
		prefix := `{"event_id":"exact","event_type":"lock.locked","pad":"`
		pad := handlers.MaxBody - len(prefix) - 2
		b := append([]byte(prefix), bytes.Repeat([]byte("p"), pad)...)
		b = append(b, `"}`...)
		status, out := env.post(t, b, signed(t, "msg_exact", b))
		if status != 200 || out["ok"] != true {
			t.Fatalf("got %d %v", status, out)
		}
	})

	quarantined := []struct {
		name, reason string
		body         []byte
	}{
		{"not JSON", "not_json", []byte(`this is not json`)},
		{"empty body", "not_json", []byte{}},
		{"JSON array", "not_json", []byte(`[{"event_id":"x"}]`)},
		{"no event_id", "missing_event_id", []byte(`{"event_type":"access_code.deleted"}`)},
		{"no event_type", "missing_event_type", []byte(`{"event_id":"q-1"}`)},
		{"occurred_at not a time", "invalid_occurred_at", []byte(`{"event_id":"q-2","event_type":"access_code.deleted","occurred_at":"yesterday"}`)},
		{"number where a string belongs", "invalid_event_id", []byte(`{"event_id":42,"event_type":"access_code.deleted"}`)},
		{"invalid UTF-8", "not_json", []byte("{\"event_id\":\"q-3\",\"event_type\":\"access_code.deleted\",\"x\":\"\xff\xfe\"}\xff")},
		{"nested 10,000 deep", "not_json", []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))},
		{"NUL in id", "invalid_event_id", []byte(`{"event_id":"a\u0000b","event_type":"access_code.deleted"}`)},
	}
	for i, c := range quarantined {
		t.Run("quarantine "+c.name, func(t *testing.T) {
			msg := fmt.Sprintf("msg_q_%d", i)
			status, out := env.post(t, c.body, signed(t, msg, c.body))
			if status != 200 || out["ok"] != true || out["quarantined"] != true {
				t.Fatalf("got %d %v", status, out)
			}
			var reason string
			if err := env.pool.QueryRow(context.Background(), `SELECT reason FROM quarantine WHERE message_id = $1`, msg).Scan(&reason); err != nil {
				t.Fatal(err)
			}
			bodies := env.storedBodies(t, "quarantine", msg, false)
			if !strings.HasPrefix(reason, c.reason) || len(bodies) != 1 || !bytes.Equal(bodies[0], c.body) {
				t.Fatalf("reason %q (want %s...), raw kept: %v", reason, c.reason, len(bodies) == 1 && bytes.Equal(bodies[0], c.body))
			}
			// Svix retrying it is a duplicate, not a second row.
			status, out = env.post(t, c.body, signed(t, msg, c.body))
			if status != 200 || out["duplicate"] != true {
				t.Fatalf("retry: %d %v", status, out)
			}
		})
	}

	t.Run("far past and future occurred_at are stored, up to what codewatch can write back", func(t *testing.T) {
		for i, c := range []struct {
			ts     string
			stored bool
		}{
			{"0001-01-02T00:00:00Z", true}, {"9999-12-30T23:59:59.999Z", true},
			// Go's zero time, and a time Postgres keeps as year 10000
			// (issue 19): invalid_time.
			{"0001-01-01T00:00:00Z", false}, {"9999-12-31T23:59:59.999Z", false},
		} {
			b := []byte(fmt.Sprintf(`{"event_id":"far-%d","event_type":"access_code.created","access_code_id":"%s","occurred_at":"%s"}`, i, seamevent.NewID(), c.ts))
			status, out := env.post(t, b, signed(t, fmt.Sprintf("msg_far_%d", i), b))
			if status != 200 || out["ok"] != true || (out["quarantined"] == nil) != c.stored {
				t.Fatalf("%s: %d %v", c.ts, status, out)
			}
		}
	})
	t.Run("svix-id longer than 255 bytes", func(t *testing.T) {
		id := strings.Repeat("m", 300)
		status, out := env.post(t, first, signed(t, id, first))
		wantError(t, status, out, 400, "invalid_input")
	})
	t.Run("svix-id not UTF-8", func(t *testing.T) {
		status, out := env.post(t, first, signed(t, "msg_\xe8", first))
		wantError(t, status, out, 400, "invalid_input")
	})
	t.Run("huge headers", func(t *testing.T) {
		h := signed(t, "msg_hdr", first)
		h.Set("X-Padding", strings.Repeat("h", 100<<10))
		req, _ := http.NewRequest(http.MethodPost, env.url(), bytes.NewReader(first))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("wrong content type is judged by the signature alone", func(t *testing.T) {
		b := event(t, "access_code.removed_from_device", code)
		h := signed(t, "msg_ct", b)
		h.Set("Content-Type", "text/plain")
		status, out := env.post(t, b, h)
		if status != 200 || out["ok"] != true {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("unknown route and method", func(t *testing.T) {
		resp, err := http.Get(env.url())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET webhook: %d", resp.StatusCode)
		}
		status, out := env.post(t, first, nil)
		wantError(t, status, out, 401, "invalid_signature")
	})
	t.Run("healthz", func(t *testing.T) {
		resp, err := http.Get(env.srv.URL + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}

// Fifty copies of one message at the same moment: one row, one "stored".
func TestWebhookConcurrentDuplicates(t *testing.T) {
	env := newPubEnv(t, pgtest.New(t))
	b := event(t, "access_code.deleted", seamevent.NewID())
	h := signed(t, "msg_dup", b)
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	start := make(chan struct{})
	for i := 0; i < 50; i++ {
		wg.Go(func() {
			<-start
			status, out := env.post(t, b, h)
			key := strconv.Itoa(status)
			if out["duplicate"] == true {
				key += " duplicate"
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if outcomes["200"] != 1 || outcomes["200 duplicate"] != 49 {
		t.Fatalf("outcomes %v, want one stored and 49 duplicates", outcomes)
	}
	if n := count(t, env.pool, `SELECT count(*) FROM events WHERE message_id = 'msg_dup'`); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

// Ids no stored code can have are a client's mistake, never a 5xx.
func TestOpsRejectsImpossibleIDs(t *testing.T) {
	pool := pgtest.New(t)
	store := storetest.New(t, pool, postgres.Config{})
	token := "0123456789abcdef0123"
	ops := handlers.NewOpsServer(&handlers.Ops{Store: store, Tokens: []handlers.Token{{Name: "t", Value: token}},
		Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler), Ready: func(context.Context) error { return nil }})
	srv := httptest.NewServer(ops)
	t.Cleanup(srv.Close)
	cases := []struct {
		method, path string
		status       int
		typ          string
	}{
		{"GET", "/v1/access_codes/%00", 404, "access_code_not_found"},
		{"GET", "/v1/access_codes/%ff%fe", 404, "access_code_not_found"},
		{"POST", "/v1/access_codes/%00/acknowledge", 404, "access_code_not_found"},
		{"GET", "/v1/access_codes?workspace_id=%00", 400, "invalid_input"},
		{"GET", "/v1/access_codes?device_id=%ff", 400, "invalid_input"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Request-Id", "client-chosen")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		wantError(t, resp.StatusCode, body, c.status, c.typ)
		// A short, plain client id is echoed (and repeated in the error).
		if rid := resp.Header.Get("X-Request-Id"); rid != "client-chosen" {
			t.Fatalf("%s: request id %q", c.path, rid)
		}
	}
}
