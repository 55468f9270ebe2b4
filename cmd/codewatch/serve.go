package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamsync"
	"github.com/codewatch/codewatch/verify"
)

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

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stdout)
	if err != nil {
		var ue *config.UsageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			return err
		case errors.As(err, &ue):
			return usageError("serve", fmt.Errorf("serve: %w", ue.Err))
		}
		return &exitError{2, err}
	}
	logger := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if getenv("GOGC") == "" && getenv("GOMEMLIMIT") == "" {
		// Ingest allocates briefly per event over a heap of a few MiB; the
		// default GOGC collects dozens of times a second. 200 halves that,
		// and a soft limit keeps the heap from growing past what a burst
		// needs (make bench reports GC cycles and peak RSS). The limit
		// leaves room for a full budget of unverified bodies: a limit the
		// live heap can reach makes the collector run without pause.
		debug.SetGCPercent(200)
		debug.SetMemoryLimit(40<<20 + cfg.UnverifiedBudget)
	}
	dev := cfg.DatabaseURL == ""
	if dev && !cfg.ListenSet {
		// Development mode answers this machine only, unless told otherwise.
		cfg.Listen = "127.0.0.1" + cfg.Listen[strings.LastIndex(cfg.Listen, ":"):]
	}

	// Bind first: a busy port is reported before anything else happens.
	pubLn, err := listen(cfg.Listen, "CODEWATCH_LISTEN")
	if err != nil {
		return err
	}
	defer pubLn.Close()
	opsLn, err := listen(cfg.OpsListen, "CODEWATCH_OPS_LISTEN")
	if err != nil {
		return err
	}
	defer opsLn.Close()

	stopDevDB := func() {}
	if dev {
		if stopDevDB, err = devMode(ctx, cfg, pubLn.Addr(), opsLn.Addr(), logger, stdout); err != nil {
			return err
		}
	}
	defer func() { stopDevDB() }()
	if len(cfg.WebhookSecrets) == 0 {
		return &exitError{2, errors.New("SEAM_WEBHOOK_SECRET: required (the whsec_... secret of your Seam webhook endpoint)")}
	}
	if len(cfg.OpsTokens) == 0 {
		return &exitError{2, errors.New("CODEWATCH_OPS_TOKEN: required (a bearer token of at least 16 characters for the ops API)")}
	}
	if cfg.DataKeys == nil {
		return &exitError{2, errors.New("CODEWATCH_DATA_KEYS: required with DATABASE_URL (id:base64key of 32 bytes, e.g. from 'codewatch keys generate'; it encrypts the stored webhook bodies)")}
	}
	verifier, err := verify.New(cfg.WebhookSecrets, nil)
	if err != nil {
		return &exitError{2, fmt.Errorf("SEAM_WEBHOOK_SECRET: %w", err)}
	}

	// The pools connect lazily: nothing below waits for the database.
	pcfg, err := postgres.PoolConfig(cfg.DatabaseURL)
	if err != nil {
		return &exitError{2, errors.New("DATABASE_URL: not a valid Postgres URL")}
	}
	pcfg.MaxConns = int32(cfg.DBMaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	migratePool := pool
	if cfg.MigrateDatabaseURL != "" {
		mcfg, err := postgres.PoolConfig(cfg.MigrateDatabaseURL)
		if err != nil {
			return &exitError{2, errors.New("CODEWATCH_MIGRATE_DATABASE_URL: not a valid Postgres URL")}
		}
		mcfg.MaxConns = 2
		if migratePool, err = pgxpool.NewWithConfig(ctx, mcfg); err != nil {
			return err
		}
		defer migratePool.Close()
	}
	migr, err := migrations.New(migratePool, logger)
	if err != nil {
		return err
	}
	defer migr.Close()

	m := metrics.New()
	sinks := []alert.Sink{alert.LogSink{Logger: logger}}
	httpClient := &http.Client{Timeout: 10 * time.Second}
	if cfg.AlertWebhookURL != "" {
		sinks = append(sinks, alert.WebhookSink{URL: cfg.AlertWebhookURL, Secret: cfg.AlertWebhookSecret, Client: httpClient})
	}
	if cfg.SlackWebhookURL != "" {
		sinks = append(sinks, alert.SlackSink{URL: cfg.SlackWebhookURL, Client: httpClient})
	}
	inserter, err := jobs.NewInserter(pool, logger)
	if err != nil {
		return err
	}
	store := postgres.New(pool, inserter, postgres.Config{
		RemovalTimeout: cfg.RemovalTimeout,
		ReconcileAfter: cfg.ReconcileAfter,
		Sinks:          alert.SinkNames(sinks),
		Workers:        cfg.IngestWorkers,
		Keys:           cfg.DataKeys,
		// A quarter of the connections ingest leaves (2 by default): ops
		// readers in a loop cannot take the database from ingest.
		ReadConcurrency: max(1, (cfg.DBMaxConns-cfg.IngestWorkers)/4),
		Logger:          logger,
		OnFlag: func(reason string) {
			m.Flagged.WithLabelValues(reason).Inc()
			if reason == lifecycle.ReasonOverdue {
				m.OverdueFlagged.Inc()
			}
		},
	})
	var sy *seamsync.Service
	if cfg.SeamAPIKey != "" {
		client, err := seam.New(seamConfig(cfg, logger))
		if err != nil {
			return &exitError{2, fmt.Errorf("SEAM_API_KEY: %w", err)}
		}
		sy = seamsync.New(seamsync.Config{Seam: client, Store: store, Keys: cfg.DataKeys, Logger: logger})
	}
	worker, err := newJobClient(pool, store, cfg, sinks, sy, m, logger)
	if err != nil {
		return err
	}
	if sy != nil {
		sy.UseJobs(worker)
	}

	// Until the database is reachable and migrated, both listeners answer:
	// /healthz 200, /readyz, webhooks and /v1 503 with the reason.
	var started, shuttingDown atomic.Bool
	var notReady atomic.Pointer[string]
	setNotReady := func(why string) { notReady.Store(&why) }
	setNotReady("starting: connecting to the database")
	available := func() error {
		if started.Load() {
			return nil
		}
		return errors.New(*notReady.Load())
	}
	ready := func(ctx context.Context) error {
		if shuttingDown.Load() {
			return errors.New("shutting down")
		}
		if err := available(); err != nil {
			return err
		}
		return migr.Ready(ctx)
	}
	m.RegisterState(store, 5*time.Second, logger)

	toks := make([]handlers.Token, len(cfg.OpsTokens))
	for i, t := range cfg.OpsTokens {
		toks[i] = handlers.Token{Name: t.Name, Value: t.Value}
	}
	public := handlers.NewPublicServer(&handlers.Public{
		Verifier: verifier, Store: store, Metrics: m, Logger: logger, IngestTimeout: 12 * time.Second,
		Available: available, TrustedProxies: cfg.TrustedProxies,
		Budget: handlers.NewBudget(cfg.UnverifiedBudget, func(n int64) { m.UnverifiedBytes.Set(float64(n)) }),
	})
	cons := &console.Console{Store: store, PublicURL: cfg.PublicURL, SessionTTL: cfg.SessionTTL}
	opsCfg := &handlers.Ops{
		Store: store, Tokens: toks, Metrics: m, Logger: logger, Ready: ready, Available: available,
		TrustedProxies: cfg.TrustedProxies,
		Console:        cons,
	}
	if sy != nil {
		opsCfg.Seam = sy
		cons.Actions = seamActions(sy)
	}
	ops := handlers.NewOpsServer(opsCfg)
	pubSrv := &http.Server{Handler: public, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	opsSrv := &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	errc := make(chan error, 2)
	go func() { errc <- pubSrv.Serve(pubLn) }()
	go func() { errc <- opsSrv.Serve(opsLn) }()
	logger.Info("codewatch listening; connecting to the database", "listen", pubLn.Addr().String(), "ops_listen", opsLn.Addr().String())

	// Start-up proper: migrate (or wait for the schema), then start ingest
	// and background work.
	bg := context.WithoutCancel(ctx)
	startc := make(chan error, 1)
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	// Bodies stored in clear by a version before encryption are sealed in
	// the background once serving (sealClearBodies), and the Seam API key's
	// workspace is asked for until Seam answers; stopped at shutdown.
	sealCtx, stopSealing := context.WithCancel(bg)
	defer stopSealing()
	var sealing sync.WaitGroup
	go func() {
		err := waitForDatabase(startCtx, migr, !cfg.NoMigrate, logger, setNotReady)
		if err == nil {
			store.Start()
			if err = worker.Start(bg); err == nil {
				logger.Info("codewatch serving", "listen", pubLn.Addr().String(), "ops_listen", opsLn.Addr().String(),
					"secrets", len(cfg.WebhookSecrets), "ops_tokens", len(cfg.OpsTokens),
					"sinks", strings.Join(alert.SinkNames(sinks), ","), "removal_timeout", cfg.RemovalTimeout.String(),
					"data_keys", cfg.DataKeys)
				sealing.Go(func() { sealClearBodies(sealCtx, store, logger) })
				startSeam(bg, sealCtx, sy, worker, cfg, logger)
				// Ready once everything has started and said so.
				started.Store(true)
			}
		}
		startc <- err
	}()

	var runErr error
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
			waiting = false
		case runErr = <-errc:
			logger.Error("listener failed", "error", runErr)
			waiting = false
		case err := <-startc:
			if err != nil {
				if ctx.Err() == nil {
					runErr = &exitError{1, err}
				}
				waiting = false
			}
		}
	}
	cancelStart()

	// Readiness turns false at once; after the drain, listeners stop
	// accepting and in-flight webhooks finish and commit; then background
	// work stops. The whole of it is bounded by CODEWATCH_SHUTDOWN_TIMEOUT.
	shuttingDown.Store(true)
	if cfg.ShutdownDrain > 0 && runErr == nil {
		// Load balancers see /readyz fail and stop routing here while
		// the listeners still answer whatever reaches them.
		logger.Info("draining", "for", cfg.ShutdownDrain.String())
		select {
		case <-time.After(cfg.ShutdownDrain):
		case runErr = <-errc:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, srv := range []*http.Server{pubSrv, opsSrv} {
			wg.Go(func() {
				if err := srv.Shutdown(sctx); err != nil {
					logger.Warn("shutdown incomplete", "error", err)
					srv.Close()
				}
			})
		}
		wg.Wait()
		if sy != nil {
			// Deletion requests whose callers stopped waiting record
			// Seam's answer before the store closes.
			if err := sy.Drain(sctx); err != nil {
				logger.Warn("deletion requests still running at shutdown", "error", err)
			}
		}
		stopSealing()
		sealing.Wait()
		if started.Load() {
			store.Close()
			if err := worker.Stop(sctx); err != nil {
				// Jobs still running: cancel them; River retries them.
				cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
				_ = worker.StopAndCancel(cctx)
				ccancel()
			}
		}
		pool.Close()
	}()
	select {
	case <-done:
		logger.Info("stopped")
	case <-sctx.Done():
		// A frozen database can hold a transaction past any deadline;
		// exit anyway: nothing unacknowledged is lost (Seam retries).
		logger.Error("shutdown timed out; exiting with work unfinished", "timeout", cfg.ShutdownTimeout.String())
	}
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return nil
}

