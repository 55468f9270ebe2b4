package handlers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

const inputsToken = "inputs-token-0123456789"

// opsFor serves the ops API on env's store.
func opsFor(t testing.TB, env *pubEnv) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handlers.NewOpsServer(&handlers.Ops{Store: env.store,
		Tokens:  []handlers.Token{{Name: "inputs", Value: inputsToken}},
		Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler), Ready: func(context.Context) error { return nil }}))
	t.Cleanup(srv.Close)
	return srv
}

func opsGet(t testing.TB, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+inputsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// withFields is a built Seam event with some fields replaced.
func withFields(t testing.TB, typ, code string, at time.Time, set map[string]any) []byte {
	t.Helper()
	body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, OccurredAt: at})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Defect (issue 19, point 7): an event at 9999-12-31T23:59:59.9999999Z was
// stored (Postgres rounds it to year 10000) and from then on GET
// /v1/access_codes/{id} answered 500. A time codewatch could not write back
// is quarantined as invalid_time; the code's reads go on answering.
func TestEventTimeOutOfRangeIsQuarantined(t *testing.T) {
	env := newPubEnv(t, pgtest.New(t))
	ops := opsFor(t, env)
	for _, c := range []struct{ field, value string }{
		{"occurred_at", "9999-12-31T23:59:59.9999999Z"},
		{"occurred_at", "9999-12-31T23:59:59.9999995Z"},
		{"occurred_at", "9999-12-31T23:30:00-01:00"}, // year 10000 in UTC
		{"occurred_at", "0000-01-01T00:30:00+01:00"}, // year -1 in UTC
		{"occurred_at", "0001-01-01T00:00:00Z"},      // Go's zero time: "no time"
		{"created_at", "9999-12-31T23:59:59.9999999Z"},
		{"created_at", "0000-01-01T00:30:00+01:00"},
	} {
		code := seamevent.NewID()
		at := time.Now().Add(-time.Hour)
		for _, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
			var set map[string]any
			if typ == lifecycle.TypeDeleted {
				set = map[string]any{c.field: c.value}
			}
			body := withFields(t, typ, code, at, set)
			status, out := env.post(t, body, signed(t, seamevent.NewMessageID(), body))
			if status != http.StatusOK {
				t.Fatalf("%s %s=%s: %d %v", typ, c.field, c.value, status, out)
			}
			if typ == lifecycle.TypeDeleted && out["quarantined"] != true {
				t.Errorf("%s=%s: answered %v, want it quarantined", c.field, c.value, out)
			}
		}
		if status, body := opsGet(t, ops, "/v1/access_codes/"+code); status != http.StatusOK {
			t.Errorf("%s=%s: GET the code: %d %.300s", c.field, c.value, status, body)
		}
		for _, path := range []string{"/v1/access_codes", "/v1/access_codes?sort=recent", "/v1/summary", "/v1/devices", "/v1/quarantine"} {
			if status, body := opsGet(t, ops, path); status != http.StatusOK {
				t.Errorf("%s=%s: GET %s: %d %.300s", c.field, c.value, path, status, body)
			}
		}
	}
	if n := count(t, env.pool, `SELECT count(*) FROM quarantine WHERE reason LIKE 'invalid_time:%'`); n != 7 {
		t.Errorf("%d rows quarantined as invalid_time, want 7", n)
	}
	if n := count(t, env.pool, `SELECT count(*) FROM events WHERE occurred_at < '0001-01-02' OR occurred_at >= '9999-12-31'
		OR created_at < '0001-01-02' OR created_at >= '9999-12-31'`); n != 0 {
		t.Errorf("%d events stored with a time out of range", n)
	}
}

// consoleFor serves the ops API and the console on env's store, and
// returns a client signed in to the console.
func consoleFor(t testing.TB, env *pubEnv) (*httptest.Server, *browserish) {
	t.Helper()
	srv := httptest.NewServer(handlers.NewOpsServer(&handlers.Ops{Store: env.store,
		Tokens:  []handlers.Token{{Name: "inputs", Value: inputsToken}},
		Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler), Ready: func(context.Context) error { return nil },
		Console: &console.Console{Store: env.store}}))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	b := &browserish{t: t, base: srv.URL, jar: jar, origin: srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if r := b.signIn(inputsToken); r.Status != http.StatusSeeOther {
		t.Fatalf("sign in: %d %.300s", r.Status, r.Body)
	}
	return srv, b
}

