package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/postgres"
)

// Direct to Postgres, the store's connections use named statements with one
// generic plan and no sequential scans; through PgBouncer (which refuses
// those startup parameters, and named statements in transaction mode) they
// fall back to unnamed statements and work.
func TestPoolConfigDirectAndThroughPgBouncer(t *testing.T) {
	direct, bounced := pgtest.NewBouncedURL(t)
	ctx := context.Background()
	open := func(url string) *pgxpool.Pool {
		cfg, err := postgres.PoolConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	setting := func(pool *pgxpool.Pool, name string) (string, pgx.QueryExecMode) {
		t.Helper()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v, conn.Conn().Config().DefaultQueryExecMode
	}
	d := open(direct)
	if v, mode := setting(d, "plan_cache_mode"); v != "force_generic_plan" || mode != pgx.QueryExecModeCacheStatement {
		t.Errorf("direct: plan_cache_mode %q, exec mode %v", v, mode)
	}
	if v, _ := setting(d, "enable_seqscan"); v != "off" {
		t.Errorf("direct: enable_seqscan %q", v)
	}
	if v, _ := setting(d, "jit"); v != "off" {
		t.Errorf("direct: jit %q", v)
	}
	b := open(bounced)
	if _, mode := setting(b, "plan_cache_mode"); mode != pgx.QueryExecModeCacheDescribe {
		t.Errorf("through PgBouncer: exec mode %v, want unnamed statements", mode)
	}
	// Many connections through five server connections: no named
	// statement may leak between them.
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			var n int
			errs <- b.QueryRow(ctx, "SELECT count(*) FROM access_codes WHERE access_code_id = ANY($1)", []string{"x", "y"}).Scan(&n)
			_ = i
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatalf("through PgBouncer: %v", err)
		}
	}
}
