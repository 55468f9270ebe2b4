package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
)

// sweepRemovalTimeout is the service's default CODEWATCH_REMOVAL_TIMEOUT.
const sweepRemovalTimeout = 30 * time.Minute

// seedCodes inserts access_codes rows g in [from, to] of a table of total
// codes. Every stride-th code, up to overdue of them, is a deletion awaiting
// removal for longer than the removal timeout and not yet flagged; they are
// spread over the table as they would be in production. The rest, by a hash
// of g: 60% removed (terminal), 34% active, 3% deleted minutes ago and
// awaiting removal (not overdue yet), 1% already flagged removal_overdue, 1%
// delayed with trouble, 1% deleted_not_programmed.
const seedCodes = `
INSERT INTO access_codes (access_code_id, workspace_id, device_id, connected_account_id,
	deletion_state, on_device, needs_troubleshooting, troubleshooting_reason,
	troubleshooting_details, trouble_key, trouble_since, deletion_event_id,
	created_at, set_on_device_at, deleted_at, removed_from_device_at,
	last_event_at, terminal_at, last_alert_at, updated_at)
SELECT md5('code-' || g)::uuid::text,
	'680d7c60-0a92-4e78-85bd-cb45155576b9',
	md5('device-' || (g % 5000))::uuid::text,
	'9792ea0f-b48d-4fff-9d10-bb08bc1ca16a',
	CASE k WHEN 'overdue' THEN 'awaiting_removal' WHEN 'recent' THEN 'awaiting_removal'
		WHEN 'flagged' THEN 'awaiting_removal' WHEN 'removed' THEN 'removed'
		WHEN 'delayed' THEN 'delayed' WHEN 'dnp' THEN 'deleted_not_programmed' ELSE 'active' END,
	k NOT IN ('removed', 'dnp'),
	k IN ('flagged', 'delayed'),
	CASE k WHEN 'flagged' THEN 'removal_overdue' WHEN 'delayed' THEN 'removal_delayed' END,
	CASE WHEN k IN ('flagged', 'delayed') THEN
		'{"access_code_errors":[],"access_code_warnings":[],"device_errors":[],"device_warnings":[]}'::jsonb END,
	CASE k WHEN 'flagged' THEN 'overdue:' || del_id WHEN 'delayed' THEN md5('trouble-' || g)::uuid::text END,
	CASE k WHEN 'flagged' THEN deleted + interval '30 minutes' WHEN 'delayed' THEN deleted + interval '5 minutes' END,
	CASE WHEN k <> 'active' THEN del_id END,
	created,
	CASE WHEN k <> 'dnp' THEN created + interval '1 minute' END,
	deleted,
	CASE k WHEN 'removed' THEN deleted + ((g % 10) + 1) * interval '1 minute' END,
	COALESCE(deleted, created + interval '1 minute') + CASE k WHEN 'removed' THEN ((g % 10) + 1) * interval '1 minute' ELSE interval '0' END,
	CASE k WHEN 'removed' THEN deleted + ((g % 10) + 1) * interval '1 minute' WHEN 'dnp' THEN deleted END,
	CASE WHEN k IN ('flagged', 'delayed') THEN now() - interval '1 hour' END,
	now()
FROM (
	SELECT g, k, created, md5('deletion-' || g)::uuid::text AS del_id,
		CASE k
			WHEN 'overdue' THEN now() - interval '31 minutes' - (g % 2880) * interval '1 minute'
			WHEN 'recent'  THEN now() - (g % 1200) * interval '1 second'
			WHEN 'flagged' THEN now() - interval '2 hours' - (g % 600) * interval '1 minute'
			WHEN 'delayed' THEN now() - interval '10 minutes' - (g % 3000) * interval '1 second'
			WHEN 'removed' THEN created + ((g % 20) + 1) * interval '1 hour'
			WHEN 'dnp'     THEN created + interval '5 minutes'
		END AS deleted
	FROM (
		SELECT g,
			now() - ((g % 90) + 2) * interval '1 day' AS created,
			CASE
				WHEN g % $3 = 0 AND g / $3 <= $4 THEN 'overdue'
				WHEN h < 60 THEN 'removed'
				WHEN h < 94 THEN 'active'
				WHEN h < 97 THEN 'recent'
				WHEN h = 97 THEN 'flagged'
				WHEN h = 98 THEN 'delayed'
				ELSE 'dnp'
			END AS k
		FROM (SELECT g, (g * 2654435761) % 100 AS h FROM generate_series($1::bigint, $2::bigint) AS g) a
	) b
) c`

type sweepReport struct {
	codes, overdue int
	seed           time.Duration
	duration       time.Duration
	flagged        int // SweepResult.Overdue
	newlyFlagged   int64
	alerts         int64
	deliveries     int64
	leftOverdue    int64
	explain        string
	usesIndex      bool
	tableMB        float64
	indexMB        float64
	problems       []string
	statements     []string
}

func (r *sweepReport) ok() bool { return len(r.problems) == 0 }

