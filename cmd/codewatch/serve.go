package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/migrations"
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

// devState is what a development `serve` shares with `send` and the user:
// kept in the data directory so it survives restarts.
type devState struct {
	WebhookSecret string `json:"webhook_secret"`
	OpsToken      string `json:"ops_token"`
	WebhookURL    string `json:"webhook_url"`
	OpsURL        string `json:"ops_url"`
}

func devStatePath(dataDir string) string { return filepath.Join(dataDir, "dev.json") }

func readDevState(dataDir string) (*devState, error) {
	b, err := os.ReadFile(devStatePath(dataDir))
	if err != nil {
		return nil, err
	}
	var s devState
	return &s, json.Unmarshal(b, &s)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func localURL(listen, path string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + path
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return &exitError{2, err}
	}
	logger := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if getenv("GOGC") == "" && getenv("GOMEMLIMIT") == "" {
		// Ingest allocates briefly per event over a heap of a few MiB; the
		// default GOGC collects dozens of times a second. 200 halves that,
		// and a soft limit keeps the heap from growing past what a burst
		// needs (make bench reports GC cycles and peak RSS).
		debug.SetGCPercent(200)
		debug.SetMemoryLimit(40 << 20)
	}

	// Development mode: no DATABASE_URL means a local Postgres we start, and
	// generated credentials kept beside it.
	var devDB *localpg.Server
	if cfg.DatabaseURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("CODEWATCH_DATA_DIR: %w", err)
		}
		logger.Info("DATABASE_URL is unset: starting a local Postgres", "dir", filepath.Join(cfg.DataDir, "pg"))
		devDB, err = localpg.Start(ctx, filepath.Join(cfg.DataDir, "pg"), localpg.Options{})
		if err != nil {
			return fmt.Errorf("start local Postgres: %w", err)
		}
		cfg.DatabaseURL = devDB.URL("codewatch")
		st, _ := readDevState(cfg.DataDir)
		if st == nil {
			st = &devState{}
		}
		if st.WebhookSecret == "" {
			st.WebhookSecret = verify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte(randomToken(18))[:24])
		}
		if st.OpsToken == "" {
			st.OpsToken = randomToken(24)
		}
		if len(cfg.WebhookSecrets) == 0 {
			cfg.WebhookSecrets = []string{st.WebhookSecret}
		} else {
			st.WebhookSecret = cfg.WebhookSecrets[0]
		}
		if len(cfg.OpsTokens) == 0 {
			cfg.OpsTokens = []config.Token{{Name: "dev", Value: st.OpsToken}}
		} else {
			st.OpsToken = cfg.OpsTokens[0].Value
		}
		st.WebhookURL = localURL(cfg.Listen, "/webhooks/seam")
		st.OpsURL = localURL(cfg.OpsListen, "")
		b, _ := json.MarshalIndent(st, "", "  ")
		if err := os.WriteFile(devStatePath(cfg.DataDir), b, 0o600); err != nil {
			return err
		}
		defer func() {
			if err := devDB.Stop("fast"); err != nil {
				logger.Warn("stop local Postgres", "error", err)
			}
		}()
		fmt.Fprintf(stdout, `
codewatch (development mode: local Postgres in %s)
  webhook URL:     %s
  webhook secret:  %s
  ops API:         %s/v1/summary   (Authorization: Bearer %s)
  status page:     %s/
  try:             go run ./cmd/codewatch send access_code.deleted --access-code-id %s

`, filepath.Join(cfg.DataDir, "pg"), st.WebhookURL, st.WebhookSecret, st.OpsURL, st.OpsToken, st.OpsURL, exampleID())
	}
	if len(cfg.WebhookSecrets) == 0 {
		return &exitError{2, errors.New("SEAM_WEBHOOK_SECRET: required (the whsec_... secret of your Seam webhook endpoint)")}
	}
	if len(cfg.OpsTokens) == 0 {
		return &exitError{2, errors.New("CODEWATCH_OPS_TOKEN: required (a bearer token of at least 16 characters for the ops API)")}
	}

	verifier, err := verify.New(cfg.WebhookSecrets, nil)
	if err != nil {
		return &exitError{2, fmt.Errorf("SEAM_WEBHOOK_SECRET: %w", err)}
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return &exitError{2, errors.New("DATABASE_URL: not a valid Postgres URL")}
	}
	pcfg.MaxConns = int32(cfg.DBMaxConns)
	lifecycle.ConfigurePool(pcfg)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	if !cfg.NoMigrate {
		if err := migrateWhenReachable(ctx, pool, logger); err != nil {
			return err
		}
	}

	m := metrics.New()
	var sinks []alert.Sink
	sinks = append(sinks, alert.LogSink{Logger: logger})
	httpClient := &http.Client{Timeout: 10 * time.Second}
	if cfg.AlertWebhookURL != "" {
		sinks = append(sinks, alert.WebhookSink{URL: cfg.AlertWebhookURL, Secret: cfg.AlertWebhookSecret, Client: httpClient})
	}
	if cfg.SlackWebhookURL != "" {
		sinks = append(sinks, alert.SlackSink{URL: cfg.SlackWebhookURL, Client: httpClient})
	}
	store := lifecycle.NewStore(pool, lifecycle.Config{
		RemovalTimeout: cfg.RemovalTimeout,
		Sinks:          alert.SinkNames(sinks),
		Workers:        cfg.IngestWorkers,
		Logger:         logger,
	})
	store.Start()
	m.RegisterState(store, 5*time.Second, logger)

	var shuttingDown atomic.Bool
	migr, err := migrations.New(pool, nil)
	if err != nil {
		return err
	}
	defer migr.Close()
	ready := func(ctx context.Context) error {
		if shuttingDown.Load() {
			return errors.New("shutting down")
		}
		return migr.Ready(ctx)
	}

	toks := make([]handlers.Token, len(cfg.OpsTokens))
	for i, t := range cfg.OpsTokens {
		toks[i] = handlers.Token{Name: t.Name, Value: t.Value}
	}
	public := handlers.NewPublicServer(&handlers.Public{
		Verifier: verifier, Store: store, Metrics: m, Logger: logger, IngestTimeout: 12 * time.Second,
	})
	ops := handlers.NewOpsServer(&handlers.Ops{
		Store: store, Tokens: toks, Metrics: m, Logger: logger, Ready: ready,
	})

	pubLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("CODEWATCH_LISTEN: %w", err)
	}
	opsLn, err := net.Listen("tcp", cfg.OpsListen)
	if err != nil {
		pubLn.Close()
		return fmt.Errorf("CODEWATCH_OPS_LISTEN: %w", err)
	}
	pubSrv := &http.Server{Handler: public, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	opsSrv := &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}

	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	dispatcher := alert.NewDispatcher(pool, alert.Config{Sinks: sinks, Logger: logger, Metrics: m})
	bg.Go(func() { dispatcher.Run(bgCtx) })
	bg.Go(func() {
		store.RunSweeper(bgCtx, cfg.SweepInterval, cfg.AlertRepeat, func(r lifecycle.SweepResult, d time.Duration) {
			m.SweepDuration.Observe(d.Seconds())
			m.OverdueFlagged.Add(float64(r.Overdue))
		})
	})
	if cfg.Retention > 0 {
		bg.Go(func() {
			store.RunRetention(bgCtx, cfg.Retention, time.Minute, func(t string, n int64) { m.RetentionDeleted.WithLabelValues(t).Add(float64(n)) })
		})
	}

	errc := make(chan error, 2)
	go func() { errc <- pubSrv.Serve(pubLn) }()
	go func() { errc <- opsSrv.Serve(opsLn) }()
	logger.Info("codewatch serving", "listen", pubLn.Addr().String(), "ops_listen", opsLn.Addr().String(),
		"secrets", len(cfg.WebhookSecrets), "ops_tokens", len(cfg.OpsTokens), "sinks", strings.Join(alert.SinkNames(sinks), ","),
		"removal_timeout", cfg.RemovalTimeout.String())

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case serveErr = <-errc:
		logger.Error("listener failed", "error", serveErr)
	}

	// Readiness turns false at once; listeners stop accepting; in-flight
	// webhooks finish and commit; then background work and the pool stop.
	shuttingDown.Store(true)
	if cfg.ShutdownDrain > 0 && serveErr == nil {
		// Load balancers see /readyz fail and stop routing here while
		// the listeners still answer whatever reaches them.
		logger.Info("draining", "for", cfg.ShutdownDrain.String())
		select {
		case <-time.After(cfg.ShutdownDrain):
		case serveErr = <-errc:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
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
	store.Close()
	stopBG()
	bg.Wait()
	logger.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// migrateWhenReachable applies migrations, waiting for the database to come
// up (a replica may start before its database).
func migrateWhenReachable(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	delay := 500 * time.Millisecond
	for {
		err := func() error {
			m, err := migrations.New(pool, logger)
			if err != nil {
				return err
			}
			defer m.Close()
			res, err := m.Up(ctx)
			for _, r := range res {
				logger.Info("migration applied", "version", r.Source.Version, "duration", r.Duration.String())
			}
			return err
		}()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("cannot migrate yet; retrying", "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
}

func exampleID() string { return "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e" }
