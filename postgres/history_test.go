package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// Issue 21, point 1: ingest refolds a code from its own events and the few
// of the lock's events that can change its verdict, keeping last_event_at as
// the newest time folded (postgres/history.go). Replay folds every event of
// every code: after random histories arrive in random orders, concurrently
// and in batches, replaying must change no row.

// incrementalDelivery is one delivery of a random portfolio: a webhook, or
// codewatch's own event (Record).
type incrementalDelivery struct {
	d   lifecycle.Delivery
	own bool
}

// incrementalPortfolio draws codes on three locks with PINs from a small
// set (so reports by PIN match several codes), their own events, and the
// locks' events: unlocks naming a code (on its lock, another, none),
// refusals, unlocks by PIN that name no code, unmanaged codes; times over
// an hour, so many arrive late.
func incrementalPortfolio(r *rand.Rand, codes int) []incrementalDelivery {
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(3600)) * time.Second) }
	locks := []string{seamevent.NewID(), seamevent.NewID(), seamevent.NewID()}
	pins := []string{"1111", "2222", "3333", "4444"}
	var out []incrementalDelivery
	webhook := func(m map[string]any) {
		m["event_id"] = seamevent.NewID()
		m["workspace_id"] = "680d7c60-0a92-4e78-85bd-cb45155576b9"
		if _, ok := m["occurred_at"]; !ok {
			m["occurred_at"] = at().UTC().Format(time.RFC3339Nano)
		}
		b, _ := json.Marshal(m)
		out = append(out, incrementalDelivery{d: lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: b}})
	}
	for range codes {
		code, lock, pin := seamevent.NewID(), locks[r.IntN(len(locks))], pins[r.IntN(len(pins))]
		ref := lifecycle.CodeRef{AccessCodeID: code, DeviceID: lock}
		own := func(typ string, extra map[string]any) {
			m := map[string]any{"event_type": typ, "access_code_id": code, "device_id": lock, "code": pin}
			for k, v := range extra {
				m[k] = v
			}
			webhook(m)
		}
		own(lifecycle.TypeCreated, nil)
		own(lifecycle.TypeSetOnDevice, nil)
		for _, typ := range []string{lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice,
			lifecycle.TypeDelayInRemoving, lifecycle.TypeDeletedExternally, "access_code.changed"} {
			if r.IntN(3) == 0 {
				own(typ, nil)
			}
		}
		if r.IntN(3) == 0 {
			// codewatch's own request, and perhaps Seam's not-found.
			out = append(out, incrementalDelivery{own: true, d: lifecycle.OwnEvent(seamevent.NewID(), lifecycle.TypeDeletionRequested,
				at(), ref, lifecycle.AttemptDetails{ActionAttemptID: seamevent.NewID(), Status: "pending", RequestedBy: "test"})})
			if r.IntN(2) == 0 {
				out = append(out, incrementalDelivery{own: true, d: lifecycle.OwnEvent(seamevent.NewID(), lifecycle.TypeAccessCodeGone,
					at(), ref, lifecycle.PollDetails{RequestID: "req"})})
			}
		}
		for range r.IntN(25) {
			dev := lock
			switch r.IntN(6) {
			case 0:
				dev = locks[r.IntN(len(locks))]
			case 1:
				dev = ""
			}
			m := map[string]any{"event_type": lifecycle.TypeLockUnlocked, "access_code_id": code}
			if r.IntN(8) == 0 {
				m["event_type"] = lifecycle.TypeLockAccessDenied
			}
			if dev != "" {
				m["device_id"] = dev
			}
			webhook(m)
		}
	}
	for range 6 * codes {
		lock, pin := locks[r.IntN(len(locks))], pins[r.IntN(len(pins))]
		if r.IntN(4) == 0 {
			webhook(map[string]any{"event_type": lifecycle.TypeUnmanagedCreated, "access_code_id": seamevent.NewID(),
				"device_id": lock, "code": pin})
			continue
		}
		webhook(map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": lock, "code": pin})
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// codeRows reads every code's row as folded: every column the fold and the
// decision write, but when it was written.
func codeRows(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT access_code_id, row_to_json(c)::jsonb
		- 'updated_at' - 'id' - 'alert_seq' - 'last_alert_at' - 'terminal_at' FROM access_codes c`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var id, row string
	if _, err := pgx.ForEachRow(rs, []any{&id, &row}, func() error { out[id] = row; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIncrementalRefoldIsTheWholeFold(t *testing.T) {
	seeds := 3
	if testing.Short() {
		seeds = 1
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			pool := pgtest.New(t)
			s := newStoreT(t, pool, postgres.Config{RemovalTimeout: 30 * time.Minute, Workers: 3, MaxBatch: 16})
			r := rand.New(rand.NewPCG(seed, 21))
			work := make(chan incrementalDelivery)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for w := range work {
						var err error
						if w.own {
							_, err = s.Record(ctx, []lifecycle.Delivery{w.d}, nil)
						} else {
							_, err = s.Ingest(ctx, w.d)
						}
						if err != nil {
							t.Error(err)
						}
					}
				})
			}
			all := incrementalPortfolio(r, 30)
			for _, w := range all {
				work <- w
			}
			close(work)
			wg.Wait()
			if t.Failed() {
				return
			}
			// A lock's report judged while a code sharing its PIN seemed
			// live is judged again only when the code it matched is
			// refolded (whole fold or not): one more of the lock's events
			// for each code, older than anything (it changes no
			// last_event_at), refolds every code the way a lock's event
			// does.
			for id := range codeRows(t, pool) {
				b, _ := json.Marshal(map[string]any{"event_id": seamevent.NewID(), "event_type": lifecycle.TypeLockAccessDenied,
					"access_code_id": id, "occurred_at": "2020-01-01T00:00:00Z"})
				if _, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: b}); err != nil {
					t.Fatal(err)
				}
			}
			ingested := codeRows(t, pool)
			if _, err := s.Replay(ctx, 7, nil); err != nil {
				t.Fatal(err)
			}
			replayed := codeRows(t, pool)
			if len(ingested) < 30 || len(ingested) != len(replayed) {
				t.Fatalf("%d rows ingested, %d replayed", len(ingested), len(replayed))
			}
			flagged := 0
			for id, want := range replayed {
				if got := ingested[id]; got != want {
					t.Errorf("code %s:\ningested %s\nreplayed %s", id, got, want)
				}
				if strings.Contains(want, `"needs_troubleshooting": true`) {
					flagged++
				}
			}
			t.Logf("%d deliveries, %d codes, %d flagged", len(all), len(replayed), flagged)
		})
	}
}
