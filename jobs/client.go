package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/codewatch/codewatch/internal/quietlog"
)

// Config configures the River client that works codewatch's jobs.
type Config struct {
	// Workers are the registered workers (see Maintenance.Register and
	// alert.Worker).
	Workers *river.Workers
	// Periodic jobs, run by the elected leader only.
	Periodic []*river.PeriodicJob
	// AlertWorkers bounds concurrent alert deliveries per process.
	AlertWorkers int
	// SeamWorkers bounds concurrent Seam API jobs per process.
	SeamWorkers int
	// FetchPollInterval is how often each queue looks for work. codewatch
	// runs River in poll-only mode (no LISTEN), so that it works through
	// PgBouncer in transaction pooling mode; this bounds how long a new job
	// waits.
	FetchPollInterval time.Duration
	// OnError is told of every failed attempt (a metric).
	OnError func(kind string)
	Logger  *slog.Logger
}

// NewClient returns the River client that works jobs. Call Start to begin and
// Stop to drain.
func NewClient(pool *pgxpool.Pool, cfg Config) (*river.Client[pgx.Tx], error) {
	if cfg.AlertWorkers <= 0 {
		cfg.AlertWorkers = 10
	}
	if cfg.SeamWorkers <= 0 {
		cfg.SeamWorkers = 5
	}
	if cfg.FetchPollInterval <= 0 {
		cfg.FetchPollInterval = 250 * time.Millisecond
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			QueueAlerts:      {MaxWorkers: cfg.AlertWorkers},
			QueueMaintenance: {MaxWorkers: 2},
			QueueSeam:        {MaxWorkers: cfg.SeamWorkers},
		},
		Workers:           cfg.Workers,
		PeriodicJobs:      cfg.Periodic,
		PollOnly:          true,
		FetchPollInterval: cfg.FetchPollInterval,
		FetchCooldown:     min(100*time.Millisecond, cfg.FetchPollInterval),
		// A job runs for at most a minute (workers set shorter timeouts);
		// one still "running" five minutes on belongs to a process that died
		// and is rescued, which is the only way an alert can be sent twice.
		JobTimeout:           time.Minute,
		RescueStuckJobsAfter: 5 * time.Minute,
		ErrorHandler:         errorCounter{cfg.OnError},
		Logger:               quietlog.Warn(cfg.Logger),
	})
}

// NewInserter returns a River client that only inserts jobs: what the store
// needs to queue work inside its transactions.
func NewInserter(pool *pgxpool.Pool, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quietlog.Warn(logger)})
}

// errorCounter counts failed attempts by kind; River still retries them.
type errorCounter struct{ count func(kind string) }

func (e errorCounter) HandleError(_ context.Context, job *rivertype.JobRow, _ error) *river.ErrorHandlerResult {
	if e.count != nil {
		e.count(job.Kind)
	}
	return nil
}

func (e errorCounter) HandlePanic(_ context.Context, job *rivertype.JobRow, _ any, _ string) *river.ErrorHandlerResult {
	if e.count != nil {
		e.count(job.Kind)
	}
	return nil
}
