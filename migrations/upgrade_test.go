package migrations_test

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

// The populated database: enough codes and events that building an index
// on events holds a lock for long enough to see. Measured on the 2-core
// development machine: 40,000 codes and 160,000 events take 3 s to insert
// when it is idle and 8 s when other test binaries load it; a plain CREATE
// INDEX on three columns of events then takes 0.3 s idle, 1.5 s loaded.
const (
	populatedCodes = 40_000
	eventsPerCode  = 4
	upgradeSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	// Svix delivers concurrently; serve's default is one ingest worker
	// (group commit), which these share.
	upgradeSenders  = 4
	upgradeWarmUp   = 700 * time.Millisecond
	upgradeCoolDown = 300 * time.Millisecond
	// The pools' application_name: the old replica's and the migrating one's.
	oldReplica, newReplica = "codewatch-old-replica", "codewatch-new-replica"
)

// ingestBound is the longest a webhook may take while migrations run. A
// webhook normally takes tens of milliseconds here; the slowest seen during
// a CONCURRENTLY build, under the race detector on the 2-core machine loaded
// by other test binaries (load average 12), took 0.85 s. A migration that
// blocks writes to events holds every webhook for as long as it holds its
// lock: minutes on a production table. Svix gives up after 15 s and the
// store after its 10 s TxTimeout (then 503); 2 s is well under both and
// over the noise.
const ingestBound = 2 * time.Second

// lockWaitBound is the longest an ingest transaction may wait for a lock
// the migration holds (or waits for, queued ahead of it), as Postgres
// reports it (pg_locks.waitstart). It catches a stall shorter than the
// latency noise: a brief exclusive lock (ADD COLUMN, a NOT VALID
// constraint, CREATE TRIGGER) is held for milliseconds, while a build or a
// scan of events under the lock takes 0.3 s or more even on this small
// table.
const lockWaitBound = 250 * time.Millisecond

// Rolling upgrades do not stall ingest: the migrations after the last one
// applied in the field (exemptThrough) run against a populated database
// while the current ingest path (signed webhooks through the real handler
// into the real store) keeps receiving, and every webhook answers 200
// within ingestBound.
//
// During a rolling upgrade the replicas still on the old version keep
// ingesting while the first new replica migrates. For the sample migrations
// below, this build's store is that old version (they come after it), run
// in-process with serve's pool settings (generic plans, prepared per
// connection, so a schema change that invalidates its plans is exercised
// too). For the real migrations after exemptThrough, whose columns this
// build's store already writes, the old replica is the real thing: the
// codewatch binary built from the commit before the first of them
// (oldReplicaBinary), serving webhooks against the database being migrated.
//
// The test first proves that it can tell: a sample migration built
// CONCURRENTLY passes, and a sample doing what 00006 and 00008 did (a plain
// CREATE INDEX on events inside the migration's transaction) fails it, on
// both counts: ingest blocked on its lock, and slow.
func TestUpgradeUnderIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("populates a database")
	}
	env := newUpgradeEnv(t, exemptThrough)

	// First the real migrations, from the schema the field has, under the
	// old version's ingest; then the samples, on the schema this build
	// needs, under this build's ingest (the old version relative to them).
	t.Run(fmt.Sprintf("migrations after %05d", exemptThrough), func(t *testing.T) {
		var names []string
		for _, f := range migrationFiles(t, migrations.FS) {
			if f.version > exemptThrough {
				names = append(names, f.name)
			}
		}
		if len(names) == 0 {
			t.Skipf("no migration after %05d yet", exemptThrough)
		}
		old := startOldReplica(t, env.url, names[0])
		r := env.migrateUnderIngestAt(t, migrations.FS, old)
		if p := r.problems(); len(p) > 0 {
			t.Errorf("ingest stalled while %v ran: %v", names, p)
		}
	})
	// The samples come after every real migration: bring the schema there
	// (a no-op when the subtest above ran).
	env.migrateTo(t, migrations.FS)

	t.Run("sample built concurrently", func(t *testing.T) {
		fsys := withSample(t, goodSample)
		r := env.migrateUnderIngest(t, fsys)
		if p := r.problems(); len(p) > 0 {
			t.Errorf("ingest stalled during a CONCURRENTLY build: %v", p)
		}
		env.rollBack(t, fsys)
	})
	t.Run("sample built in a transaction", func(t *testing.T) {
		fsys := withSample(t, badSample)
		r := env.migrateUnderIngest(t, fsys)
		if r.slowest <= ingestBound || r.lockWait <= lockWaitBound {
			t.Errorf("a plain CREATE INDEX on events in a transaction went unnoticed: slowest webhook %s, longest lock wait %s; the test cannot tell a stalling migration",
				r.slowest, r.lockWait)
		}
		env.rollBack(t, fsys)
	})
}