// seamActions are the console's buttons that call Seam's API: the same
// calls as POST /v1/access_codes/{id}/reconcile and .../delete.
func seamActions(sy *seamsync.Service) []console.CodeAction {
	return []console.CodeAction{
		{Name: "reconcile", Label: "Reconcile now",
			Help: "Look the code up in Seam's API now: only Seam's own not-found after the deletion confirms it; Seam's errors and warnings are shown.",
			Do: func(ctx context.Context, id, _ string) (string, error) {
				c, done, err := sy.ReconcileWithin(ctx, id, handlers.SeamWait)
				switch {
				case err != nil:
					return "", err
				case !done:
					return "The lookup in Seam's API has not finished; it goes on in the background and this page shows its result when it has.", nil
				}
				return "Looked up in Seam: the code is " + string(c.DeletionState) + ".", nil
			}},
		{Name: "delete", Label: "Request deletion", Danger: true, Confirm: "Yes, ask Seam to delete this code",
			Help: "Ask Seam to delete the code from its lock; codewatch follows the deletion until the lock confirms it.",
			Shown: func(c *lifecycle.AccessCode) bool {
				return c.DeletedAt == nil && c.DeletionState != lifecycle.DeletionRequested
			},
			Do: func(ctx context.Context, id, by string) (string, error) {
				c, done, err := sy.RequestDeletionWithin(ctx, id, by, handlers.SeamWait)
				switch {
				case err != nil:
					return "", err
				case !done || c == nil:
					return "Seam has not answered the deletion request yet; it goes on in the background and this page shows the request when Seam has answered.", nil
				}
				attempt := ""
				if c.DeletionRequest != nil {
					attempt = " (action attempt " + c.DeletionRequest.ActionAttemptID + ")"
				}
				return "Deletion requested" + attempt + ": the code is " + string(c.DeletionState) + ".", nil
			}},
	}
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
func newJobClient(pool *pgxpool.Pool, store *postgres.Store, cfg *config.Config, sinks []alert.Sink, sy *seamsync.Service, m *metrics.Metrics, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	maint := &jobs.Maintenance{
		Store: store, SweepInterval: cfg.SweepInterval, Repeat: cfg.AlertRepeat, Retention: cfg.Retention,
		Logger:  logger,
		OnSweep: func(r lifecycle.SweepResult, d time.Duration) { m.SweepDuration.Observe(d.Seconds()) },
		OnPrune: func(t string, n int64) { m.RetentionDeleted.WithLabelValues(t).Add(float64(n)) },
	}
	maint.Register(workers)
	river.AddWorker(workers, alert.NewWorker(alert.WorkerConfig{
		Outbox: store, Sinks: sinks, MaxAge: cfg.AlertMaxAge, Logger: logger,
		Counters: alert.Counters{
			Sent:    func(sink, typ string) { m.AlertsSent.WithLabelValues(sink, typ).Inc() },
			Failed:  func(sink string) { m.AlertsFailed.WithLabelValues(sink).Inc() },
			GivenUp: func(sink string) { m.AlertsGivenUp.WithLabelValues(sink).Inc() },
		},
	}))
	periodic := maint.Periodic()
	if sy != nil {
		sy.Register(workers)
		if cfg.ReconcileAfter > 0 {
			// Often enough that a lookup is at most a quarter late.
			every := min(max(cfg.ReconcileAfter/4, time.Second), reconcileScanEvery)
			periodic = append(periodic, sy.Periodic(every)...)
		}
	}
	return jobs.NewClient(pool, jobs.Config{
		Workers: workers, Periodic: periodic, Logger: logger,
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
