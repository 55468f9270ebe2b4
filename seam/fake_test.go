package seam_test

// Tests against Seam's own fake (@seamapi/fake-seam-connect, pinned in
// test/seamtest), started per test by internal/seamtest. The fake cannot
// answer 429, so rate-limit answers are tested against httptest servers
// playing Seam (Test429RetryAfter).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/seamtest"
	"github.com/codewatch/codewatch/seam"
)

// fakeClient is a client of f on a fake clock: backoff and limits cost no
// real time.
func fakeClient(t *testing.T, f *seamtest.Fake, mod func(*seam.Config)) (*seam.Client, *sleeper) {
	t.Helper()
	clock := newSleeper()
	cfg := seam.Config{APIKey: f.APIKey, BaseURL: f.URL, Now: clock.Now, Sleep: clock.Sleep}
	if mod != nil {
		mod(&cfg)
	}
	c, err := seam.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clock
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestFakeDeleteLifecycle(t *testing.T) {
	f := seamtest.Start(t)
	c, _ := fakeClient(t, f, nil)
	ctx := context.Background()
	dev := f.Devices[0]
	id := must[string](t)(f.CreateAccessCode(ctx, dev, "4821"))

	ac, err := c.GetAccessCode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ac.AccessCodeID != id || ac.DeviceID != dev || ac.WorkspaceID != f.WorkspaceID || ac.Code != "4821" ||
		!ac.IsManaged || ac.Status != "setting" || ac.Type != "ongoing" || ac.CreatedAt.IsZero() || len(ac.Raw) == 0 {
		t.Errorf("access code = %#v\nraw %s", ac, ac.Raw)
	}

	// The fake deletes at once and stores the attempt as success, but
	// answers with the pending attempt, as Seam does.
	aa, err := c.DeleteAccessCode(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if aa.ID == "" || aa.ActionType != "DELETE_ACCESS_CODE" || aa.Status != seam.ActionAttemptPending ||
		aa.Error != nil || string(aa.Result) != "null" || aa.RequestID == "" {
		t.Errorf("delete = %+v", aa)
	}
	got, err := c.GetActionAttempt(ctx, aa.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != aa.ID || got.Status != seam.ActionAttemptSuccess || got.Error != nil {
		t.Errorf("attempt after = %+v", got)
	}

	// Gone: the fake says not_found where Seam says access_code_not_found.
	_, err = c.GetAccessCode(ctx, id)
	var se *seam.Error
	if !seam.IsNotFound(err) || !errors.As(err, &se) || se.Status != http.StatusNotFound || se.Type != "not_found" ||
		se.RequestID == "" || se.Attempts != 1 {
		t.Errorf("get after delete: %v", err)
	}
	// Deleting again: Seam's access_code_not_found, with the id in data.
	_, err = c.DeleteAccessCode(ctx, id, "")
	if !seam.IsNotFound(err) || !errors.As(err, &se) || se.Type != "access_code_not_found" || se.Data["access_code_id"] != id {
		t.Errorf("second delete: %v", err)
	}
	_, err = c.GetActionAttempt(ctx, "no_such_attempt")
	if !seam.IsNotFound(err) || !errors.As(err, &se) || se.Type != "action_attempt_not_found" {
		t.Errorf("unknown attempt: %v", err)
	}

	// A wrong key is a plain 401, not retried.
	bad, _ := fakeClient(t, f, func(cfg *seam.Config) { cfg.APIKey = "seam_wrong_key" })
	_, err = bad.GetAccessCode(ctx, "x")
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Type != "unauthorized" || se.Attempts != 1 {
		t.Errorf("wrong key: %v", err)
	}
}

func TestFakeActionAttemptError(t *testing.T) {
	f := seamtest.Start(t)
	c, _ := fakeClient(t, f, nil)
	ctx := context.Background()
	id := must[string](t)(f.CreateAccessCode(ctx, f.Devices[1], "1357"))
	aa := must[*seam.ActionAttempt](t)(c.DeleteAccessCode(ctx, id, ""))

	err := f.UpdateActionAttempt(ctx, aa.ID, "error", &seamtest.ActionAttemptError{
		Type: "failed_to_remove_from_device", Message: "The lock did not answer",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := must[*seam.ActionAttempt](t)(c.GetActionAttempt(ctx, aa.ID))
	if got.Status != seam.ActionAttemptError || got.Error == nil || got.Error.Type != "failed_to_remove_from_device" ||
		got.Error.Message != "The lock did not answer" || string(got.Result) != "null" {
		t.Errorf("attempt = %+v (error %+v)", got, got.Error)
	}

	if err := f.UpdateActionAttempt(ctx, aa.ID, "success", nil); err != nil {
		t.Fatal(err)
	}
	got = must[*seam.ActionAttempt](t)(c.GetActionAttempt(ctx, aa.ID))
	if got.Status != seam.ActionAttemptSuccess || got.Error != nil || string(got.Result) != "{}" {
		t.Errorf("attempt = %+v, result %s", got, got.Result)
	}
}

func TestFakeUnmanagedList(t *testing.T) {
	f := seamtest.Start(t)
	c, _ := fakeClient(t, f, nil)
	ctx := context.Background()
	dev := f.Devices[1]
	managed := must[string](t)(f.CreateAccessCode(ctx, dev, "2468"))
	unmanaged := must[string](t)(f.CreateUnmanagedAccessCode(ctx, dev, "Cleaner", "97531"))

	list, err := c.ListUnmanagedAccessCodes(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].AccessCodeID != unmanaged || list[0].AccessCodeID == managed || list[0].IsManaged ||
		list[0].Code != "97531" || list[0].Name != "Cleaner" || list[0].DeviceID != dev || len(list[0].Raw) == 0 {
		t.Errorf("unmanaged = %v", list)
	}
	other, err := c.ListUnmanagedAccessCodes(ctx, f.Devices[0])
	if err != nil || len(other) != 0 {
		t.Errorf("other device: %v, %v", other, err)
	}
}

func TestFakeEvents(t *testing.T) {
	f := seamtest.Start(t)
	var requests atomic.Int32
	c, _ := fakeClient(t, f, func(cfg *seam.Config) {
		cfg.HTTPClient = &http.Client{Transport: countingTransport{&requests}}
	})
	ctx := context.Background()
	// Back-dated, away from the seed's own events, with fields Seam may add.
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var added []json.RawMessage
	for i := range 30 {
		raw, err := f.AddEvent(ctx, map[string]any{
			"event_type":     "access_code.removed_from_device",
			"access_code_id": fmt.Sprintf("code_%d", i),
			"device_id":      f.Devices[0],
			"created_at":     base.Add(time.Duration(i+1) * time.Minute).Format(time.RFC3339Nano),
			"a_future_field": map[string]any{"nested": []any{1, "two", nil}, "pin": "0000"},
		})
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, raw)
	}
	// Events nobody asked about, just outside the window.
	_ = must[json.RawMessage](t)(f.AddEvent(ctx, map[string]any{"event_type": "device.connected", "created_at": base.Add(-time.Second).Format(time.RFC3339Nano)}))

	events, err := c.ListEvents(ctx, seam.ListEventsParams{Between: [2]time.Time{base, base.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(added) {
		t.Fatalf("%d events, want %d", len(events), len(added))
	}
	for i := range events {
		if string(events[i]) != string(added[i]) {
			t.Errorf("event %d:\n got %s\nwant %s", i, events[i], added[i])
		}
	}
	// Filters the fake gets right.
	one, err := c.ListEvents(ctx, seam.ListEventsParams{
		Between: [2]time.Time{base, base.Add(time.Hour)}, AccessCodeIDs: []string{"code_7"},
	})
	if err != nil || len(one) != 1 || string(one[0]) != string(added[7]) {
		t.Errorf("by access code: %s, %v", one, err)
	}

	read := func(limit int) (ids map[string]int) {
		ids = map[string]int{}
		err := c.ListEventsWindowed(ctx, base, base.Add(time.Hour), limit, func(raw []json.RawMessage) error {
			for _, r := range raw {
				var e struct {
					ID string `json:"event_id"`
				}
				if err := json.Unmarshal(r, &e); err != nil {
					return err
				}
				ids[e.ID]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// The fake ignores limit: more than asked means the answer is whole.
	requests.Store(0)
	if ids := read(10); len(ids) != 30 || requests.Load() != 1 {
		t.Errorf("limit 10: %d events in %d requests", len(ids), requests.Load())
	}
	// Exactly the limit: split, and every event still arrives.
	requests.Store(0)
	if ids := read(30); len(ids) != 30 || requests.Load() < 3 {
		t.Errorf("limit 30: %d events in %d requests", len(ids), requests.Load())
	}
}

type countingTransport struct{ n *atomic.Int32 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestFakeOutage(t *testing.T) {
	f := seamtest.Start(t)
	ctx := context.Background()
	id := must[string](t)(f.CreateAccessCode(ctx, f.Devices[0], "8080"))
	if err := f.SimulateWorkspaceOutage(ctx, "/access_codes/get", "/access_codes/delete"); err != nil {
		t.Fatal(err)
	}

	t.Run("surfaced after the last attempt", func(t *testing.T) {
		c, clock := fakeClient(t, f, func(cfg *seam.Config) { cfg.MaxAttempts = 3 })
		_, err := c.GetAccessCode(ctx, id)
		var se *seam.Error
		if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || se.Attempts != 3 ||
			se.Message != "Service Unavailable" || se.RequestID == "" {
			t.Fatalf("err = %v", err)
		}
		if len(clock.Waits()) != 2 {
			t.Errorf("waits = %v", clock.Waits())
		}
	})

	t.Run("recovered while retrying", func(t *testing.T) {
		c, clock := fakeClient(t, f, nil)
		clock.hook = func(n int) {
			if n == 2 {
				if err := f.SimulateWorkspaceOutage(ctx); err != nil {
					t.Error(err)
				}
			}
		}
		aa, err := c.DeleteAccessCode(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		if aa.Status != seam.ActionAttemptPending || len(clock.Waits()) != 2 {
			t.Errorf("attempt = %+v after waits %v", aa, clock.Waits())
		}
		if _, err := c.GetAccessCode(ctx, id); !seam.IsNotFound(err) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestFakeDeviceOnline(t *testing.T) {
	f := seamtest.Start(t)
	c, _ := fakeClient(t, f, nil)
	ctx := context.Background()
	dev := f.Devices[0]
	d := must[*seam.Device](t)(c.GetDevice(ctx, dev))
	if d.DeviceID != dev || d.WorkspaceID != f.WorkspaceID || !d.Properties.Online || len(d.Errors) != 0 || len(d.Raw) == 0 {
		t.Errorf("device = %+v", d)
	}
	if err := f.SetDeviceOnline(ctx, dev, false); err != nil {
		t.Fatal(err)
	}
	d = must[*seam.Device](t)(c.GetDevice(ctx, dev))
	if d.Properties.Online || len(d.Errors) != 1 || d.Errors[0].ErrorCode != "device_offline" || d.Errors[0].CreatedAt.IsZero() {
		t.Errorf("offline device = %+v", d)
	}
	if err := f.SetDeviceOnline(ctx, dev, true); err != nil {
		t.Fatal(err)
	}
	d = must[*seam.Device](t)(c.GetDevice(ctx, dev))
	if !d.Properties.Online || len(d.Errors) != 0 {
		t.Errorf("online again = %+v", d)
	}
	if _, err := c.GetDevice(ctx, "no_such_device"); !seam.IsNotFound(err) {
		t.Errorf("unknown device: %v", err)
	}
}

func TestFakeAddedAccessCodeKeepsFields(t *testing.T) {
	f := seamtest.Start(t)
	c, _ := fakeClient(t, f, nil)
	ctx := context.Background()
	id := must[string](t)(f.AddAccessCode(ctx, f.Devices[1], "6543", map[string]any{
		"status":            "removing",
		"pending_mutations": []any{map[string]any{"mutation_code": "deleting"}},
		"warnings":          []any{map[string]any{"warning_code": "delay_in_removing_from_device", "message": "The lock is slow"}},
	}))
	if err := f.UpdateAccessCode(ctx, id, map[string]any{
		"errors": []any{map[string]any{"error_code": "failed_to_remove_from_device", "message": "No answer", "created_at": "2025-01-01T00:00:00.000Z"}},
	}); err != nil {
		t.Fatal(err)
	}
	ac := must[*seam.AccessCode](t)(c.GetAccessCode(ctx, id))
	if ac.Status != "removing" || string(ac.PendingMutations) != `[{"mutation_code":"deleting"}]` ||
		len(ac.Warnings) != 1 || ac.Warnings[0].WarningCode != "delay_in_removing_from_device" ||
		len(ac.Errors) != 1 || ac.Errors[0].ErrorCode != "failed_to_remove_from_device" || ac.Errors[0].CreatedAt.IsZero() {
		t.Errorf("code = %#v\nraw %s", ac, ac.Raw)
	}
}

// TestFakeDeleteWithDeviceIDQuirk pins down a bug of the fake (1.86.0) that
// tests of codewatch must step around: given device_id, access_codes/delete
// deletes the right code but records access_code.deleted for the first code
// on that device. Without device_id the event is right but has no
// device_id. If this test fails after a fake upgrade, the bug is fixed:
// drop the test and the note in test/seamtest/README.md.
func TestFakeDeleteWithDeviceIDQuirk(t *testing.T) {
	f := seamtest.Start(t)
	c, _ := fakeClient(t, f, nil)
	ctx := context.Background()
	dev := f.Devices[0]
	first := must[string](t)(f.CreateAccessCode(ctx, dev, "1111"))
	second := must[string](t)(f.CreateAccessCode(ctx, dev, "2222"))
	since := time.Now().Add(-time.Minute)
	if _, err := c.DeleteAccessCode(ctx, second, dev); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAccessCode(ctx, second); !seam.IsNotFound(err) {
		t.Errorf("second code: %v", err)
	}
	if _, err := c.GetAccessCode(ctx, first); err != nil {
		t.Errorf("first code: %v", err)
	}
	events := must[[]json.RawMessage](t)(c.ListEvents(ctx, seam.ListEventsParams{Since: since, EventTypes: []string{"access_code.deleted"}}))
	var e struct {
		AccessCodeID string `json:"access_code_id"`
	}
	if len(events) != 1 || json.Unmarshal(events[0], &e) != nil || e.AccessCodeID != first {
		t.Errorf("deleted events = %s; the fake's quirk changed", events)
	}
}

// TestFakeDeleteScale sends 1,000 deletions through one Client, 500 on each
// of two locks: the per-device limit (20 a minute) must hold them back for
// at least 24 minutes, of fake time.
func TestFakeDeleteScale(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 codes against the fake")
	}
	f := seamtest.Start(t)
	ctx := context.Background()
	const total = 1000
	type job struct{ code, device string }
	jobs := make([]job, total)
	for i := range jobs {
		dev := f.Devices[i%2]
		id, err := f.AddAccessCode(ctx, dev, fmt.Sprintf("%06d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = job{id, dev}
	}
	c, clock := fakeClient(t, f, func(cfg *seam.Config) { cfg.RPS = math.Inf(1) })
	var mu sync.Mutex
	perDevice := map[string]int{}
	since := time.Now().Add(-time.Minute)

	queue := make(chan job)
	var wg sync.WaitGroup
	var attempts sync.Map
	for range 16 {
		wg.Go(func() {
			for j := range queue {
				aa, err := c.DeleteAccessCode(ctx, j.code, j.device)
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				perDevice[j.device]++
				mu.Unlock()
				attempts.Store(aa.ID, j.code)
			}
		})
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()

	n := 0
	attempts.Range(func(any, any) bool { n++; return true })
	if n != total {
		t.Errorf("%d distinct action attempts, want %d", n, total)
	}
	for _, dev := range f.Devices {
		if perDevice[dev] != total/2 {
			t.Errorf("%s: %d deletions, want %d", dev, perDevice[dev], total/2)
		}
	}
	if took := clock.Now().Sub(t0); took < 24*time.Minute {
		t.Errorf("1,000 deletions took %v of fake time, want at least 24m (500 a device at 20 a minute)", took)
	}
	// The fake recorded each deletion.
	deleted := must[[]json.RawMessage](t)(c.ListEvents(ctx, seam.ListEventsParams{Since: since, EventTypes: []string{"access_code.deleted"}}))
	if len(deleted) != total {
		t.Errorf("%d access_code.deleted events, want %d", len(deleted), total)
	}
	for _, j := range jobs[:5] {
		if _, err := c.GetAccessCode(ctx, j.code); !seam.IsNotFound(err) {
			t.Errorf("%s after delete: %v", j.code, err)
		}
	}
}