// The samples build the same index, one CONCURRENTLY and one as 00006
// and 00008 did. The build itself takes 0.3 to 1.5 s here, about the
// latency noise of a loaded machine, and minutes on a production events
// table: each sample then sleeps 3 s to stand for the rest of such a build.
// The bad one sleeps in its transaction, holding the SHARE lock that
// CREATE INDEX took (so ingest waits, as it would for the whole build); the
// good one sleeps in a statement of its own, holding nothing. Only the
// locking differs.
const (
	goodSample = `-- +goose NO TRANSACTION
-- +goose Up
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS events_sample_idx;
CREATE INDEX CONCURRENTLY events_sample_idx ON events (device_id, received_at, event_type);
SELECT pg_sleep(3);
-- +goose Down
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS events_sample_idx;
`
	badSample = `-- +goose Up
SET LOCAL lock_timeout = '5s';
CREATE INDEX events_sample_idx ON events (device_id, received_at, event_type);
SELECT pg_sleep(3);
-- +goose Down
SET LOCAL lock_timeout = '5s';
DROP INDEX events_sample_idx;
`
)

// The samples pass or fail the rules as they pass or fail
// TestUpgradeUnderIngest.
func TestUpgradeSamplesAndRulesAgree(t *testing.T) {
	sample := func(src string) []migFile {
		return []migFile{{name: sampleName, version: exemptThrough + 1, src: src}}
	}
	if p := checkMigrations(sample(goodSample)); len(p) > 0 {
		t.Errorf("the good sample breaks the rules: %v", p)
	}
	if p := checkMigrations(sample(badSample)); len(p) == 0 {
		t.Errorf("the bad sample passes the rules")
	}
}

type upgradeEnv struct {
	url string
	// pool is the old replica's, migratePool the new replica's.
	pool, migratePool *pgxpool.Pool
}

