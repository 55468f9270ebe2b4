package pgbouncertest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgbouncertest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// probeTable makes a scratch table (over the direct URL) for the tests here.
func probeTable(t testing.TB, direct string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE probe (id bigserial PRIMARY KEY, worker int NOT NULL, n int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

func newPool(t testing.TB, url string, mode pgx.QueryExecMode, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = mode
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestConfig(t *testing.T) {
	up := pgbouncertest.Upstream{Host: "/run/pg sock", Port: 5433, User: "cw", Password: "it's"}
	ini := pgbouncertest.Config(up, 6543, "/d", "1.18.0")
	for _, want := range []string{
		"* = host='/run/pg sock' port=5433 user='cw' password='it''s'\n",
		"listen_port = 6543\n", "pool_mode = transaction\n", "auth_file = /d/userlist.txt\n",
	} {
		if !strings.Contains(ini, want) {
			t.Errorf("pgbouncer.ini lacks %q:\n%s", want, ini)
		}
	}
	if strings.Contains(ini, "max_prepared_statements") {
		t.Error("1.18 refuses to start with max_prepared_statements")
	}
	if !strings.Contains(pgbouncertest.Config(up, 6543, "/d", "1.22.1"), "max_prepared_statements = 0\n") {
		t.Error("from 1.21 on, prepared statement tracking should be pinned off")
	}
	if strings.Contains(pgbouncertest.Config(pgbouncertest.Upstream{Host: "h", Port: 1, User: "u"}, 1, "/d", "1.18.0"), "password=") {
		t.Error("an empty password must be left out: PgBouncer rejects empty values")
	}
}

// TestStartStop starts a PgBouncer of its own (the one pgtest shares is
// stopped only by Teardown) to time the start and check that Stop ends it.
func TestStartStop(t *testing.T) {
	direct, _ := pgtest.NewBouncedURL(t) // skips or fails without pgbouncer
	cfg, err := pgx.ParseConfig(direct)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is private to root, and as root PgBouncer
	// runs as postgres.
	dir, err := os.MkdirTemp("", "codewatch-pgbouncer-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	start := time.Now()
	s, err := pgbouncertest.Start(ctx, dir, pgbouncertest.UpstreamFrom(&cfg.Config))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PgBouncer %s on port %d answered after %v", s.Version, s.Port, time.Since(start).Round(time.Millisecond))
	defer s.Stop()

	conn, err := pgx.Connect(ctx, s.URL(cfg.Database))
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if db != cfg.Database {
		t.Fatalf("through PgBouncer: database %q, want %q", db, cfg.Database)
	}

	s.Stop()
	if exited, _ := s.Exited(); !exited {
		t.Fatal("PgBouncer still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d still accepts connections after Stop", s.Port)
	}
}

// TestTransactionPooling runs the kinds of database work codewatch does
// through PgBouncer in transaction mode, in the two query modes that do not
// keep named prepared statements on the server connection.
func TestTransactionPooling(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			direct, bounced := pgtest.NewBouncedURL(t)
			probeTable(t, direct)
			ctx := context.Background()
			// More clients than PgBouncer has server connections.
			const clients = 20
			pool := newPool(t, bounced, mode, clients)

			t.Run("plain", func(t *testing.T) {
				var n int
				if err := pool.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
					t.Fatalf("SELECT $1+1: %d, %v", n, err)
				}
				var tables int
				err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", "public").Scan(&tables)
				if err != nil || tables < 2 { // codewatch's migrated tables and probe
					t.Fatalf("tables: %d, %v", tables, err)
				}
			})

			t.Run("transaction", func(t *testing.T) {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					// Session state set inside a transaction stays with it.
					if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = '5s'"); err != nil {
						return err
					}
					var id int64
					if err := tx.QueryRow(ctx, "INSERT INTO probe (worker, n) VALUES ($1, $2) RETURNING id", -1, 1).Scan(&id); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, "UPDATE probe SET n = n + $1 WHERE id = $2", 10, id); err != nil {
						return err
					}
					var n int
					var timeout string
					if err := tx.QueryRow(ctx, "SELECT n, current_setting('statement_timeout') FROM probe WHERE id = $1", id).Scan(&n, &timeout); err != nil {
						return err
					}
					if n != 11 || timeout != "5s" {
						return fmt.Errorf("inside the transaction: n=%d statement_timeout=%s", n, timeout)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})

			t.Run("batch", func(t *testing.T) {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					b := &pgx.Batch{}
					for i := range 10 {
						b.Queue("INSERT INTO probe (worker, n) VALUES ($1, $2)", -2, i)
					}
					var count int
					b.Queue("SELECT count(*) FROM probe WHERE worker = $1", -2).QueryRow(func(r pgx.Row) error { return r.Scan(&count) })
					if err := tx.SendBatch(ctx, b).Close(); err != nil {
						return err
					}
					if count != 10 {
						return fmt.Errorf("batch saw %d of its 10 rows", count)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})

			t.Run("concurrent", func(t *testing.T) {
				const txPerClient = 10
				var (
					ready sync.WaitGroup
					done  sync.WaitGroup
					mu    sync.Mutex
					pids  = map[uint32]bool{}
					errs  []error
				)
				ready.Add(clients)
				for w := range clients {
					done.Go(func() {
						// Every client holds its own connection to PgBouncer
						// for the whole run, so 20 client connections share
						// at most PoolSize server connections.
						c, err := pool.Acquire(ctx)
						ready.Done()
						if err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
							return
						}
						defer c.Release()
						ready.Wait()
						for i := range txPerClient {
							err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
								var pid uint32
								if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
									return err
								}
								if _, err := tx.Exec(ctx, "INSERT INTO probe (worker, n) VALUES ($1, $2)", w, i); err != nil {
									return err
								}
								var seen int
								if err := tx.QueryRow(ctx, "SELECT count(*) FROM probe WHERE worker = $1", w).Scan(&seen); err != nil {
									return err
								}
								if seen != i+1 {
									return fmt.Errorf("client %d saw %d rows, want %d", w, seen, i+1)
								}
								mu.Lock()
								pids[pid] = true
								mu.Unlock()
								return nil
							})
							if err != nil {
								mu.Lock()
								errs = append(errs, err)
								mu.Unlock()
								return
							}
						}
					})
				}
				done.Wait()
				if len(errs) > 0 {
					t.Fatalf("%d clients failed, first: %v", len(errs), errs[0])
				}
				var rows int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM probe WHERE worker >= 0").Scan(&rows); err != nil || rows != clients*txPerClient {
					t.Fatalf("rows: %d, %v; want %d", rows, err, clients*txPerClient)
				}
				if len(pids) > pgbouncertest.PoolSize {
					t.Fatalf("%d server backends served the clients; PgBouncer's pool is %d", len(pids), pgbouncertest.PoolSize)
				}
				t.Logf("%d client connections, %d server backends", clients, len(pids))
			})
		})
	}
}

