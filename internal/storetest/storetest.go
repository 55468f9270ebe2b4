// Package storetest builds the store and the River client the way serve
// does, on a test's own database, for tests in other packages.
package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/postgres"
)

// Inserter returns an insert-only River client on pool.
func Inserter(t testing.TB, pool *pgxpool.Pool) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := jobs.NewInserter(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Keys returns a fresh keyring of one data key, as CODEWATCH_DATA_KEYS
// would give, with the ids given (the first seals), or "test".
func Keys(t testing.TB, ids ...string) *datakeys.Keyring {
	t.Helper()
	if len(ids) == 0 {
		ids = []string{"test"}
	}
	entries := make([]string, len(ids))
	for i, id := range ids {
		e, err := datakeys.Generate(id)
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = e
	}
	kr, err := datakeys.Parse(strings.Join(entries, ","))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// New returns a started Store on pool, closed when the test ends. Without
// cfg.Keys it gets a fresh key of its own (Keys), as serve always has one.
func New(t testing.TB, pool *pgxpool.Pool, cfg postgres.Config) *postgres.Store {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = Keys(t)
	}
	s := postgres.New(pool, Inserter(t, pool), cfg)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a River client working the given workers (and no periodic
// jobs unless given), stopped when the test ends. Poll quickly: tests wait
// for work through Subscribe, not by sleeping.
func Start(t testing.TB, pool *pgxpool.Pool, workers *river.Workers, periodic ...*river.PeriodicJob) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := jobs.NewClient(pool, jobs.Config{Workers: workers, Periodic: periodic, FetchPollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			_ = c.StopAndCancel(context.Background())
		}
	})
	return c
}
