package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/postgres"
)

// sweepRemovalTimeout is the service's default CODEWATCH_REMOVAL_TIMEOUT.
const sweepRemovalTimeout = 30 * time.Minute

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
	// Local cluster setup: a database of its own, not the domain's tables.
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return nil, err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
	admin.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	store, err := openStore(ctx, srv.URL(db), postgres.Config{RemovalTimeout: sweepRemovalTimeout})
	if err != nil {
		return nil, err
	}
	defer store.Pool().Close()

	// Seed in two halves at once: the machine has two cores to fill.
	start := time.Now()
	stride := codes / overdue
	var wg sync.WaitGroup
	errs := make([]error, 2)
	half := codes / 2
	for i, r := range [][2]int{{1, half}, {half + 1, codes}} {
		wg.Go(func() {
			errs[i] = store.SeedSweepCodes(ctx, r[0], r[1], stride, overdue)
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, fmt.Errorf("seed access_codes: %w", e)
		}
	}
	// Seeding wrote about a gigabyte of WAL: finish the checkpoint it set
	// off now (Settle ends with one), rather than have it run during the
	// timed sweep. The sweep then writes a full-page image on the first
	// change to each page, as a production sweep does between checkpoints.
	if err := store.Settle(ctx, "access_codes"); err != nil {
		return nil, err
	}
	rep.seed = time.Since(start)
	sizes, _ := store.TableSizes(ctx)
	rep.tableMB, rep.indexMB = float64(sizes.Codes)/(1<<20), float64(sizes.CodeIndexes)/(1<<20)

	due, before, err := store.CountOverdue(ctx, lifecycle.OverdueCutoff(time.Now(), sweepRemovalTimeout))
	if err != nil {
		return nil, err
	}
	logf("sweep: seeded %d codes (%d overdue, %d already flagged) in %s; table %.0f MiB, indexes %.0f MiB",
		codes, due, before, rep.seed.Round(100*time.Millisecond), rep.tableMB, rep.indexMB)
	if due != int64(overdue) {
		rep.problems = append(rep.problems, fmt.Sprintf("seeded %d overdue codes, want %d", due, overdue))
	}

	// The plan, before the sweep (plain EXPLAIN: it reads nothing).
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
	if rep.leftOverdue, after, err = store.CountOverdue(ctx, cutoff); err != nil {
		return rep, err
	}
	rep.newlyFlagged = after - before
	alerts, err := store.CountAlertsByType(ctx)
	if err != nil {
		return rep, err
	}
	rep.alerts = alerts[lifecycle.AlertTrouble]
	deliveries, _, err := store.CountDeliveries(ctx)
	if err != nil {
		return rep, err
	}
	for _, n := range deliveries {
		rep.deliveries += n
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