// runSweep seeds a fresh database with codes access codes, overdue of them
// overdue, and times one lifecycle Store.Sweep over it.
// With stmts non-nil, the report holds the top of pg_stat_statements for
// the sweep.
func runSweep(ctx context.Context, srv *localpg.Server, codes, overdue int, logf func(string, ...any), stmts *dbSampler) (*sweepReport, error) {
	rep := &sweepReport{codes: codes, overdue: overdue}
	if overdue <= 0 || codes < overdue {
		return nil, fmt.Errorf("sweep: need 0 < overdue (%d) <= codes (%d)", overdue, codes)
	}
	const db = "bench_sweep"
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return nil, err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
	admin.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	pcfg, err := postgres.PoolConfig(srv.URL(db)) // as the service configures its pool
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	m, err := migrations.New(pool, nil)
	if err != nil {
		return nil, err
	}
	_, err = m.Up(ctx)
	m.Close()
	if err != nil {
		return nil, err
	}

	// Seed in two halves at once: the machine has two cores to fill.
	start := time.Now()
	stride := codes / overdue
	var wg sync.WaitGroup
	errs := make([]error, 2)
	half := codes / 2
	for i, r := range [][2]int{{1, half}, {half + 1, codes}} {
		wg.Go(func() {
			_, errs[i] = pool.Exec(ctx, seedCodes, r[0], r[1], stride, overdue)
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, fmt.Errorf("seed access_codes: %w", e)
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) access_codes"); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	// Seeding wrote about a gigabyte of WAL: finish the checkpoint it set
	// off now, rather than have it run during the timed sweep. The sweep
	// then writes a full-page image on the first change to each page, as a
	// production sweep does between checkpoints.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	rep.seed = time.Since(start)
	var tableBytes, indexBytes int64
	_ = pool.QueryRow(ctx, `SELECT pg_table_size('access_codes'), pg_indexes_size('access_codes')`).Scan(&tableBytes, &indexBytes)
	rep.tableMB, rep.indexMB = float64(tableBytes)/(1<<20), float64(indexBytes)/(1<<20)

	var due, before int64
	if err := pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL
				AND deleted_at < now() - $1 * interval '1 second'),
			count(*) FILTER (WHERE needs_troubleshooting AND troubleshooting_reason = 'removal_overdue')
		FROM access_codes`, sweepRemovalTimeout.Seconds()).Scan(&due, &before); err != nil {
		return nil, err
	}
	logf("sweep: seeded %d codes (%d overdue, %d already flagged) in %s; table %.0f MiB, indexes %.0f MiB",
		codes, due, before, rep.seed.Round(100*time.Millisecond), rep.tableMB, rep.indexMB)
	if due != int64(overdue) {
		rep.problems = append(rep.problems, fmt.Sprintf("seeded %d overdue codes, want %d", due, overdue))
	}

	// The plan, before the sweep (plain EXPLAIN: it reads nothing).
	ins, err := jobs.NewInserter(pool, nil)
	if err != nil {
		return nil, err
	}
	store := postgres.New(pool, ins, postgres.Config{RemovalTimeout: sweepRemovalTimeout})
	cutoff := lifecycle.OverdueCutoff(time.Now(), sweepRemovalTimeout)
	if rep.explain, err = store.ExplainSweep(ctx, time.Now()); err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	rep.usesIndex = strings.Contains(rep.explain, "access_codes_unconfirmed_idx")
	if !rep.usesIndex {
		rep.problems = append(rep.problems, "the sweeper's SELECT does not use access_codes_unconfirmed_idx")
	}

	if stmts != nil {
		stmts.resetStatements(ctx)
	}
	t := time.Now()
	res, err := store.Sweep(ctx, 0)
	rep.duration = time.Since(t)
	if stmts != nil {
		rep.statements = stmts.topStatementsIn(ctx, db, 8)
	}
	if err != nil {
		return rep, fmt.Errorf("sweep: %w", err)
	}
	rep.flagged = res.Overdue
	var after int64
	if err := pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE needs_troubleshooting AND troubleshooting_reason = 'removal_overdue'),
			count(*) FILTER (WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL
				AND deleted_at < $1)
		FROM access_codes`, cutoff).Scan(&after, &rep.leftOverdue); err != nil {
		return rep, err
	}
	rep.newlyFlagged = after - before
	if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM alerts WHERE type = 'deletion.needs_troubleshooting'),
			(SELECT count(*) FROM alert_deliveries)`).Scan(&rep.alerts, &rep.deliveries); err != nil {
		return rep, err
	}
	if rep.flagged != overdue {
		rep.problems = append(rep.problems, fmt.Sprintf("Sweep reported %d overdue, want %d", rep.flagged, overdue))
	}
	if rep.newlyFlagged != int64(overdue) {
		rep.problems = append(rep.problems, fmt.Sprintf("%d codes newly flagged removal_overdue, want %d", rep.newlyFlagged, overdue))
	}
	if rep.alerts != int64(overdue) {
		rep.problems = append(rep.problems, fmt.Sprintf("%d needs_troubleshooting alerts, want %d", rep.alerts, overdue))
	}
	if rep.deliveries != int64(overdue) {
		rep.problems = append(rep.problems, fmt.Sprintf("%d alert_deliveries (sink log), want %d", rep.deliveries, overdue))
	}
	if rep.leftOverdue != 0 {
		rep.problems = append(rep.problems, fmt.Sprintf("%d overdue codes left unflagged", rep.leftOverdue))
	}
	return rep, nil
}
