package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/names"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/proof"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamsync"
	"github.com/codewatch/codewatch/telemetry"
	"github.com/codewatch/codewatch/verify"
)

// App is the service `codewatch serve` runs. Open (or OpenDev) builds it
// from the configuration without waiting for the database; Start serves and
// starts up in the background; Wait returns when it should stop; Shutdown
// stops it within CODEWATCH_SHUTDOWN_TIMEOUT.
type App struct {
	cfg    *config.Config
	logger *slog.Logger

	pubLn, opsLn   net.Listener
	pool           *pgxpool.Pool
	migr           *migrations.Migrator
	metrics        *metrics.Metrics
	sinks          []alert.Sink
	store          *postgres.Store
	seamSync       *seamsync.Service // nil without SEAM_API_KEY
	names          *names.Service    // the names people use (issue 22)
	signing        *proof.Keyring    // CODEWATCH_SIGNING_KEY; nil when unset
	worker         *river.Client[pgx.Tx]
	ready          *readiness
	pubSrv, opsSrv *http.Server
	// tel traces the service; nil with tracing off (telemetry.go).
	tel *telemetry.Telemetry

	// closers run last, newest first, at Shutdown or when Open fails: the
	// listeners, the development Postgres, the migrations' pool and the
	// migrator.
	closers []func()

	errc        chan error // a listener that stopped serving
	startc      chan error // start-up's outcome
	cancelStart context.CancelFunc
	stopSealing context.CancelFunc
	sealing     sync.WaitGroup
}

// Open builds the service with DATABASE_URL set.
func Open(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts ...Option) (*App, error) {
	a := newApp(cfg, logger, opts)
	return a.open(ctx, func() error { return nil })
}

// OpenDev builds the service in development mode (no DATABASE_URL): it
// binds this machine's interface only unless told otherwise, starts (or
// finds) the local Postgres once the ports are its own, fills in the
// development secrets and prints the banner, then assembles the same
// service as Open.
func OpenDev(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer, opts ...Option) (*App, error) {
	cfg.DevelopmentDefaults()
	a := newApp(cfg, logger, opts)
	return a.open(ctx, func() error {
		stopDB, err := devMode(ctx, cfg, a.pubLn.Addr(), a.opsLn.Addr(), logger, stdout)
		if err != nil {
			return err
		}
		a.closers = append(a.closers, stopDB)
		return nil
	})
}

func newApp(cfg *config.Config, logger *slog.Logger, opts []Option) *App {
	a := &App{cfg: cfg, logger: logger}
	for _, o := range opts {
		o(a)
	}
	return a
}

// open binds both listeners first, so that a busy port is reported before
// anything else happens, then runs prepare (development mode's database and
// secrets) and assembles the rest. On failure it closes what it opened.
func (a *App) open(ctx context.Context, prepare func() error) (*App, error) {
	err := a.bind()
	if err == nil {
		err = prepare()
	}
	if err == nil {
		err = a.assemble(ctx)
	}
	if err != nil {
		if a.pool != nil {
			a.pool.Close()
		}
		a.close()
		return nil, err
	}
	return a, nil
}

// bind opens both listeners.
func (a *App) bind() error {
	var err error
	if a.pubLn, err = listen(a.cfg.Listen, "CODEWATCH_LISTEN"); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { a.pubLn.Close() })
	if a.opsLn, err = listen(a.cfg.OpsListen, "CODEWATCH_OPS_LISTEN"); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { a.opsLn.Close() })
	return nil
}

