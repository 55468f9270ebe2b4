package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// historyCase is one code of BenchmarkIngestLongHistory.
type historyCase struct {
	name    string
	history int  // unlocks stored before the measure
	deleted bool // deleted before them (each refold judges its evidence)
	code    string
	before  int // events stored before the measure, its own and unlocks
	took    []time.Duration
}

// BenchmarkIngestLongHistory is issue 21's point 1 benchmark (`make
// bench-history`): codes with 100,000 events, then 1,000 more ingested one
// at a time, p50 and p99 per event, against a fresh code in the same state
// (in use, or deleted) given the same 1,000 in the same database. Two long histories: a staff code in use
// (100,000 unlocks), and one deleted and still used since (100,000 unlocks
// after its deletion: every event judges its lock's evidence). The events
// go to the four codes in turn, so that a busy machine slows each alike.
// Target: p50 within 1.5x of the fresh code's, p99 under 15 ms. It measures
// its 1,000 events per code once, whatever b.N (run with -benchtime 1x).
// The test Postgres has fsync off: the figures are the refold's cost, not
// the disk's.
func BenchmarkIngestLongHistory(b *testing.B) {
	const history, more = 100_000, 1_000
	ctx := context.Background()
	// The service's pool: its planner settings (generic plans).
	cfg, err := postgres.PoolConfig(pgtest.NewURL(b))
	if err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	s := storetest.New(b, pool, postgres.Config{RemovalTimeout: 30 * time.Minute})
	lock := seamevent.NewID()
	cases := []*historyCase{{name: "fresh"}, {name: "fresh-deleted", deleted: true},
		{name: "active-100k", history: history}, {name: "deleted-100k", history: history, deleted: true}}
	t0 := time.Now().Add(-200 * 24 * time.Hour).Truncate(time.Millisecond)
	for _, c := range cases {
		c.code = seamevent.NewID()
		own := []string{lifecycle.TypeCreated, lifecycle.TypeSetOnDevice}
		if c.deleted {
			own = append(own, lifecycle.TypeDeleted)
		}
		c.before = len(own) + c.history
		// The code's own events and its unlocks, a minute apart, stored
		// as ingest stores them but in one statement.
		if _, err := pool.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, access_code_id,
				device_id, occurred_at, raw)
			SELECT 'm-' || $1 || '-' || i, 'e-' || $1 || '-' || i, t, $1, $2,
				$3::timestamptz + make_interval(secs => i), '\x00'::bytea
			FROM unnest($4::text[]) WITH ORDINALITY AS o(t, i)
			UNION ALL
			SELECT 'm-' || $1 || '-u-' || i, 'e-' || $1 || '-u-' || i, 'lock.unlocked', $1, $2,
				$3::timestamptz + make_interval(secs => 10 + i * 60), '\x00'::bytea
			FROM generate_series(1, $5) AS i`, c.code, lock, t0, own, c.history); err != nil {
			b.Fatal(err)
		}
	}
	// Their rows folded (replay reads everything), and no autovacuum of
	// the load during the measure.
	if _, err := s.Replay(ctx, 10, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	b.ResetTimer()
	for i := range more {
		for _, c := range cases {
			body, _ := json.Marshal(map[string]any{"event_id": seamevent.NewID(), "event_type": lifecycle.TypeLockUnlocked,
				"access_code_id": c.code, "device_id": lock, "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
				"occurred_at": start.Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339Nano)})
			t := time.Now()
			res, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
			c.took = append(c.took, time.Since(t))
			if err != nil || res.Outcome != lifecycle.Stored {
				b.Fatalf("%s, event %d: %v %v", c.name, i, res, err)
			}
		}
	}
	b.StopTimer()
	// Each long history against the fresh code in the same state.
	b.Logf("| code | events before | events measured | p50 | p99 | p50 / fresh p50 |")
	reportHistoryCase(b, cases[0], cases[0])
	reportHistoryCase(b, cases[1], cases[1])
	reportHistoryCase(b, cases[2], cases[0])
	reportHistoryCase(b, cases[3], cases[1])
	// The deleted code used since is flagged, the others not.
	for _, c := range cases {
		var flagged bool
		if err := pool.QueryRow(ctx, `SELECT needs_troubleshooting FROM access_codes WHERE access_code_id = $1`,
			c.code).Scan(&flagged); err != nil {
			b.Fatal(err)
		}
		if flagged != c.deleted {
			b.Fatalf("%s: needs_troubleshooting %v, want %v", c.name, flagged, c.deleted)
		}
	}
}

// reportHistoryCase reports c's p50 and p99, and its p50 over fresh's.
func reportHistoryCase(b *testing.B, c, fresh *historyCase) {
	slices.Sort(c.took)
	p50, p99 := c.took[len(c.took)/2], c.took[len(c.took)*99/100]
	ratio := float64(p50) / float64(fresh.took[len(fresh.took)/2])
	b.ReportMetric(float64(p50.Microseconds())/1000, c.name+"-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, c.name+"-p99-ms")
	b.Logf("| %s | %d | %d | %.2f ms | %.2f ms | %.2fx |", c.name, c.before, len(c.took),
		float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, ratio)
}
