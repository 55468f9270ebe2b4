package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// dbSample is the database's progress counters at a moment.
type dbSample struct {
	ok bool
	// xacts: transaction ids assigned, i.e. write transactions begun (exact).
	xacts float64
	// walBytes: WAL written (exact, from the insert position).
	walBytes float64
	// walSyncs: WAL fsyncs (pg_stat_wal; approximate, stats are flushed
	// about once a second).
	walSyncs float64
}

func (a dbSample) sub(b dbSample) dbSample {
	return dbSample{ok: a.ok && b.ok, xacts: a.xacts - b.xacts, walBytes: a.walBytes - b.walBytes, walSyncs: a.walSyncs - b.walSyncs}
}

// dbSampler reads dbSamples over one connection of its own. Its SQL stays
// here, not in postgres/: it reads the server's statistics (pg_stat_*, the
// WAL position), not the domain's tables.
type dbSampler struct{ conn *pgx.Conn }

func newDBSampler(ctx context.Context, url string) (*dbSampler, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	return &dbSampler{conn: c}, nil
}

func (s *dbSampler) close() { s.conn.Close(context.Background()) }

// sample is read-only, so it assigns no transaction id itself.
func (s *dbSampler) sample(ctx context.Context) dbSample {
	var d dbSample
	err := s.conn.QueryRow(ctx, `SELECT
			pg_snapshot_xmax(pg_current_snapshot())::text::float8,
			pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8,
			(SELECT wal_sync FROM pg_stat_wal)::float8`).Scan(&d.xacts, &d.walBytes, &d.walSyncs)
	d.ok = err == nil
	return d
}

// statementsSettings preload pg_stat_statements for -statements.
var statementsSettings = map[string]string{
	"shared_preload_libraries":         "'pg_stat_statements'",
	"pg_stat_statements.max":           "1000",
	"pg_stat_statements.track":         "all",
	"pg_stat_statements.save":          "off",
	"track_io_timing":                  "on",
	"track_wal_io_timing":              "on",
	"pg_stat_statements.track_utility": "on",
}

// enableStatements creates the extension in the sampler's database.
func (s *dbSampler) enableStatements(ctx context.Context) error {
	_, err := s.conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	return err
}

func (s *dbSampler) resetStatements(ctx context.Context) {
	_, _ = s.conn.Exec(ctx, "SELECT pg_stat_statements_reset()")
}

// topStatements lists the statements that took the most execution time
// since the last reset, as lines ready to print.
func (s *dbSampler) topStatements(ctx context.Context, n int) []string {
	return s.topStatementsIn(ctx, "", n)
}

// topStatementsIn is topStatements for database db ("" for the sampler's).
func (s *dbSampler) topStatementsIn(ctx context.Context, db string, n int) []string {
	rows, err := s.conn.Query(ctx, `
		SELECT calls, rows, total_exec_time, total_exec_time / NULLIF(calls, 0),
			100 * total_exec_time / NULLIF(sum(total_exec_time) OVER (), 0),
			wal_bytes::float8, shared_blks_hit + shared_blks_read,
			regexp_replace(left(regexp_replace(query, '\s+', ' ', 'g'), 110), '\s+$', '')
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = COALESCE(NULLIF($2, ''), current_database()))
			AND query NOT LIKE '%pg_stat_statements%'
		ORDER BY total_exec_time DESC LIMIT $1`, n, db)
	if err != nil {
		return []string{"pg_stat_statements: " + err.Error()}
	}
	defer rows.Close()
	out := []string{fmt.Sprintf("%9s %9s %10s %8s %6s %9s %8s  %s", "calls", "rows", "total ms", "mean ms", "%time", "WAL B/row", "blk/call", "statement")}
	for rows.Next() {
		var calls, nrows int64
		var total, mean, pct, wal float64
		var blks int64
		var q string
		if err := rows.Scan(&calls, &nrows, &total, &mean, &pct, &wal, &blks, &q); err != nil {
			return append(out, err.Error())
		}
		out = append(out, fmt.Sprintf("%9d %9d %10.0f %8.3f %5.1f%% %9.0f %8.1f  %s",
			calls, nrows, total, mean, pct, wal/float64(max(nrows, 1)), float64(blks)/float64(max(calls, 1)), q))
	}
	return out
}
