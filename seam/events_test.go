package seam_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/seam"
)

func TestListEventsKeepsRawBytes(t *testing.T) {
	// Odd spacing, key order, escapes and unknown fields must come back
	// byte for byte.
	e1 := `{ "event_id" : "e1",  "event_type":"access_code.deleted", "code": null, "x":[1, 2.50] }`
	e2 := `{"workspace_id":"w","event_id":"e2","name":"caf\u00e9 \"door\"","nested":{"a":{}}}`
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = nil
		_ = json.NewDecoder(r.Body).Decode(&got)
		io.WriteString(w, `{"events":[`+e1+" ,\n  "+e2+`],"ok":true}`)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv, nil)
	since := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	evs, err := c.ListEvents(context.Background(), seam.ListEventsParams{
		Since: since, EventTypes: []string{"access_code.deleted"}, AccessCodeIDs: []string{"c1"},
		DeviceIDs: []string{"d1", "d2"}, Limit: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || string(evs[0]) != e1 || string(evs[1]) != e2 {
		t.Errorf("events = %q", evs)
	}
	want := map[string]any{
		"since": "2025-03-01T11:00:00.123Z", "event_types": []any{"access_code.deleted"},
		"access_code_ids": []any{"c1"}, "device_ids": []any{"d1", "d2"}, "limit": float64(50),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("body = %v\nwant   %v", got, want)
	}

	// between rounds outwards to milliseconds; no filters, no limit.
	_, err = c.ListEvents(context.Background(), seam.ListEventsParams{Between: [2]time.Time{
		time.Date(2025, 3, 1, 0, 0, 0, 999999, time.UTC), time.Date(2025, 3, 2, 0, 0, 0, 1, time.UTC),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "map[between:[2025-03-01T00:00:00.000Z 2025-03-02T00:00:00.001Z]]" {
		t.Errorf("body = %v", got)
	}
}

func TestListEventsChecksParams(t *testing.T) {
	srv, n := scripted(t, answer{200, nil, `{"events":[],"ok":true}`})
	c, _ := newClient(t, srv, nil)
	for _, p := range []seam.ListEventsParams{
		{},
		{Since: t0, Between: [2]time.Time{t0, t0.Add(time.Hour)}},
		{Between: [2]time.Time{t0.Add(time.Hour), t0}},
		{Between: [2]time.Time{t0, {}}},
	} {
		if _, err := c.ListEvents(context.Background(), p); err == nil {
			t.Errorf("ListEvents(%+v) accepted", p)
		}
	}
	if n.Load() != 0 {
		t.Errorf("%d requests sent for bad parameters", n.Load())
	}
	evs, err := c.ListEvents(context.Background(), seam.ListEventsParams{Since: t0})
	if err != nil || evs == nil || len(evs) != 0 {
		t.Errorf("empty list = %v, %v", evs, err)
	}
	srv2, _ := scripted(t, answer{200, nil, `{"ok":true}`})
	c2, _ := newClient(t, srv2, nil)
	if _, err := c2.ListEvents(context.Background(), seam.ListEventsParams{Since: t0}); err == nil {
		t.Error("an answer without events was taken for an empty list")
	}
}

// eventStore is a Seam stand-in for events/list that, like the fake, keeps
// events strictly inside between, oldest first, and, unlike the fake,
// honours limit when honour is set.
type eventStore struct {
	events   []storedEvent
	honour   bool
	requests atomic.Int32
}

type storedEvent struct {
	id string
	at time.Time
}

func (s *eventStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	var body struct {
		Between [2]time.Time `json:"between"`
		Limit   int          `json:"limit"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(400)
		return
	}
	var out []string
	for _, e := range s.events {
		if e.at.After(body.Between[0]) && e.at.Before(body.Between[1]) {
			out = append(out, fmt.Sprintf(`{"event_id":%q,"created_at":%q}`, e.id, e.at.Format("2006-01-02T15:04:05.000Z")))
		}
	}
	if s.honour && body.Limit > 0 && len(out) > body.Limit {
		out = out[:body.Limit]
	}
	io.WriteString(w, `{"events":[`+strings.Join(out, ",")+`],"ok":true}`)
}

func collect(t *testing.T, c *seam.Client, from, to time.Time, limit int) (ids []string, batches int) {
	t.Helper()
	err := c.ListEventsWindowed(context.Background(), from, to, limit, func(raw []json.RawMessage) error {
		batches++
		for _, r := range raw {
			var e struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(r, &e); err != nil {
				return err
			}
			ids = append(ids, e.EventID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, batches
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func TestListEventsWindowedSplitsFullWindows(t *testing.T) {
	store := &eventStore{honour: true}
	from, to := t0, t0.Add(time.Hour)
	var want []string
	// Some before, at the edges of, inside and after the window, several
	// on the same millisecond, and one on the first split point.
	add := func(id string, at time.Time, in bool) {
		store.events = append(store.events, storedEvent{id, at})
		if in {
			want = append(want, id)
		}
	}
	add("before", from.Add(-time.Second), false)
	add("at-from", from, true)
	for i := range 100 {
		add(fmt.Sprintf("e%03d", i), from.Add(time.Duration(i)*35*time.Second+time.Duration(i)*time.Millisecond), true)
	}
	for i := range 3 {
		add(fmt.Sprintf("same%d", i), from.Add(20*time.Minute+500*time.Millisecond), true)
	}
	add("at-mid", from.Add(30*time.Minute), true)
	add("at-to", to, true)
	add("after", to.Add(time.Second), false)
	sort.Strings(want)
	srv := httptest.NewServer(store)
	defer srv.Close()
	c, _ := newClient(t, srv, nil)

	ids, batches := collect(t, c, from, to, 10)
	if got := dedupe(ids); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %d events, want %d:\n%v\n%v", len(got), len(want), got, want)
	}
	if batches < 11 || store.requests.Load() <= int32(batches) {
		t.Errorf("%d batches in %d requests: full pages were not split", batches, store.requests.Load())
	}
	// Windows come oldest first.
	if ids[0] != "at-from" {
		t.Errorf("first event %s", ids[0])
	}

	// A page limit above the count: one request.
	store.requests.Store(0)
	ids, _ = collect(t, c, from, to, 500)
	if store.requests.Load() != 1 || len(dedupe(ids)) != len(want) {
		t.Errorf("%d requests, %d events", store.requests.Load(), len(ids))
	}
}

func TestListEventsWindowedServerIgnoringLimit(t *testing.T) {
	store := &eventStore{honour: false}
	for i := range 40 {
		store.events = append(store.events, storedEvent{fmt.Sprintf("e%02d", i), t0.Add(time.Duration(i+1) * time.Minute)})
	}
	srv := httptest.NewServer(store)
	defer srv.Close()
	c, _ := newClient(t, srv, nil)
	// More than the limit came back: the answer is whole, no split.
	ids, _ := collect(t, c, t0, t0.Add(time.Hour), 10)
	if len(ids) != 40 || store.requests.Load() != 1 {
		t.Errorf("%d events in %d requests", len(ids), store.requests.Load())
	}
	// Exactly the limit is ambiguous: split, and still get each event.
	store.requests.Store(0)
	ids, _ = collect(t, c, t0, t0.Add(time.Hour), 40)
	if got := dedupe(ids); len(got) != 40 || store.requests.Load() != 3 {
		t.Errorf("%d events in %d requests, want 40 in 3", len(got), store.requests.Load())
	}
}

func TestListEventsWindowedStopsAtMinimumWindow(t *testing.T) {
	store := &eventStore{honour: true}
	for i := range 8 {
		store.events = append(store.events, storedEvent{fmt.Sprintf("e%d", i), t0.Add(10 * time.Minute)})
	}
	srv := httptest.NewServer(store)
	defer srv.Close()
	var logs logtest.Buffer
	c, _ := newClient(t, srv, func(cfg *seam.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ids, _ := collect(t, c, t0, t0.Add(time.Hour), 5)
	// 3600 s halves down to under 2 s: about 12 levels, each with one full
	// window and one empty one.
	if len(ids) != 5 || store.requests.Load() > 30 {
		t.Errorf("%d events in %d requests", len(ids), store.requests.Load())
	}
	if !strings.Contains(logs.String(), "still full") {
		t.Errorf("no warning about the full window:\n%s", logs.String())
	}
}

func TestListEventsWindowedStopsOnCallbackError(t *testing.T) {
	store := &eventStore{honour: true}
	for i := range 30 {
		store.events = append(store.events, storedEvent{fmt.Sprintf("e%d", i), t0.Add(time.Duration(i+1) * time.Minute)})
	}
	srv := httptest.NewServer(store)
	defer srv.Close()
	c, _ := newClient(t, srv, nil)
	stop := errors.New("stop")
	calls := 0
	err := c.ListEventsWindowed(context.Background(), t0, t0.Add(time.Hour), 10, func([]json.RawMessage) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("err = %v after %d calls", err, calls)
	}
	if err := c.ListEventsWindowed(context.Background(), t0, t0, 10, nil); err == nil {
		t.Error("an empty window was accepted")
	}
}