// close runs the closers, newest first.
func (a *App) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// assemble builds everything behind the listeners once the settings serve
// cannot run without are there: pools, store, Seam's client, River, sinks,
// metrics, readiness and both servers. Nothing here waits for the database.
func (a *App) assemble(ctx context.Context) error {
	cfg, logger := a.cfg, a.logger
	if err := cfg.Check(); err != nil {
		return &exitError{2, err}
	}
	verifier, err := verify.New(cfg.WebhookSecrets, nil)
	if err != nil { // Check has made one from the same secrets
		return &exitError{2, err}
	}
	if err := a.openDatabase(ctx); err != nil {
		return err
	}
	if a.signing, err = signingKeys(cfg.SigningKey); err != nil {
		return &exitError{2, err}
	}
	a.metrics = metrics.New()
	a.sinks = newTracedSinks(cfg, logger, sinkClient(a.tel))
	if err := a.openStore(); err != nil {
		return err
	}
	var client *seam.Client
	if cfg.SeamAPIKey != "" {
		if client, err = seam.New(seamClient(seamConfig(cfg, logger), a.metrics, a.tel)); err != nil {
			return &exitError{2, fmt.Errorf("SEAM_API_KEY: %w", err)}
		}
		a.seamSync = seamsync.New(seamsync.Config{Seam: client, Store: a.store, Keys: cfg.DataKeys, Logger: logger})
	}
	// Names: a quarter of Seam's rate for their fetches (ingest never
	// waits for them); without a key, locks' metadata from bodies only.
	nc := names.Config{Seam: client, Store: a.store, RPS: cfg.SeamRPS / 4, Logger: logger}
	if a.seamSync != nil {
		sy := a.seamSync
		nc.Workspace = func() string {
			if ws := sy.Workspace(); ws != nil {
				return ws.WorkspaceID
			}
			return ""
		}
	}
	a.names = names.New(nc)
	if a.worker, err = newJobClient(a.pool, a.store, cfg, a.sinks, a.seamSync, a.names, a.metrics, logger, a.tel); err != nil {
		return err
	}
	jobsPage, stopJobsPage, err := jobsUI(a.worker, logger)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, stopJobsPage)
	if a.seamSync != nil {
		a.seamSync.UseJobs(a.worker)
	}
	a.names.UseJobs(a.worker)
	a.ready = newReadiness(a.migr.Ready)
	a.metrics.RegisterState(a.store, 5*time.Second, logger)
	prepareMetrics(a.metrics, a.store, a.sinks, logger)
	a.newServers(verifier, jobsPage)
	return nil
}

// openDatabase makes the pools, which connect lazily, and the migrator.
func (a *App) openDatabase(ctx context.Context) error {
	cfg := a.cfg
	pcfg, err := postgres.PoolConfig(cfg.DatabaseURL)
	if err != nil {
		return &exitError{2, errors.New("DATABASE_URL: not a valid Postgres URL")}
	}
	pcfg.MaxConns = int32(cfg.DBMaxConns)
	tracePool(pcfg, a.tel)
	if a.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return err
	}
	migratePool := a.pool
	if cfg.MigrateDatabaseURL != "" {
		mcfg, err := postgres.PoolConfig(cfg.MigrateDatabaseURL)
		if err != nil {
			return &exitError{2, errors.New("CODEWATCH_MIGRATE_DATABASE_URL: not a valid Postgres URL")}
		}
		mcfg.MaxConns = 2
		if migratePool, err = pgxpool.NewWithConfig(ctx, mcfg); err != nil {
			return err
		}
		a.closers = append(a.closers, migratePool.Close)
	}
	if a.migr, err = migrations.New(migratePool, a.logger); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { a.migr.Close() })
	return nil
}

// newSinks lists where alerts go: the log always, and the webhook, Slack and
// the on-call sinks (oncall.go) when configured.
func newSinks(cfg *config.Config, logger *slog.Logger) []alert.Sink {
	return newTracedSinks(cfg, logger, &http.Client{Timeout: 10 * time.Second})
}

