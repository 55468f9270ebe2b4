// Package pgtest gives each test a fresh, migrated database on one real
// PostgreSQL server. The server is, in order: CODEWATCH_TEST_DATABASE_URL;
// the one pg_virtualenv announces in PG* variables (`make test`); or a
// private server started under a temporary directory for this test binary.
//
// Each test binary migrates one template database once, then every test
// clones it (CREATE DATABASE ... TEMPLATE), which takes milliseconds.
//
// NewBouncedURL also gives the database's URL through one PgBouncer per test
// binary in transaction pooling mode (internal/pgbouncertest), in front of
// whichever server that is.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgbouncertest"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/migrations"
)

var (
	once     sync.Once
	baseCfg  *pgx.ConnConfig
	template string
	setupErr error
	server   *localpg.Server
	serverAt string
	counter  atomic.Int64

	// The PgBouncer in front of the server, started by the first
	// NewBouncedURL.
	bouncer struct {
		once sync.Once
		srv  *pgbouncertest.Server
		dir  string
		err  error
	}
)

// adminURL picks the server.
func adminURL(ctx context.Context) (string, error) {
	if u := os.Getenv("CODEWATCH_TEST_DATABASE_URL"); u != "" {
		return u, nil
	}
	if os.Getenv("PGPORT") != "" || os.Getenv("PGHOST") != "" {
		return "", nil // libpq-style environment, read by pgx.ParseConfig("")
	}
	dir, err := os.MkdirTemp("", "codewatch-pgtest-")
	if err != nil {
		return "", err
	}
	_ = os.Chmod(dir, 0o755)
	server, err = localpg.Start(ctx, dir, localpg.Options{Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		return "", fmt.Errorf("start a private Postgres (or set CODEWATCH_TEST_DATABASE_URL): %w", err)
	}
	serverAt = dir
	return server.URL("postgres"), nil
}

func setup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := adminURL(ctx)
	if err != nil {
		setupErr = err
		return
	}
	baseCfg, err = pgx.ParseConfig(u)
	if err != nil {
		setupErr = err
		return
	}
	template = fmt.Sprintf("codewatch_tmpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if err := exec(ctx, "CREATE DATABASE "+template); err != nil {
		setupErr = err
		return
	}
	pool, err := pgxpool.New(ctx, URL(template))
	if err != nil {
		setupErr = err
		return
	}
	defer pool.Close()
	m, err := migrations.New(pool, nil)
	if err != nil {
		setupErr = err
		return
	}
	defer m.Close()
	_, setupErr = m.Up(ctx)
}

func exec(ctx context.Context, sql string) error {
	conn, err := pgx.ConnectConfig(ctx, baseCfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// URL returns a connection string for database db on the test server.
func URL(db string) string {
	c := baseCfg
	host := c.Host
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable", c.User, db, host, c.Port)
	}
	pw := ""
	if c.Password != "" {
		pw = ":" + c.Password
	}
	return fmt.Sprintf("postgres://%s%s@%s:%d/%s?sslmode=disable", c.User, pw, host, c.Port, db)
}

// NewURL creates a fresh migrated database and returns its URL. It is dropped
// when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	return URL(newDatabase(t, false))
}

// NewEmptyURL creates a fresh database with no schema at all (not even
// goose's or River's tables) and returns its URL, for tests that migrate it
// themselves. It is dropped when the test ends.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	return URL(newDatabase(t, true))
}

// newDatabase creates a fresh database, dropped when the test ends, and
// returns its name: a copy of the migrated template or, empty, of
// template0.
func newDatabase(t testing.TB, empty bool) string {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("test database: %v", setupErr)
	}
	n := counter.Add(1)
	name, from := fmt.Sprintf("%s_%d", template, n), template
	if empty {
		name, from = fmt.Sprintf("%s_empty_%d", template, n), "template0"
	}
	ctx := context.Background()
	if err := exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+from); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE also ends PgBouncer's server connections to it.
		_ = exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return name
}

// NewBouncedURL creates a fresh migrated database, like NewURL, and returns
// its direct URL and its URL through this test binary's PgBouncer in
// transaction pooling mode (started on first use, stopped by Teardown).
//
// Without a pgbouncer binary the test is skipped, or fails when
// CODEWATCH_REQUIRE_PGBOUNCER is set (CI sets it to 1), so that CI cannot
// pass by skipping.
func NewBouncedURL(t testing.TB) (direct, bounced string) {
	t.Helper()
	if _, err := pgbouncertest.Bin(); err != nil {
		if r := os.Getenv("CODEWATCH_REQUIRE_PGBOUNCER"); r != "" && r != "0" {
			t.Fatalf("CODEWATCH_REQUIRE_PGBOUNCER=%s: %v", r, err)
		}
		t.Skipf("%v; set CODEWATCH_REQUIRE_PGBOUNCER=1 to fail instead of skipping", err)
	}
	name := newDatabase(t, false)
	bouncer.once.Do(startBouncer)
	if bouncer.err != nil {
		t.Fatalf("pgbouncer: %v", bouncer.err)
	}
	return URL(name), bouncer.srv.URL(name)
}

// Bouncer returns this test binary's PgBouncer, or nil before the first
// NewBouncedURL, for tests that look at its pools or its log.
func Bouncer() *pgbouncertest.Server { return bouncer.srv }

func startBouncer() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "codewatch-pgbouncer-")
	if err != nil {
		bouncer.err = err
		return
	}
	bouncer.dir = dir
	bouncer.srv, bouncer.err = pgbouncertest.Start(ctx, dir, pgbouncertest.UpstreamFrom(&baseCfg.Config))
}

// New returns a pool on a fresh migrated database, closed when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := NewURL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("connect test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Server returns the private server when pgtest started one (nil otherwise),
// for tests that stop and restart the database.
func Server() *localpg.Server { return server }

// Main runs a test binary's tests and then Teardown, and exits with their
// status: a package's whole TestMain is
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Teardown()
	os.Exit(code)
}

// Teardown stops PgBouncer and a private server and removes their files;
// call it from TestMain after m.Run.
func Teardown() {
	bouncer.srv.Stop()
	if bouncer.dir != "" {
		_ = os.RemoveAll(bouncer.dir)
	}
	if server != nil {
		_ = server.Stop("immediate")
		_ = os.RemoveAll(serverAt)
	}
	if baseCfg != nil && template != "" {
		_ = exec(context.Background(), "DROP DATABASE IF EXISTS "+template)
	}
}
