package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/names"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamsync"
	"github.com/codewatch/codewatch/telemetry"
)

// serve is `codewatch serve`: load the configuration, open the service
// (in development mode without DATABASE_URL), start it, wait for the signal
// to stop (or a failure), shut it down.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	tuneGC(getenv, cfg.UnverifiedBudget)
	tel, logger, err := setupTelemetry(ctx, getenv, logger)
	if err != nil {
		return &exitError{2, err}
	}
	var app *App
	if cfg.Development() {
		app, err = OpenDev(ctx, cfg, logger, stdout, withTelemetry(tel))
	} else {
		app, err = Open(ctx, cfg, logger, withTelemetry(tel))
	}
	if err != nil {
		return err
	}
	app.Start(ctx)
	return app.Shutdown(app.Wait(ctx))
}

// loadConfig is config.Load with serve's exit codes: 2 for a mistake on the
// command line (with where help is) or an invalid setting.
func loadConfig(args []string, getenv func(string) string, stdout io.Writer) (*config.Config, error) {
	cfg, err := config.Load(args, getenv, stdout)
	if err != nil {
		var ue *config.UsageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			return nil, err
		case errors.As(err, &ue):
			return nil, usageError("serve", fmt.Errorf("serve: %w", ue.Err))
		}
		return nil, &exitError{2, err}
	}
	return cfg, nil
}

// tuneGC sets the collector's pace unless GOGC or GOMEMLIMIT does.
func tuneGC(getenv func(string) string, unverifiedBudget int64) {
	if getenv("GOGC") == "" && getenv("GOMEMLIMIT") == "" {
		// Ingest allocates briefly per event over a heap of a few MiB; the
		// default GOGC collects dozens of times a second. 200 halves that,
		// and a soft limit keeps the heap from growing past what a burst
		// needs (make bench reports GC cycles and peak RSS). The limit
		// leaves room for a full budget of unverified bodies: a limit the
		// live heap can reach makes the collector run without pause.
		debug.SetGCPercent(200)
		debug.SetMemoryLimit(40<<20 + unverifiedBudget)
	}
}

func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// listen binds addr, or says in one line which port is busy and which
// variable moves it.
func listen(addr, env string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, &exitError{1, fmt.Errorf("%s: %s is already in use (another codewatch?); set %s to another address", env, addr, env)}
		}
		return nil, &exitError{1, fmt.Errorf("%s: %w", env, err)}
	}
	return ln, nil
}

// reconcileScanEvery is how often, at most, the leader looks for lookups due.
const reconcileScanEvery = 15 * time.Second

// seamConfig is the Seam API client's configuration.
func seamConfig(cfg *config.Config, logger *slog.Logger) seam.Config {
	return seam.Config{APIKey: cfg.SeamAPIKey, BaseURL: cfg.SeamAPIURL, RPS: cfg.SeamRPS,
		DeviceDeletesPerMinute: cfg.SeamDeviceDeletesPerMinute, Timeout: cfg.SeamTimeout, Logger: logger}
}

// startSeam says in one line whether Seam's API is used, and queues the
// start-up backfill.
func startSeam(ctx, background context.Context, sy *seamsync.Service, worker *river.Client[pgx.Tx], cfg *config.Config, logger *slog.Logger) {
	if sy == nil {
		logger.Info("Seam API off: SEAM_API_KEY is not set, so deletion requests, reconciliation and backfill are unavailable")
		return
	}
	logger.Info("Seam API on", "url", cfg.SeamAPIURL, "rps", cfg.SeamRPS,
		"reconcile_after", cfg.ReconcileAfter.String(), "startup_backfill", cfg.StartupBackfill.String())
	// Which workspace the key reaches: until Seam says, no lookup confirms
	// a removal (it retries in the background, logging each failure).
	go sy.WatchWorkspace(background)
	if cfg.StartupBackfill <= 0 {
		return
	}
	job, err := sy.StartupBackfill(ctx, cfg.StartupBackfill)
	if err == nil {
		_, err = worker.Insert(ctx, job, nil)
	}
	if err != nil {
		logger.Warn("start-up backfill not queued; run codewatch backfill", "error", err)
		return
	}
	logger.Info("start-up backfill queued", "from", time.Unix(job.From, 0).UTC(), "to", time.Unix(job.To, 0).UTC())
}

