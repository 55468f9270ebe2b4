package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// Defect (found by the read benchmark): a batch with a lock's event read
// every lock's device events to refold the one it named, because the
// planner, its statistics taken before those events came, scanned all of
// events_device_idx and joined the few locks wanted. Refolding cost 8-70
// ms per batch at 9,000 device events and grew with the history, inside the
// ingest transaction; ingest's p99 climbed from 20 ms to 240 ms in ten
// minutes. Each lock (and account) must be an index condition, whatever
// the statistics say.
func TestRefoldReadsOnlyItsLocks(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	s := retStore(t, pool, clocktest.New(time.Now()))

	// Statistics from before any lock reported anything.
	if _, err := pool.Exec(ctx, `ANALYZE events; ANALYZE devices`); err != nil {
		t.Fatal(err)
	}
	const locks, reports = 200, 5
	at := time.Now().Add(-time.Hour)
	for i := range locks * reports {
		dev := fmt.Sprintf("00000000-0000-4000-8000-%012d", i%locks)
		typ := lifecycle.TypeDeviceConnected
		if i/locks%2 == 1 {
			typ = lifecycle.TypeDeviceDisconnected
		}
		b, err := json.Marshal(map[string]any{"event_id": seamevent.NewID(), "event_type": typ,
			"device_id": dev, "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
			"occurred_at": at.Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: b})
		if err != nil || res.Outcome != lifecycle.Stored {
			t.Fatalf("ingest %s: %+v %v", typ, res, err)
		}
	}

	one := []string{"00000000-0000-4000-8000-000000000007"}
	plan, err := s.explain(ctx, refoldDevicesSQL, one, []string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Index Cond: (device_id = ANY ($0))", "Index Cond: (connected_account_id = ANY ($1))"} {
		if !strings.Contains(plan, want) {
			t.Errorf("refold plan lacks %q:\n%s", want, plan)
		}
	}

	// And what it reads is that lock's history, folded as the lock shows.
	d, err := s.GetDevice(ctx, one[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Online == nil || !*d.Online {
		t.Errorf("lock 7 after connected, disconnected, ..., connected: online %v, want true", d.Online)
	}
}