// newTracedSinks is newSinks sending with httpClient (sinkClient).
func newTracedSinks(cfg *config.Config, logger *slog.Logger, httpClient *http.Client) []alert.Sink {
	sinks := []alert.Sink{alert.LogSink{Logger: logger}}
	if cfg.AlertWebhookURL != "" {
		sinks = append(sinks, alert.WebhookSink{URL: cfg.AlertWebhookURL, Secret: cfg.AlertWebhookSecret, Client: httpClient})
	}
	if cfg.SlackWebhookURL != "" {
		sinks = append(sinks, alert.SlackSink{URL: cfg.SlackWebhookURL, Client: httpClient})
	}
	return append(sinks, onCallSinks(cfg, httpClient)...)
}

// openStore builds the store, which queues alert deliveries as River jobs.
func (a *App) openStore() error {
	cfg, m := a.cfg, a.metrics
	inserter, err := jobs.NewTracedInserter(a.pool, a.logger, a.tel.TracerProvider())
	if err != nil {
		return err
	}
	a.store = postgres.New(a.pool, inserter, postgres.Config{
		RemovalTimeout: cfg.RemovalTimeout,
		ReconcileAfter: cfg.ReconcileAfter,
		Sinks:          alert.SinkNames(a.sinks),
		Routes:         storeRoutes(cfg),
		Workers:        cfg.IngestWorkers,
		Keys:           cfg.DataKeys,
		// A quarter of the connections ingest leaves (2 by default): ops
		// readers in a loop cannot take the database from ingest.
		ReadConcurrency: max(1, (cfg.DBMaxConns-cfg.IngestWorkers)/4),
		Logger:          a.logger,
		Tracer:          a.tel.TracerProvider(),
		OnFlag: func(reason string) {
			m.Flagged.WithLabelValues(reason).Inc()
			if reason == lifecycle.ReasonOverdue {
				m.OverdueFlagged.Inc()
			}
		},
	})
	return nil
}

// newServers builds the public server (webhooks) and the ops server.
func (a *App) newServers(verifier *verify.Verifier, jobsPage http.Handler) {
	cfg, m, logger := a.cfg, a.metrics, a.logger
	public := handlers.NewPublicServer(&handlers.Public{
		Verifier: verifier, Store: a.store, Metrics: m, Logger: logger, IngestTimeout: 12 * time.Second,
		Available: a.ready.available, TrustedProxies: cfg.TrustedProxies,
		Budget: handlers.NewBudget(cfg.UnverifiedBudget, func(n int64) { m.UnverifiedBytes.Set(float64(n)) }),
	})
	a.pubSrv = &http.Server{Handler: traceHandler(public, a.tel, true), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	a.opsSrv = &http.Server{Handler: traceHandler(a.opsHandler(jobsPage), a.tel, false), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
}

// Start serves on both listeners at once and starts up in the background:
// until the database is reachable and migrated, both listeners answer
// /healthz 200, and /readyz, webhooks and /v1 503 with the reason.
func (a *App) Start(ctx context.Context) {
	a.errc = make(chan error, 2)
	go func() { a.errc <- a.pubSrv.Serve(a.pubLn) }()
	go func() { a.errc <- a.opsSrv.Serve(a.opsLn) }()
	a.logger.Info("codewatch listening; connecting to the database", "listen", a.pubLn.Addr().String(), "ops_listen", a.opsLn.Addr().String())

	bg := context.WithoutCancel(ctx)
	startCtx, cancelStart := context.WithCancel(ctx)
	a.cancelStart = cancelStart
	// Bodies stored in clear by a version before encryption are sealed in
	// the background once serving (sealClearBodies), and the Seam API key's
	// workspace is asked for until Seam answers; stopped at shutdown.
	sealCtx, stopSealing := context.WithCancel(bg)
	a.stopSealing = stopSealing
	a.startc = make(chan error, 1)
	go func() { a.startc <- a.startUp(startCtx, bg, sealCtx) }()
}

// startUp is start-up proper: migrate (or wait for the schema), then start
// ingest and background work.
func (a *App) startUp(ctx, bg, sealCtx context.Context) error {
	cfg, logger := a.cfg, a.logger
	if err := waitForDatabase(ctx, a.migr, !cfg.NoMigrate, logger, a.ready.waiting); err != nil {
		return err
	}
	a.store.Start()
	if err := retryStart(ctx, "background jobs", func() error { return a.worker.Start(bg) }, logger, a.ready.waiting); err != nil {
		return err
	}
	logger.Info("codewatch serving", "listen", a.pubLn.Addr().String(), "ops_listen", a.opsLn.Addr().String(),
		"secrets", len(cfg.WebhookSecrets), "ops_tokens", len(cfg.OpsTokens),
		"sinks", strings.Join(alert.SinkNames(a.sinks), ","), "removal_timeout", cfg.RemovalTimeout.String(),
		"data_keys", cfg.DataKeys)
	a.sealing.Go(func() { sealClearBodies(sealCtx, a.store, logger) })
	startSeam(bg, sealCtx, a.seamSync, a.worker, cfg, logger)
	// Ready once everything has started and said so.
	a.ready.start()
	return nil
}

// Wait returns when ctx is done (the signal to stop: nil), a listener fails
// or start-up fails (the error serve exits with).
func (a *App) Wait(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			a.logger.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
			return nil
		case err := <-a.errc:
			a.logger.Error("listener failed", "error", err)
			return err
		case err := <-a.startc:
			if err == nil {
				continue
			}
			if ctx.Err() == nil {
				return &exitError{1, err}
			}
			return nil
		}
	}
}