// newUpgradeEnv returns a database migrated through version base and
// populated.
func newUpgradeEnv(t *testing.T, base int64) *upgradeEnv {
	t.Helper()
	ctx := context.Background()
	e := &upgradeEnv{url: pgtest.NewEmptyURL(t)}
	e.pool = servePool(t, e.url, oldReplica, 10)
	e.migratePool = servePool(t, e.url, newReplica, 4)
	m, err := migrations.NewFS(e.migratePool, nil, migrationsThrough(t, base, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("migrate through %05d: %v", base, err)
	}
	start := time.Now()
	populate(t, e.migratePool)
	t.Logf("populated %d codes and %d events in %s", populatedCodes, populatedCodes*eventsPerCode, time.Since(start).Round(time.Millisecond))
	return e
}

// servePool is a pool configured as serve configures its own.
func servePool(t *testing.T, url, name string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := postgres.PoolConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// codeID and deviceID spell the populated codes' ids as populate does:
// UUIDs in insertion order, so that filling the unique indexes appends to
// them (random ids made populating three times slower).
func codeID(g int) string   { return fmt.Sprintf("00000000-0000-4000-8000-%012x", g) }
func deviceID(g int) string { return fmt.Sprintf("00000000-0000-4000-a000-%012x", g/12) }

// populate inserts the codes and their events set-based, in two halves at
// once (two cores), with columns that exist at version exemptThrough.
func populate(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	const codes = `
INSERT INTO access_codes (access_code_id, workspace_id, device_id, deletion_state, on_device,
    created_at, set_on_device_at, last_event_at)
SELECT '00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'), 'ws',
    '00000000-0000-4000-a000-' || lpad(to_hex(g / 12), 12, '0'), 'active', true,
    now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'
FROM generate_series($1::int, $2::int) g`
	const events = `
INSERT INTO events (message_id, event_id, event_type, workspace_id, occurred_at, created_at,
    access_code_id, device_id, raw, received_at)
SELECT 'msg_pop_' || lpad(to_hex(n), 12, '0'), '00000000-0000-4000-9000-' || lpad(to_hex(n), 12, '0'),
    (ARRAY['access_code.created', 'access_code.scheduled_on_device', 'access_code.set_on_device', 'lock.unlocked'])[k],
    'ws', now() - interval '2 days' + n * interval '1 ms', now() - interval '2 days',
    '00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'), '00000000-0000-4000-a000-' || lpad(to_hex(g / 12), 12, '0'),
    convert_to(repeat(md5(n::text), 6), 'UTF8'), now() - interval '2 days' + n * interval '1 ms'
FROM generate_series($1::int * 4, $2::int * 4 + 3) n, LATERAL (SELECT n / 4 AS g, 1 + n % 4 AS k) x`
	for _, q := range []struct {
		name string
		sql  string
		args []any
	}{{"access_codes", codes, nil}, {"events", events, nil}} {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, r := range [][2]int{{1, populatedCodes / 2}, {populatedCodes/2 + 1, populatedCodes}} {
			wg.Go(func() {
				_, errs[i] = pool.Exec(ctx, q.sql, append([]any{r[0], r[1]}, q.args...)...)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("populate %s: %v", q.name, err)
			}
		}
		t.Logf("populated %s in %s", q.name, time.Since(start).Round(time.Millisecond))
	}
	// Statistics, as autovacuum would have them (a VACUUM cost 3 s more
	// and changed nothing measured here).
	for _, q := range []string{`ANALYZE access_codes`, `ANALYZE events`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// upgradeResult is what ingest saw while the migrations ran.
type upgradeResult struct {
	sent     int
	statuses map[int]int
	errors   []string
	slowest  time.Duration
	p50, p99 time.Duration
	took     time.Duration
	// lockWait is the longest an ingest transaction was seen waiting for
	// a lock that the migration held or waited for.
	lockWait time.Duration
}

func (r upgradeResult) problems() []string {
	var p []string
	for code, n := range r.statuses {
		if code != http.StatusOK {
			p = append(p, fmt.Sprintf("%d webhooks answered %d", n, code))
		}
	}
	if len(r.errors) > 0 {
		p = append(p, fmt.Sprintf("%d webhooks failed: %s", len(r.errors), r.errors[0]))
	}
	if r.slowest > ingestBound {
		p = append(p, fmt.Sprintf("the slowest webhook took %s (bound %s)", r.slowest, ingestBound))
	}
	if r.lockWait > lockWaitBound {
		p = append(p, fmt.Sprintf("ingest waited %s for the migration's lock (bound %s)", r.lockWait, lockWaitBound))
	}
	if r.sent == 0 {
		p = append(p, "no webhook was sent")
	}
	return p
}

// migrateUnderIngest runs fsys's pending migrations (from a migrator of
// their own, as the first new replica would) while signed webhooks keep
// arriving at this build's handler and store, in-process.
func (e *upgradeEnv) migrateUnderIngest(t *testing.T, fsys fs.FS) upgradeResult {
	t.Helper()
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	// The old replica: serve's store and handler, with serve's timeouts.
	store := postgres.New(e.pool, storetest.Inserter(t, e.pool), postgres.Config{
		Keys: storetest.Keys(t), Logger: logger, Workers: 1, RemovalTimeout: 30 * time.Minute})
	store.Start()
	v, err := verify.New([]string{upgradeSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handlers.NewPublicServer(&handlers.Public{
		Verifier: v, Store: store, Metrics: metrics.New(), Logger: logger, IngestTimeout: 12 * time.Second}))
	defer func() { srv.Close(); store.Close() }()
	return e.migrateUnderIngestAt(t, fsys, srv.URL+"/webhooks/seam")
}

// migrateUnderIngestAt runs fsys's pending migrations while signed webhooks
// keep arriving at webhookURL, an old replica's.
func (e *upgradeEnv) migrateUnderIngestAt(t *testing.T, fsys fs.FS, webhookURL string) upgradeResult {
	t.Helper()
	ctx := context.Background()
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("migration logs:\n%s", logs)
		}
	})
	sender := &seamevent.Sender{URL: webhookURL, Secret: upgradeSecret,
		Client: &http.Client{Timeout: 15 * time.Second}}

	var mu sync.Mutex
	r := upgradeResult{statuses: map[int]int{}}
	var latencies []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range upgradeSenders {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				g := 1 + rand.IntN(populatedCodes)
				typ := []string{"access_code.changed", "access_code.set_on_device", "lock.unlocked"}[rand.IntN(3)]
				body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: codeID(g), DeviceID: deviceID(g), WorkspaceID: "ws"})
				if err != nil {
					t.Error(err)
					return
				}
				start := time.Now()
				reply, err := sender.Send(ctx, seamevent.NewMessageID(), body)
				d := time.Since(start)
				mu.Lock()
				r.sent++
				latencies = append(latencies, d)
				r.slowest = max(r.slowest, d)
				if err != nil {
					r.errors = append(r.errors, err.Error())
				} else {
					r.statuses[reply.Status]++
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(upgradeWarmUp)
	m, err := migrations.NewFS(e.migratePool, logger, fsys)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	watched := make(chan struct{})
	var lockWait time.Duration
	go func() {
		defer close(watched)
		lockWait = e.watchLockWaits(t, stop)
	}()
	start := time.Now()
	applied, err := m.Up(ctx)
	r.took = time.Since(start)
	time.Sleep(upgradeCoolDown)
	close(stop)
	wg.Wait()
	<-watched
	r.lockWait = lockWait
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		r.p50, r.p99 = latencies[n/2], latencies[n*99/100]
	}
	t.Logf("applied %s in %s; %d webhooks: statuses %v, p50 %s, p99 %s, slowest %s; longest wait for the migration's lock %s",
		migrations.String(applied), r.took.Round(time.Millisecond), r.sent, r.statuses,
		r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.slowest.Round(time.Millisecond),
		r.lockWait.Round(time.Millisecond))
	return r
}

// watchLockWaits polls, until stop, for the old replica's transactions
// waiting on a lock that the new replica's session holds or is queued for
// (pg_blocking_pids names both), and returns the longest wait seen.
func (e *upgradeEnv) watchLockWaits(t *testing.T, stop <-chan struct{}) time.Duration {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close(ctx)
	var longest time.Duration
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var secs float64
		err := conn.QueryRow(ctx, `
SELECT coalesce(max(extract(epoch FROM clock_timestamp() - l.waitstart)), 0)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.application_name = $1
  AND EXISTS (SELECT 1 FROM pg_stat_activity m
              WHERE m.pid = ANY (pg_blocking_pids(l.pid)) AND m.application_name = $2)`,
			oldReplica, newReplica).Scan(&secs)
		if err != nil {
			t.Error(err)
			return longest
		}
		longest = max(longest, time.Duration(secs*float64(time.Second)))
		select {
		case <-stop:
			return longest
		case <-tick.C:
		}
	}
}

// migrateTo applies fsys's pending migrations, with no ingest running.
func (e *upgradeEnv) migrateTo(t *testing.T, fsys fs.FS) {
	t.Helper()
	m, err := migrations.NewFS(e.migratePool, nil, fsys)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// rollBack undoes a sample migration (no ingest running), so the next run
// starts from the same schema.
func (e *upgradeEnv) rollBack(t *testing.T, fsys fs.FS) {
	t.Helper()
	m, err := migrations.NewFS(e.migratePool, nil, fsys)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Down(context.Background()); err != nil {
		t.Fatalf("roll back: %v", err)
	}
}