// Defect (issue 19, point 8): a signed webhook claiming one of codewatch's
// own event types (codewatch.access_code_not_found) was quarantined, and a
// quarantine retry (the console's Retry button, `codewatch quarantine
// retry`) then stored it: the code became removed on a forger's word.
// Retried bodies pass the webhook's checks.
func TestRetryKeepsReservedTypeQuarantined(t *testing.T) {
	env := newPubEnv(t, pgtest.New(t))
	_, b := consoleFor(t, env)
	ctx := context.Background()
	code := seamevent.NewID()
	at := time.Now().Add(-time.Hour)
	for i, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
		body := withFields(t, typ, code, at.Add(time.Duration(i)*time.Minute), nil)
		if status, out := env.post(t, body, signed(t, seamevent.NewMessageID(), body)); status != http.StatusOK {
			t.Fatalf("%s: %d %v", typ, status, out)
		}
	}
	forged := lifecycle.OwnEvent("cw_poll_forged", lifecycle.TypeAccessCodeGone, time.Now(), lifecycle.CodeRef{AccessCodeID: code},
		lifecycle.PollDetails{Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}).Body
	status, out := env.post(t, forged, signed(t, seamevent.NewMessageID(), forged))
	if status != http.StatusOK || out["quarantined"] != true {
		t.Fatalf("forged %s: %d %v, want it quarantined", lifecycle.TypeAccessCodeGone, status, out)
	}
	var qid string
	if err := env.pool.QueryRow(ctx, `SELECT id::text FROM quarantine`).Scan(&qid); err != nil {
		t.Fatal(err)
	}
	check := func(how string) {
		t.Helper()
		c, err := env.store.GetAccessCode(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if c.DeletionState != lifecycle.AwaitingRemoval {
			t.Fatalf("after %s: the code is %s, want it still awaiting removal", how, c.DeletionState)
		}
		var reason string
		if err := env.pool.QueryRow(ctx, `SELECT reason FROM quarantine WHERE id = $1`, qid).Scan(&reason); err != nil ||
			!strings.HasPrefix(reason, "reserved_event_type") {
			t.Fatalf("after %s: quarantine row %s: reason %q (%v), want it kept as reserved_event_type", how, qid, reason, err)
		}
		if n := count(t, env.pool, `SELECT count(*) FROM events WHERE event_type LIKE 'codewatch.%'`); n != 0 {
			t.Fatalf("after %s: %d codewatch.* events stored", how, n)
		}
	}
	check("the webhook")

	// The console's Retry button.
	r := b.post("/console/quarantine/"+qid+"/retry", url.Values{"csrf": {b.csrf("/console/quarantine")}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("retry: %d %.300s", r.Status, r.Body)
	}
	check("the console's retry")
	if p := b.get("/console/quarantine"); !strings.Contains(p.Body, "is still unusable (reserved_event_type") {
		t.Errorf("the page does not say the delivery is still unusable")
	}

	// `codewatch quarantine retry` (all rows, and by its reason).
	for _, sel := range []postgres.QuarantineRetry{{}, {Reason: "reserved_event_type"}} {
		res, err := env.store.RetryQuarantine(ctx, sel, nil)
		if err != nil || res.Stored != 0 || res.Duplicates != 0 || res.Unusable != 1 {
			t.Fatalf("retry %+v: %+v %v, want it still unusable", sel, res, err)
		}
		check("codewatch quarantine retry")
	}
}

// Defect (issue 19, sibling of point 7): sort=urgency cursors carried the
// last code's deletion time in Unix nanoseconds, which hold only 1678 to
// 2262 and were refused when negative: a code deleted before 1970 made the
// next page a 400, one after 2262 a cursor pointing elsewhere. Every time
// codewatch stores pages through.
func TestUrgencyCursorsCarryAnyTime(t *testing.T) {
	env := newPubEnv(t, pgtest.New(t))
	ops := opsFor(t, env)
	want := map[string]bool{}
	for _, at := range []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1960, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Now().Add(-2 * time.Minute), time.Now().Add(-time.Minute),
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		lifecycle.MinTime, lifecycle.MaxTime.Add(-time.Microsecond),
	} {
		code := seamevent.NewID()
		want[code] = true
		for _, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
			body := withFields(t, typ, code, at, map[string]any{"occurred_at": at.Format(time.RFC3339Nano)})
			if status, out := env.post(t, body, signed(t, seamevent.NewMessageID(), body)); status != http.StatusOK || out["quarantined"] == true {
				t.Fatalf("%s at %s: %d %v", typ, at, status, out)
			}
		}
	}
	for _, q := range []string{"sort=urgency", "sort=urgency&needs_troubleshooting=false", "sort=urgency&deletion_state=awaiting_removal",
		"sort=recent", "sort=urgency&needs_troubleshooting=true"} {
		seen := map[string]int{}
		cursor := ""
		for page := 0; ; page++ {
			if page > 20 {
				t.Fatalf("%s: more pages than codes", q)
			}
			path := "/v1/access_codes?limit=1&" + q
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			status, body := opsGet(t, ops, path)
			if status != http.StatusOK {
				t.Fatalf("%s, page %d: %d %.300s", q, page, status, body)
			}
			var out struct {
				Codes []struct {
					ID string `json:"access_code_id"`
				} `json:"access_codes"`
				Next *string `json:"next_cursor"`
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatal(err)
			}
			for _, c := range out.Codes {
				seen[c.ID]++
			}
			if out.Next == nil {
				break
			}
			cursor = *out.Next
		}
		// Each filter's full list, in one page, is what paging must give.
		_, body := opsGet(t, ops, "/v1/access_codes?limit=500&"+q)
		var all struct {
			Codes []struct {
				ID string `json:"access_code_id"`
			} `json:"access_codes"`
		}
		_ = json.Unmarshal([]byte(body), &all)
		if len(all.Codes) == 0 && !strings.Contains(q, "needs_troubleshooting=true") {
			t.Fatalf("%s: no codes listed", q)
		}
		for _, c := range all.Codes {
			if seen[c.ID] != 1 {
				t.Errorf("%s: code %s seen %d times paging", q, c.ID, seen[c.ID])
			}
			delete(seen, c.ID)
		}
		if len(seen) > 0 {
			t.Errorf("%s: paging gave codes the list does not hold: %v", q, seen)
		}
	}
	// Made-up cursors are answered, never a 5xx.
	for raw, want := range map[string]int{
		"t.0.0.9223372036854775807.1": 200, "t.1.0.-210866803200000000.1": 200, "t.1.0..1": 200, "u.1.0.0.1": 200,
		"t.1.0.-9223372036854775808.1": 400, "t.1.0.-210866803200000001.1": 400, "u.1.0.-1.1": 400, "t.1.0.x.1": 400,
	} {
		status, body := opsGet(t, ops, "/v1/access_codes?cursor="+base64.RawURLEncoding.EncodeToString([]byte(raw)))
		if status != want {
			t.Errorf("cursor %s: %d %.200s, want %d", raw, status, body, want)
		}
	}
}