// TestNamedPreparedStatementsFail documents why codewatch cannot use pgx's
// default query mode (QueryExecModeCacheStatement) behind PgBouncer 1.18 in
// transaction mode: pgx prepares a named statement once per client
// connection, and the next transaction may run on another server connection.
func TestNamedPreparedStatementsFail(t *testing.T) {
	direct, bounced := pgtest.NewBouncedURL(t)
	probeTable(t, direct)
	ctx := context.Background()
	const q = "SELECT count(*) FROM probe WHERE worker = $1"

	t.Run("two clients", func(t *testing.T) {
		// Deterministic: one server connection exists when a prepares; b
		// then holds it in a transaction, so a's next query goes to a
		// second server connection that never saw the statement.
		a, err := pgx.Connect(ctx, bounced)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(ctx)
		b, err := pgx.Connect(ctx, bounced)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		var n int
		if err := a.QueryRow(ctx, q, 1).Scan(&n); err != nil {
			t.Fatalf("first query: %v", err)
		}
		tx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		err = a.QueryRow(ctx, q, 2).Scan(&n)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "26000" {
			t.Fatalf("second query on another server connection: %v; want SQLSTATE 26000", err)
		}
		t.Logf("named statement on another server connection: %v", err)
	})

	t.Run("20 clients", func(t *testing.T) {
		const clients = 20
		pool := newPool(t, bounced, pgx.QueryExecModeCacheStatement, clients)
		stmtName := regexp.MustCompile(`"stmtcache_[0-9a-f]+"`)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			msgs = map[string]int{}
		)
		for w := range clients {
			wg.Go(func() {
				for i := range 10 {
					err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "INSERT INTO probe (worker, n) VALUES ($1, $2)", w, i); err != nil {
							return err
						}
						var n int
						return tx.QueryRow(ctx, q, w).Scan(&n)
					})
					if err != nil {
						var pgErr *pgconn.PgError
						key := err.Error()
						if errors.As(err, &pgErr) {
							// The statement's name is a hash: keep the kind.
							key = pgErr.Code + " " + strings.Join(strings.Fields(stmtName.ReplaceAllString(pgErr.Message, `"stmtcache_…"`)), " ")
						}
						mu.Lock()
						msgs[key]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if len(msgs) == 0 {
			t.Fatal("named prepared statements worked through PgBouncer in transaction mode; if PgBouncer now tracks them, codewatch could use the default query mode")
		}
		keys := make([]string, 0, len(msgs))
		for k := range msgs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			t.Logf("%3d× %s", msgs[k], k)
			if !strings.HasPrefix(k, "26000 ") && !strings.HasPrefix(k, "42P05 ") {
				t.Errorf("unexpected kind of failure: %s", k)
			}
		}
	})
}

