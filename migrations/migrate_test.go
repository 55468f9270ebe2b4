package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migrationsThrough returns the embedded migrations up to version through
// (all of them when through < 0), plus extra files (name: SQL).
func migrationsThrough(t testing.TB, through int64, extra map[string]string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	for _, f := range migrationFiles(t, migrations.FS) {
		if through < 0 || f.version <= through {
			out[f.name] = &fstest.MapFile{Data: []byte(f.src)}
		}
	}
	for name, src := range extra {
		out[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return out
}

// withSample is every embedded migration plus one sample, numbered after
// any real one.
func withSample(t testing.TB, src string) fs.FS {
	return migrationsThrough(t, -1, map[string]string{sampleName: src})
}

const sampleName = "99001_sample.sql"

// holdLock takes a lock in a transaction of its own until release (or the
// end of the test).
func holdLock(t *testing.T, pool *pgxpool.Pool, lock string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, lock); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release)
	return release
}

func newMigrator(t *testing.T, pool *pgxpool.Pool, fsys fs.FS) (*migrations.Migrator, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	m, err := migrations.NewFS(pool, slog.New(slog.NewJSONHandler(logs, nil)), fsys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	m.LockRetryDelay = 100 * time.Millisecond
	return m, logs
}

// afterFirstRetry calls f once the first retry is logged (or when the test
// ends): a lock held until then makes the first attempt give up, whatever
// the machine's speed, and lets a later one through.
func afterFirstRetry(t *testing.T, logs *logtest.Buffer, f func()) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		defer f()
		for !strings.Contains(logs.String(), "retrying") {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
}

// retryLines returns the log lines of retries of the sample.
func retryLines(t *testing.T, logs *logtest.Buffer) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "retrying") {
			if !strings.Contains(l, `"migration":"`+sampleName+`"`) {
				t.Errorf("retry line does not name the migration: %s", l)
			}
			out = append(out, l)
		}
	}
	return out
}

// Defect: a migration statement that gave up on its lock_timeout (a
// session held a lock it needed a little longer) stopped start-up at once.
// Now the runner waits and runs the migration again, logging each retry in
// one line that names the migration.
func TestLockTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	m, logs := newMigrator(t, pool, withSample(t, `-- +goose Up
SET LOCAL lock_timeout = '100ms';
ALTER TABLE events ADD COLUMN sample text;
-- +goose Down
SET LOCAL lock_timeout = '5s';
ALTER TABLE events DROP COLUMN sample;
`))
	// A long ops read, say: ADD COLUMN needs ACCESS EXCLUSIVE.
	afterFirstRetry(t, logs, holdLock(t, pool, `LOCK TABLE events IN ACCESS SHARE MODE`))
	res, err := m.Up(context.Background())
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(res) != 1 || res[0].Name != sampleName {
		t.Errorf("applied %v, want %s", res, sampleName)
	}
	if n := len(retryLines(t, logs)); n == 0 {
		t.Errorf("no retry logged:\n%s", logs)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'events' AND column_name = 'sample'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("column sample: %d (%v)", n, err)
	}
}

// A lock that is never released: after its retries the runner stops with
// one error naming the migration, SQLSTATE 55P03 and the attempts.
func TestLockTimeoutGivesUp(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	m, logs := newMigrator(t, pool, withSample(t, `-- +goose Up
SET LOCAL lock_timeout = '50ms';
ALTER TABLE events ADD COLUMN sample text;
-- +goose Down
SET LOCAL lock_timeout = '5s';
ALTER TABLE events DROP COLUMN sample;
`))
	m.LockRetries, m.LockRetryDelay = 2, 20*time.Millisecond
	holdLock(t, pool, `LOCK TABLE events IN ACCESS SHARE MODE`)
	_, err := m.Up(context.Background())
	var me *migrations.Error
	if !errors.As(err, &me) || me.Name != sampleName || me.Attempts != 3 {
		t.Fatalf("Up: %v (%#v), want a migrations.Error for %s after 3 attempts", err, me, sampleName)
	}
	for _, want := range []string{sampleName, "55P03", "3 attempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := len(retryLines(t, logs)); n != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", n, logs)
	}
}

