package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

// FuzzStoredEventsRead (issue 19, point 7): no stored event can break a
// read. Arbitrary signed bodies go through the real webhook handler into a
// real Postgres; after each, every ops route and console page is read for
// every code, lock and workspace the body named, and the lists are paged
// through their cursors: never a 5xx, and a cursor the API gave is never
// refused. The database keeps what earlier inputs stored, so bodies meet
// the codes of earlier ones (the seeds share a code and a lock).
//
// `go test` runs the seeds (a few seconds); `make fuzz` fuzzes briefly.
func FuzzStoredEventsRead(f *testing.F) {
	for _, s := range readFuzzSeeds(f) {
		f.Add(s)
	}
	env := newPubEnv(f, pgtest.New(f))
	srv, b := consoleFor(f, env)
	f.Fuzz(func(t *testing.T, body []byte) {
		b.t = t
		msgID := seamevent.NewMessageID()
		h, err := signedAt(msgID, body)
		if err != nil {
			t.Skip()
		}
		req, err := http.NewRequest(http.MethodPost, env.url(), strings.NewReader(string(body)))
		if err != nil {
			t.Skip()
		}
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("webhook: %d", resp.StatusCode)
		}
		readEverything(t, srv, b, env, msgID, touchedIDs(body))
	})
}

func signedAt(msgID string, body []byte) (http.Header, error) {
	return verify.Sign(pubSecret, msgID, time.Now(), body)
}

// touchedIDs are the code, lock and workspace ids a body names (as the
// store would read them: strings at the top level).
func touchedIDs(body []byte) (ids map[string][]string) {
	ids = map[string][]string{}
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ids
	}
	for _, k := range []string{"access_code_id", "device_id", "workspace_id"} {
		if s, ok := m[k].(string); ok && s != "" {
			ids[k] = append(ids[k], s)
		}
	}
	return ids
}

// readEverything reads every ops route and console page for the ids, and
// retries the body in quarantine if it went there (the console's button).
func readEverything(t *testing.T, srv *httptest.Server, b *browserish, env *pubEnv, msgID string, ids map[string][]string) {
	t.Helper()
	get := func(path string) string {
		t.Helper()
		status, body := opsGet(t, srv, path)
		if status >= 500 {
			t.Fatalf("GET %s: %d %.300s", path, status, body)
		}
		return body
	}
	page := func(path string) {
		t.Helper()
		if r := b.get(path); r.Status >= 500 {
			t.Fatalf("console GET %s: %d %.300s", path, r.Status, r.Body)
		}
	}
	esc := url.PathEscape
	for _, id := range ids["access_code_id"] {
		get("/v1/access_codes/" + esc(id))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/access_codes/"+esc(id)+"/acknowledge", strings.NewReader(`{"note":"fuzz"}`))
		req.Header.Set("Authorization", "Bearer "+inputsToken)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		} else if resp.Body.Close(); resp.StatusCode >= 500 {
			t.Fatalf("acknowledge %q: %d", id, resp.StatusCode)
		}
		page("/console/codes/" + esc(id))
		page("/console/search?" + url.Values{"q": {id}}.Encode())
	}
	lists := []string{""}
	for _, id := range ids["device_id"] {
		get("/v1/devices/" + esc(id))
		page("/console/locks/" + esc(id))
		lists = append(lists, url.Values{"device_id": {id}}.Encode())
	}
	for _, id := range ids["workspace_id"] {
		lists = append(lists, url.Values{"workspace_id": {id}}.Encode())
	}
	for _, filter := range lists {
		for _, q := range []string{"sort=urgency", "sort=recent", "sort=urgency&needs_troubleshooting=false",
			"sort=urgency&deletion_state=awaiting_removal,delayed,failed,deletion_requested"} {
			if filter != "" {
				q += "&" + filter
			}
			walkCodes(t, srv, q, filter == "")
		}
		page("/console/codes?" + filter)
		page("/console/?" + filter)
	}
	get("/v1/devices")
	get("/v1/devices?online=false&has_unconfirmed_deletions=true")
	get("/v1/summary")
	get("/v1/quarantine?limit=5")
	for _, p := range []string{"/console/locks", "/console/locks?online=false", "/console/quarantine", "/console/alerts", "/console/codes?sort=recent"} {
		page(p)
	}
	// A body that went to quarantine, retried from the console.
	var qid int64
	if err := env.pool.QueryRow(context.Background(), `SELECT id FROM quarantine WHERE message_id = $1`, msgID).Scan(&qid); err == nil {
		r := b.post(fmt.Sprintf("/console/quarantine/%d/retry", qid), url.Values{"csrf": {b.csrf("/console/quarantine")}})
		if r.Status >= 500 {
			t.Fatalf("retry quarantined %d: %d %.300s", qid, r.Status, r.Body)
		}
	}
}

// walkCodes pages through a list of codes, two at a time: every page is
// answered, and every cursor it gave is taken. Unfiltered lists, which
// hold every code of the run, are read one page of 500 instead.
func walkCodes(t *testing.T, srv *httptest.Server, q string, whole bool) {
	t.Helper()
	if whole {
		if status, body := opsGet(t, srv, "/v1/access_codes?limit=500&"+q); status != http.StatusOK {
			t.Fatalf("list %s: %d %.300s", q, status, body)
		}
		return
	}
	cursor := ""
	for range 30 {
		path := "/v1/access_codes?limit=2&" + q
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		status, body := opsGet(t, srv, path)
		if status != http.StatusOK {
			t.Fatalf("list %s: %d %.300s", path, status, body)
		}
		var out struct {
			Next *string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("list %s: %v", path, err)
		}
		if out.Next == nil {
			return
		}
		cursor = *out.Next
	}
}