// TestStartupParameterRefused: PgBouncer 1.18 refuses a startup packet with
// a parameter it does not track, so the plan_cache_mode codewatch once sent
// at connect time could not go through it (postgres.PoolConfig now sends
// none and gets custom plans from unnamed statements); the same setting
// made on the database (or role) reaches every server connection instead.
func TestStartupParameterRefused(t *testing.T) {
	direct, bounced := pgtest.NewBouncedURL(t)
	ctx := context.Background()

	cfg, err := pgxpool.ParseConfig(bounced)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = pool.Ping(ctx)
	pool.Close()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08P01" || !strings.Contains(pgErr.Message, "unsupported startup parameter: plan_cache_mode") {
		t.Fatalf("connect with plan_cache_mode: %v; want PgBouncer's 08P01 unsupported startup parameter", err)
	}
	t.Logf("plan_cache_mode as a startup parameter: %v", err)

	// libpq's other way to pass settings at connect time.
	conn, err := pgx.Connect(ctx, bounced+"&options=-c%20plan_cache_mode%3Dforce_custom_plan")
	if err == nil {
		conn.Close(ctx)
		t.Log("options=-c plan_cache_mode=... accepted")
	} else {
		t.Logf("options=-c plan_cache_mode=...: %v", err)
	}

	// The workaround: set it on the database; every server connection
	// PgBouncer opens afterwards starts with it.
	dconn, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer dconn.Close(ctx)
	db := dconn.Config().Database
	if _, err := dconn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET plan_cache_mode = force_custom_plan"); err != nil {
		t.Fatal(err)
	}
	bpool := newPool(t, bounced, pgx.QueryExecModeCacheDescribe, 4)
	var mode string
	if err := bpool.QueryRow(ctx, "SELECT current_setting('plan_cache_mode')").Scan(&mode); err != nil || mode != "force_custom_plan" {
		t.Fatalf("plan_cache_mode through PgBouncer after ALTER DATABASE: %q, %v", mode, err)
	}

	// codewatch's own pool configuration goes through.
	pcfg, err := postgres.PoolConfig(bounced)
	if err != nil {
		t.Fatal(err)
	}
	pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("postgres.PoolConfig through PgBouncer: %v", err)
	}
	pool.Close()
}

// TestUnnamedStatementsGetCustomPlans checks, with auto_explain reporting
// plans as notices, that QueryExecModeCacheDescribe and QueryExecModeExec
// (unnamed statements, parsed again for each execution) are planned with
// the actual parameter values every time, so they need no plan_cache_mode;
// whereas a named statement (the default mode) switches to a generic plan
// after five runs.
func TestUnnamedStatementsGetCustomPlans(t *testing.T) {
	direct, bounced := pgtest.NewBouncedURL(t)
	probeTable(t, direct)
	ctx := context.Background()
	seed, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close(ctx)
	if _, err := seed.Exec(ctx, `INSERT INTO probe (worker, n) SELECT g % 50, g FROM generate_series(1, 5000) g; ANALYZE probe`); err != nil {
		t.Fatal(err)
	}

	// plans runs the same parameterised query 8 times in one transaction on
	// one connection and returns auto_explain's plan for each.
	plans := func(url string, mode pgx.QueryExecMode) []string {
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = mode
		var mu sync.Mutex
		var out []string
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(n.Message, "Query Text: SELECT n FROM probe") {
				out = append(out, n.Message)
			}
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// LOAD needs a superuser; the test servers' users are.
			for _, s := range []string{"LOAD 'auto_explain'",
				"SET LOCAL auto_explain.log_min_duration = 0",
				"SET LOCAL auto_explain.log_level = notice"} {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			for i := range 8 {
				var n int
				if err := tx.QueryRow(ctx, "SELECT n FROM probe WHERE id = $1", 100+i).Scan(&n); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42501" {
				t.Skipf("auto_explain: %v", err)
			}
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(out) != 8 {
			t.Fatalf("%d plans reported, want 8", len(out))
		}
		return out
	}

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeExec} {
		for i, p := range plans(bounced, mode) {
			if !strings.Contains(p, fmt.Sprintf("(id = '%d'::bigint)", 100+i)) {
				t.Fatalf("run %d through PgBouncer (%v) was not planned for its value:\n%s", i+1, mode, p)
			}
		}
	}
	named := plans(direct, pgx.QueryExecModeCacheStatement)
	if !strings.Contains(named[len(named)-1], "(id = $1)") {
		t.Fatalf("the 8th run of a named statement (direct) has no generic plan:\n%s", named[len(named)-1])
	}
	t.Logf("through PgBouncer, CacheDescribe and Exec: custom plans on all 8 runs; a named statement (direct), 8th run:\n%s", named[len(named)-1])
}