// newJobClient builds the River client that works alert deliveries, the
// maintenance jobs and, with Seam's API configured, the seam queue's jobs.
func newJobClient(pool *pgxpool.Pool, store *postgres.Store, cfg *config.Config, sinks []alert.Sink, sy *seamsync.Service, nm *names.Service, m *metrics.Metrics, logger *slog.Logger, tel *telemetry.Telemetry) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	maint := &jobs.Maintenance{
		Store: store, SweepInterval: cfg.SweepInterval, Repeat: cfg.AlertRepeat, Retention: cfg.Retention,
		Logger:  logger,
		OnSweep: func(r lifecycle.SweepResult, d time.Duration) { m.SweepDuration.Observe(d.Seconds()) },
		OnPrune: func(t string, n int64) { m.RetentionDeleted.WithLabelValues(t).Add(float64(n)) },
	}
	maint.Register(workers)
	river.AddWorker(workers, alert.NewWorker(alert.WorkerConfig{
		Outbox: store, Sinks: sinks, MaxAge: cfg.AlertMaxAge, Logger: logger, Names: nm,
		Counters: alertCounters(m),
	}))
	periodic := maint.Periodic()
	nm.Register(workers)
	periodic = append(periodic, nm.Periodic()...)
	if sy != nil {
		sy.Register(workers)
		if cfg.ReconcileAfter > 0 {
			// Often enough that a lookup is at most a quarter late.
			every := min(max(cfg.ReconcileAfter/4, time.Second), reconcileScanEvery)
			periodic = append(periodic, sy.Periodic(every)...)
		}
	}
	return jobs.NewClient(pool, jobs.Config{
		Workers: workers, Periodic: periodic, Logger: logger, Tracer: tel.TracerProvider(),
		OnError: func(kind string) { m.JobErrors.WithLabelValues(kind).Inc() },
	})
}

// waitForDatabase migrates (or, with migrate false, waits for another
// process to have migrated), retrying while the database cannot be reached:
// one log line per retry. A migration the database refuses is final.
func waitForDatabase(ctx context.Context, migr *migrations.Migrator, migrate bool, logger *slog.Logger, setNotReady func(string)) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var err error
		if migrate {
			var res []migrations.Applied
			res, err = migr.Up(ctx)
			for _, r := range res {
				logger.Info("migration applied", "migration", r.Name, "duration", r.Duration.String())
			}
		} else {
			err = migr.Ready(ctx)
		}
		if err == nil {
			return nil
		}
		var me *migrations.Error
		if errors.As(err, &me) {
			return me
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := oneLine(err.Error())
		setNotReady("starting: " + why)
		logger.Warn("database not ready; retrying", "attempt", attempt, "retry_in", delay.String(), "error", why)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// retryStart runs start until it succeeds or ctx ends, waiting 500 ms
// doubling to 5 s between attempts, with one log line per retry. River's
// client pings the database as it starts: the database stopping between
// the migrations and that ping must not end the process (it recovers like a
// database unreachable at start).
func retryStart(ctx context.Context, what string, start func() error, logger *slog.Logger, setNotReady func(string)) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := oneLine(err.Error())
		setNotReady("starting " + what + ": " + why)
		logger.Warn(what+" did not start; retrying", "attempt", attempt, "retry_in", delay.String(), "error", why)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// sealClearBodies seals the bodies that a version before encryption stored
// in clear (key_id NULL), in the background, in small batches that ingest
// does not wait on; replicas starting together share the work (SKIP LOCKED).
// It logs only when there is something to do. A failure is logged, not
// fatal: the rows stay readable, and the next start or `codewatch rekey`
// seals them.
func sealClearBodies(ctx context.Context, store *postgres.Store, logger *slog.Logger) {
	start := time.Now()
	announced := false
	tables := map[string]bool{}
	res, err := store.Rekey(ctx, postgres.RekeyOptions{OnlyClear: true, BatchSize: 100,
		Progress: func(p postgres.RekeyProgress) {
			if !tables[p.Table] {
				tables[p.Table], announced = true, true
				logger.Info("sealing bodies stored in clear before encryption", "table", p.Table, "rows", p.Total)
			}
		}})
	switch {
	case ctx.Err() != nil:
		if announced {
			logger.Info("sealing bodies stored in clear: stopped; the next start continues", "events", res.Resealed["events"], "quarantine", res.Resealed["quarantine"])
		}
	case err != nil:
		logger.Warn("sealing bodies stored in clear failed; they stay readable; run codewatch rekey", "error", oneLine(err.Error()),
			"events", res.Resealed["events"], "quarantine", res.Resealed["quarantine"])
	case announced:
		logger.Info("bodies stored in clear are sealed", "events", res.Resealed["events"], "quarantine", res.Resealed["quarantine"],
			"refolded", res.Refolded, "duration", time.Since(start).Round(time.Millisecond).String())
	}
}

// oneLine keeps a multi-line driver error on one log line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