// readFuzzSeeds are Seam-like bodies around one code and one lock, and the
// same with edge values: extreme times, huge and negative numbers, odd
// unicode, NUL, deep nesting, wrong types, codewatch's own types.
func readFuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	const code, dev = "fz-code-1", "fz-dev-1"
	base := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	n := 0
	build := func(typ, code, dev string, at time.Time, set map[string]any) []byte {
		n++
		body, err := seamevent.Build(typ, seamevent.Options{EventID: fmt.Sprintf("fz-ev-%d", n), AccessCodeID: code, DeviceID: dev, OccurredAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(set) == 0 {
			return body
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range set {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var seeds [][]byte
	for i, typ := range []string{lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted,
		"access_code.delay_in_removing_from_device", lifecycle.TypeFailedToRemove, "lock.unlocked"} {
		seeds = append(seeds, build(typ, code, dev, base.Add(time.Duration(i)*time.Minute), nil))
	}
	seeds = append(seeds,
		build("device.disconnected", "", dev, base.Add(10*time.Minute), map[string]any{"error_code": "hub_disconnected", "access_code_id": nil}),
		build("device.connected", "", dev, lifecycle.MaxTime.Add(-time.Microsecond), map[string]any{"access_code_id": nil}))
	// Times: the edges of what is stored, and past them.
	for i, at := range []string{"9999-12-31T23:59:59.9999999Z", "9999-12-30T23:59:59.999999Z", "0001-01-02T00:00:00Z",
		"0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00", "1969-12-31T23:59:59.999999999Z",
		"2262-04-11T23:47:16.854775808Z", "2026-06-01t10:00:00z", "1900-01-01T00:00:00+14:00"} {
		c := fmt.Sprintf("fz-time-%d", i)
		seeds = append(seeds,
			build(lifecycle.TypeSetOnDevice, c, dev, base, map[string]any{"occurred_at": at, "created_at": at}),
			build(lifecycle.TypeDeleted, c, dev, base, map[string]any{"occurred_at": at}))
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	seeds = append(seeds,
		// Numbers and wrong types.
		build(lifecycle.TypeDeleted, code, dev, base, map[string]any{"occurred_at": 1e308, "created_at": -1}),
		build(lifecycle.TypeDeleted, code, dev, base, map[string]any{"access_code_id": raw(`-9007199254740993`)}),
		build(lifecycle.TypeDeleted, code, dev, base, map[string]any{"event_type": 42, "device_id": []int{1}}),
		build(lifecycle.TypeFailedToRemove, code, dev, base, map[string]any{"access_code_errors": "not an array",
			"device_errors": []any{1e300, -1, nil, "x", map[string]any{"created_at": 9e18, "message": 7}}}),
		build(lifecycle.TypeFailedToRemove, code, dev, base, map[string]any{"access_code_errors": raw(`[{"created_at":"10000-01-01T00:00:00Z","message":1e400}]`)}),
		build(lifecycle.TypeFailedToRemove, code, dev, base, map[string]any{"access_code_errors": raw(`[{"created_at":"0000-01-01T00:00:00Z","message":"\u0000 NUL \ud800 lone"}]`)}),
		// Deep nesting, in the details kept and in a field ignored.
		build(lifecycle.TypeFailedToRemove, code, dev, base, map[string]any{"device_errors": raw(strings.Repeat("[", 3000) + strings.Repeat("]", 3000))}),
		build(lifecycle.TypeDeleted, code, dev, base, map[string]any{"x": raw(strings.Repeat(`{"a":`, 9000) + "1" + strings.Repeat("}", 9000))}),
		// Odd unicode and path characters in ids; NUL.
		build(lifecycle.TypeDeleted, "fz-\u202e-rtl-\u2028-😀", "fz/dev?x=1#f", base, nil),
		build(lifecycle.TypeDeleted, "..", "%2F", base, map[string]any{"workspace_id": raw(`"ws <b>&amp;</b> \ud83d"`)}),
		build(lifecycle.TypeDeleted, "fz-nul\u0000", dev, base, nil),
		build(lifecycle.TypeDeleted, strings.Repeat("é", 127), strings.Repeat("d", 255), base, nil),
		build("device.disconnected", "", "fz-dev-2", base, map[string]any{"error_code": strings.Repeat("\u0000", 3), "access_code_id": nil}),
		// codewatch's own types, claimed by a webhook.
		lifecycle.OwnEvent("fz-own-1", lifecycle.TypeAccessCodeGone, base, lifecycle.CodeRef{AccessCodeID: code, DeviceID: dev},
			lifecycle.PollDetails{Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}}).Body,
		[]byte(`{"event_id":"fz-own-2","event_type":"codewatch.deletion_requested","access_code_id":"fz-code-1","occurred_at":"9999-12-30T00:00:00Z","details":{"requested_at":"0000-01-01T00:00:00Z","action_attempt_id":7}}`),
		[]byte(`not json`), []byte(`{}`), []byte(`[]`), []byte(`{"event_id":"fz-x","event_type":"lock.unlocked","access_code_id":"fz-code-1","device_id":"fz-dev-1","code":"4821","occurred_at":"2026-06-01T10:30:00Z"}`),
	)
	return seeds
}