// Shutdown stops the app; cause is why (Wait's error). Readiness turns false
// at once; after the drain, listeners stop accepting and in-flight webhooks
// finish and commit; then background work stops. The whole of it is bounded
// by CODEWATCH_SHUTDOWN_TIMEOUT. It returns cause, or a listener's failure
// during the drain.
func (a *App) Shutdown(cause error) error {
	cfg, logger := a.cfg, a.logger
	a.cancelStart()
	a.ready.shutDown()
	if cfg.ShutdownDrain > 0 && cause == nil {
		// Load balancers see /readyz fail and stop routing here while
		// the listeners still answer whatever reaches them.
		logger.Info("draining", "for", cfg.ShutdownDrain.String())
		select {
		case <-time.After(cfg.ShutdownDrain):
		case cause = <-a.errc:
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.stop(ctx)
	}()
	select {
	case <-done:
		logger.Info("stopped")
	case <-ctx.Done():
		// A frozen database can hold a transaction past any deadline;
		// exit anyway: nothing unacknowledged is lost (Seam retries).
		logger.Error("shutdown timed out; exiting with work unfinished", "timeout", cfg.ShutdownTimeout.String())
	}
	cancel()
	a.stopSealing()
	a.close()
	// The spans of the last requests and jobs, exported before exiting.
	if err := a.tel.Shutdown(context.Background()); err != nil {
		logger.Warn("spans not all exported", "error", err)
	}
	if cause != nil && !errors.Is(cause, http.ErrServerClosed) {
		return cause
	}
	return nil
}

// stop stops the listeners, lets deletion requests record Seam's answer,
// stops the sealing pass, then ingest, River and the pool.
func (a *App) stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, srv := range []*http.Server{a.pubSrv, a.opsSrv} {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				a.logger.Warn("shutdown incomplete", "error", err)
				srv.Close()
			}
		})
	}
	wg.Wait()
	if a.seamSync != nil {
		// Deletion requests whose callers stopped waiting record
		// Seam's answer before the store closes.
		if err := a.seamSync.Drain(ctx); err != nil {
			a.logger.Warn("deletion requests still running at shutdown", "error", err)
		}
	}
	a.stopSealing()
	a.sealing.Wait()
	if a.ready.hasStarted() {
		a.store.Close()
		if err := a.worker.Stop(ctx); err != nil {
			// Jobs still running: cancel them; River retries them.
			cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
			_ = a.worker.StopAndCancel(cctx)
			ccancel()
		}
	}
	a.pool.Close()
}
