package names_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/seamtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/names"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seam"
)

// queued records the jobs a scan inserts instead of running them.
type queued struct{ args []river.JobArgs }

func (q *queued) InsertMany(_ context.Context, ps []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	for _, p := range ps {
		q.args = append(q.args, p.Args)
	}
	return nil, nil
}

func event(t *testing.T, typ, id, code, device string, at time.Time, extra map[string]any) lifecycle.Delivery {
	t.Helper()
	m := map[string]any{
		"event_id": id, "event_type": typ, "access_code_id": code, "device_id": device,
		"workspace_id": "seed_workspace_1", "occurred_at": at.UTC().Format(time.RFC3339Nano),
		"created_at": at.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return lifecycle.Delivery{MessageID: "msg_" + id, Body: b}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// Names come from Seam's fake (devices/get, access_codes/get) through the
// scan's jobs, show on the code and the lock, and ?q= finds them by any
// part of the code's, the lock's or the location's name, in any case.
func TestNamesFromSeamsFake(t *testing.T) {
	ctx := context.Background()
	f := seamtest.Start(t)
	pool := pgtest.New(t)
	store := storetest.New(t, pool, postgres.Config{Keys: storetest.Keys(t), RemovalTimeout: 30 * time.Minute})
	client, err := seam.New(seam.Config{APIKey: f.APIKey, BaseURL: f.URL, RPS: 1000, MaxAttempts: 3,
		BaseBackoff: 5 * time.Millisecond, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dev := f.Devices[0]
	if err := f.UpdateDevice(ctx, dev, map[string]any{"display_name": "Front door",
		"location": map[string]any{"location_name": "12 Elm St", "time_zone": "America/New_York"}}); err != nil {
		t.Fatal(err)
	}
	id, err := f.AddAccessCode(ctx, dev, "4821", map[string]any{"name": "Guest: Smith, 5–8 Dec"})
	if err != nil {
		t.Fatal(err)
	}
	// Another code on the other lock, which has no name of ours.
	other, err := f.AddAccessCode(ctx, f.Devices[1], "5931", map[string]any{"name": "Cleaner"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, c := range []struct{ code, dev string }{{id, dev}, {other, f.Devices[1]}} {
		if _, err := store.Ingest(ctx, event(t, lifecycle.TypeSetOnDevice, fmt.Sprint("ev_set_", i), c.code, c.dev, now.Add(-time.Hour), nil)); err != nil {
			t.Fatal(err)
		}
	}
	// A code and lock of another workspace than the key's: never asked
	// about with the key (the scan settles them; the counts below).
	if _, err := store.Ingest(ctx, event(t, lifecycle.TypeSetOnDevice, "ev_other", "otherws", "other-lock", now.Add(-time.Hour),
		map[string]any{"workspace_id": "other_workspace"})); err != nil {
		t.Fatal(err)
	}
	c, err := store.GetAccessCode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessCodeName != nil || c.DeviceName != nil {
		t.Fatalf("names before any fetch: %s, %s", str(c.AccessCodeName), str(c.DeviceName))
	}

	q := &queued{}
	svc := names.New(names.Config{Seam: client, Store: store, Jobs: q, RPS: 1000, Workspace: func() string { return "seed_workspace_1" }})
	if err := svc.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	var codes, devices int
	for _, a := range q.args {
		switch a := a.(type) {
		case jobs.FetchCodeName:
			codes++
			if err := svc.FetchCode(ctx, a.AccessCodeID); err != nil {
				t.Fatal(err)
			}
		case jobs.FetchDeviceNames:
			devices++
			if err := svc.FetchDevice(ctx, a.DeviceID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if codes != 2 || devices != 2 {
		t.Fatalf("the scan queued %d code and %d lock fetches, want 2 and 2", codes, devices)
	}
	// Settled: the next scan queues nothing.
	q.args = nil
	if err := svc.Scan(ctx); err != nil || len(q.args) != 0 {
		t.Fatalf("second scan: %v, %d jobs", err, len(q.args))
	}

	c, err = store.GetAccessCode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if str(c.AccessCodeName) != "Guest: Smith, 5–8 Dec" || str(c.DeviceName) != "Front door" ||
		str(c.LocationName) != "12 Elm St" || str(c.TimeZone) != "America/New_York" {
		t.Fatalf("code's names: %s / %s / %s / %s", str(c.AccessCodeName), str(c.DeviceName), str(c.LocationName), str(c.TimeZone))
	}
	d, err := store.GetDevice(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	if str(d.DeviceName) != "Front door" || str(d.LocationName) != "12 Elm St" || str(d.TimeZone) != "America/New_York" {
		t.Fatalf("lock's names: %s / %s / %s", str(d.DeviceName), str(d.LocationName), str(d.TimeZone))
	}

	for query, want := range map[string][]string{
		"smith": {id}, "FRONT": {id}, "elm st": {id}, "clean": {other}, "nobody": nil,
		"%": nil, "_": nil,
	} {
		list, _, err := store.ListAccessCodes(ctx, lifecycle.ListFilter{Query: query, Limit: 10, Sort: lifecycle.SortUrgency})
		if err != nil {
			t.Fatalf("q=%s: %v", query, err)
		}
		var got []string
		for _, c := range list {
			got = append(got, c.AccessCodeID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("codes q=%q: %v, want %v", query, got, want)
		}
		if query == "smith" && len(list) == 1 && str(list[0].DeviceName) != "Front door" {
			t.Errorf("a listed code's lock name: %s", str(list[0].DeviceName))
		}
	}
	for query, want := range map[string][]string{"front": {dev}, "12 ELM": {dev}, "smith": nil} {
		list, _, err := store.ListDevices(ctx, lifecycle.DeviceFilter{Query: query, Limit: 10})
		if err != nil {
			t.Fatalf("devices q=%s: %v", query, err)
		}
		var got []string
		for _, d := range list {
			got = append(got, d.DeviceID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("devices q=%q: %v, want %v", query, got, want)
		}
	}

	// An alert's delivery reads them as they are now.
	n, err := svc.ForAlert(ctx, id, dev, "seed_workspace_1", time.Second)
	if err != nil || str(n.AccessCodeName) != "Guest: Smith, 5–8 Dec" || str(n.DeviceName) != "Front door" {
		t.Fatalf("ForAlert: %+v, %v", n, err)
	}
}

// A code first seen by its deletion has no name to learn (Seam has
// forgotten it): the scan settles it without asking Seam, and it stays
// null.
func TestCodeFirstSeenDeletedHasNoName(t *testing.T) {
	ctx := context.Background()
	f := seamtest.Start(t)
	pool := pgtest.New(t)
	store := storetest.New(t, pool, postgres.Config{Keys: storetest.Keys(t), RemovalTimeout: 30 * time.Minute})
	client, err := seam.New(seam.Config{APIKey: f.APIKey, BaseURL: f.URL, RPS: 1000, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, typ := range []string{lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice} {
		if _, err := store.Ingest(ctx, event(t, typ, "ev_"+typ, "gone_code", f.Devices[0], now.Add(-time.Minute), nil)); err != nil {
			t.Fatal(err)
		}
	}
	q := &queued{}
	svc := names.New(names.Config{Seam: client, Store: store, Jobs: q, RPS: 1000, Workspace: func() string { return "seed_workspace_1" }})
	if err := svc.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range q.args {
		if c, ok := a.(jobs.FetchCodeName); ok {
			t.Fatalf("the scan asked Seam about a removed code: %+v", c)
		}
	}
	n, err := svc.ForAlert(ctx, "gone_code", f.Devices[0], "seed_workspace_1", time.Second)
	if err != nil || n.AccessCodeName != nil {
		t.Fatalf("names of a code first seen deleted: %+v, %v", n, err)
	}
}