// A CREATE INDEX CONCURRENTLY that gives up on lock_timeout while waiting
// for the transactions already writing to the table leaves an INVALID index
// behind, and goose records nothing of its NO TRANSACTION file: the retry
// runs the file again from its first statement. Only the pattern the rules
// require (DROP INDEX CONCURRENTLY IF EXISTS first) makes that re-run build
// a valid index; the two others fail or keep the invalid one.
func TestFailedConcurrentIndexIsRebuilt(t *testing.T) {
	t.Parallel()
	const head = "-- +goose NO TRANSACTION\n-- +goose Up\nSET lock_timeout = '200ms';\n"
	const down = "-- +goose Down\nSET lock_timeout = '5s';\nDROP INDEX CONCURRENTLY IF EXISTS events_sample_idx;\n"
	cases := []struct {
		name, up string
		wantErr  string // a permanent failure's SQLSTATE
		valid    bool
	}{
		{"dropped first", "DROP INDEX CONCURRENTLY IF EXISTS events_sample_idx;\nCREATE INDEX CONCURRENTLY events_sample_idx ON events (received_at, id);\n", "", true},
		{"plain", "CREATE INDEX CONCURRENTLY events_sample_idx ON events (received_at, id);\n", "42P07", false},
		{"if not exists", "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_sample_idx ON events (received_at, id);\n", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.New(t)
			m, logs := newMigrator(t, pool, withSample(t, head+c.up+down))
			m.LockRetries = 6
			// An ingest transaction in progress: the build waits for it.
			afterFirstRetry(t, logs, holdLock(t, pool, `LOCK TABLE events IN ROW EXCLUSIVE MODE`))
			_, err := m.Up(context.Background())
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Up: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("Up: %v, want SQLSTATE %s", err, c.wantErr)
			}
			if len(retryLines(t, logs)) == 0 {
				t.Errorf("the build did not give up on its lock_timeout once; logs:\n%s", logs)
			}
			var valid bool
			if err := pool.QueryRow(context.Background(), `SELECT indisvalid FROM pg_index
				WHERE indexrelid = 'events_sample_idx'::regclass`).Scan(&valid); err != nil {
				t.Fatal(err)
			}
			if valid != c.valid {
				t.Errorf("events_sample_idx valid: %v, want %v", valid, c.valid)
			}
		})
	}
}

// Defect: a NO TRANSACTION migration's `SET lock_timeout` stayed on the
// pool connection goose had used, which the service's own queries then
// used: ingest would give up on locks after the migration's timeout.
// Now every connection goes back to the pool with its session reset (and
// the pool's own startup settings kept).
func TestMigrationSettingsDoNotLeak(t *testing.T) {
	t.Parallel()
	cfg, err := postgres.PoolConfig(pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2 // the migration lock's and goose's: every connection is checked below
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m, _ := newMigrator(t, pool, withSample(t, `-- +goose NO TRANSACTION
-- +goose Up
SET lock_timeout = '1s';
SET statement_timeout = '1min';
SELECT 1;
-- +goose Down
SET lock_timeout = '5s';
SELECT 1;
`))
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conns := pool.AcquireAllIdle(ctx)
	if len(conns) == 0 {
		t.Fatal("no idle connection")
	}
	for i, c := range conns {
		var lockTimeout, statementTimeout, seqscan string
		if err := c.QueryRow(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),
			current_setting('enable_seqscan')`, pgx.QueryExecModeSimpleProtocol).Scan(&lockTimeout, &statementTimeout, &seqscan); err != nil {
			t.Fatal(err)
		}
		if lockTimeout != "0" || statementTimeout != "0" || seqscan != "off" {
			t.Errorf("connection %s: lock_timeout %s, statement_timeout %s, enable_seqscan %s; want 0, 0 and the pool's off",
				strconv.Itoa(i), lockTimeout, statementTimeout, seqscan)
		}
		c.Release()
	}
}

// A database that ends the session mid-migration (an administrator's stop, a
// restart, a failover: 57P01) has not refused the migration: Up's error is
// not a migrations.Error, so serve keeps retrying as for an unreachable
// database instead of exiting. Before, every SQLSTATE counted as the
// migration's own failure, and the fault suite's Postgres stop killed
// codewatch at start-up.
func TestMigrationCutOffByTheServerIsRetryable(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	m, _ := newMigrator(t, pool, withSample(t, `-- +goose NO TRANSACTION
-- +goose Up
SET lock_timeout = '5s';
SELECT pg_sleep(30);
-- +goose Down
SET lock_timeout = '5s';
SELECT 1;
`))
	done := make(chan error, 1)
	go func() { _, err := m.Up(context.Background()); done <- err }()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(30)%' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sample migration never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := <-done
	var me *migrations.Error
	if err == nil || errors.As(err, &me) {
		t.Fatalf("Up: %v (%#v), want a retryable error, not a migration failure", err, me)
	}
}
