package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// The PIN lookups of a code's history (issue "Never a false all-clear", 4)
// run in the ingest transaction: from the code's events, one probe of
// events_pin_tokens_idx per lock, which reads that lock's rows of the PIN
// only, even for a PIN every lock has; the same for the other codes that
// share a report's PIN, and for rekey's lookup of the pairs it makes. The
// generic plans the service keeps read through those indexes only.
func TestPINMatchPlans(t *testing.T) {
	ctx := context.Background()
	pool := servicePool(t)
	s := retStore(t, pool, clocktest.New(time.Now()))

	// 40 locks; on each, 10 codes set and deleted, half of them with the
	// PIN every lock has, and 10 unlocks by that PIN Seam tied to no code.
	const locks, codes, unlocks = 40, 10, 10
	lock := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	code := func(l, c int) string { return fmt.Sprintf("00000000-0000-4000-9000-%06d%06d", l, c) }
	at := time.Now().Add(-time.Hour)
	var bodies [][]byte
	add := func(m map[string]any) {
		m["event_id"] = seamevent.NewID()
		b, _ := json.Marshal(m)
		bodies = append(bodies, b)
	}
	for l := range locks {
		for c := range codes {
			pin := "1234"
			if c%2 == 1 {
				pin = fmt.Sprintf("%06d", l*100+c)
			}
			for i, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
				add(map[string]any{"event_type": typ, "access_code_id": code(l, c), "device_id": lock(l), "code": pin,
					"occurred_at": at.Add(time.Duration(c*10+i) * time.Second).UTC().Format(time.RFC3339Nano)})
			}
		}
		for u := range unlocks {
			add(map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": lock(l), "code": "1234",
				"occurred_at": at.Add(time.Duration(30+u) * time.Minute).UTC().Format(time.RFC3339Nano)})
		}
	}
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for b := range work {
				if res, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: b}); err != nil || res.Outcome != lifecycle.Stored {
					t.Errorf("ingest: %+v %v", res, err)
				}
			}
		})
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	if _, err := pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}

	target := []string{code(7, 0)} // PIN 1234, on lock 7
	// Each lookup by PIN is an index condition on the tokens: never a
	// read of every PIN-carrying event (events_pin_idx, filtered).
	checkPlan := func(what, plan string, probes int, uses ...string) {
		t.Helper()
		bad := strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "events_pin_idx") ||
			strings.Count(plan, "Index Cond: (COALESCE(pin_tokens") != probes
		for _, u := range uses {
			bad = bad || !strings.Contains(plan, u)
		}
		if bad {
			t.Errorf("%s: want %v, %d probes of the tokens and no Seq Scan:\n%s", what, uses, probes, plan)
		}
	}
	plan, err := s.explainGeneric(ctx, loadPINReportsSQL, target)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan("a code's PIN reports", plan, 2, "events_access_code_idx", "events_pin_tokens_idx")
	// The codes sharing a report's PIN are read for a report found, never
	// for every code refolded: the reports' scan comes first.
	if l, o := strings.Index(plan, "Bitmap Heap Scan on events l"), strings.Index(plan, "Bitmap Heap Scan on events s"); l < 0 || o < l {
		t.Errorf("the codes sharing the PIN are read before (or without) the reports:\n%s", plan)
	}
	plan, err = s.explainGeneric(ctx, rekeyPartnersSQL, [][]byte{make([]byte, 32)}, [][]byte{}, int64(0))
	if err != nil {
		t.Fatal(err)
	}
	checkPlan("rekey's new pairs", plan, 1, "events_pin_tokens_idx")

	// Run: every probe of the tokens index reads the lock's own rows of
	// the PIN (10 unlocks, 5 codes' 2 events), none of the other locks'.
	rs, err := pool.Query(ctx, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) `+loadPINReportsSQL, target)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	analyzed := strings.Join(lines, "\n")
	probes := regexp.MustCompile(`Bitmap Index Scan on events_pin_tokens_idx \(actual rows=(\d+)`).FindAllStringSubmatch(analyzed, -1)
	if len(probes) == 0 {
		t.Fatalf("no probe of events_pin_tokens_idx:\n%s", analyzed)
	}
	for _, p := range probes {
		if n, _ := strconv.Atoi(p[1]); n > unlocks+codes {
			t.Errorf("a probe read %d rows, more than lock 7 has of the PIN:\n%s", n, analyzed)
		}
	}
	// And what it reads: the lock's 10 unlocks, each with the 4 other
	// codes of the lock that share the PIN (all deleted before it).
	evs := map[string][]lifecycle.Event{}
	b := &pgx.Batch{}
	queueLoadPINReports(b, target, evs)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if got := evs[target[0]]; len(got) != unlocks || len(got[0].SamePIN) != codes/2-1 || got[0].SamePIN[0].DeletedAt == nil {
		t.Fatalf("loaded %d reports: %+v", len(got), got)
	}
}

// servicePool is a pool on a fresh database with the service's pool
// settings (PoolConfig: generic plans), as plan tests need.
func servicePool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := PoolConfig(pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
