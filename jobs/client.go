package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"

	"github.com/codewatch/codewatch/internal/quietlog"
	"github.com/codewatch/codewatch/lifecycle"
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
	// Queues, when set, limits the client to these queues (a command that
	// works only Seam's jobs); all of them otherwise.
	Queues []string
	// OnError is told of every failed attempt (a metric).
	OnError func(kind string)
	// Tracer, when set (tracing on), makes each job worked a span linked
	// to the span that inserted it (trace.go).
	Tracer trace.TracerProvider
	Logger *slog.Logger
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
	queues := map[string]river.QueueConfig{
		QueueAlerts:      {MaxWorkers: cfg.AlertWorkers},
		QueueMaintenance: {MaxWorkers: 2},
		QueueSeam:        {MaxWorkers: cfg.SeamWorkers},
		QueueNames:       {MaxWorkers: 2},
	}
	if cfg.Queues != nil {
		only := map[string]river.QueueConfig{}
		for _, q := range cfg.Queues {
			only[q] = queues[q]
		}
		queues = only
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            queues,
		Workers:           cfg.Workers,
		PeriodicJobs:      cfg.Periodic,
		PollOnly:          true,
		FetchPollInterval: cfg.FetchPollInterval,
		FetchCooldown:     min(100*time.Millisecond, cfg.FetchPollInterval),
		// A job runs for at most a minute (workers set shorter timeouts);
		// one still "running" 90 s on belongs to a process that died and is
		// rescued (River's rescuer looks every 30 s): the only way an alert
		// can be sent twice.
		JobTimeout:           time.Minute,
		RescueStuckJobsAfter: 90 * time.Second,
		ErrorHandler:         errorCounter{count: cfg.OnError, logger: cfg.Logger},
		Middleware:           append(middleware(cfg.Tracer, true), &cleanErrors{}),
		Logger:               quietlog.Warn(cfg.Logger),
	})
}

// NewInserter returns a River client that only inserts jobs: what the store
// needs to queue work inside its transactions.
func NewInserter(pool *pgxpool.Pool, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	return NewTracedInserter(pool, logger, nil)
}

// NewTracedInserter is NewInserter that, given a tracer provider (tracing
// on), names in each job's metadata the span that inserted it.
func NewTracedInserter(pool *pgxpool.Pool, logger *slog.Logger, tp trace.TracerProvider) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quietlog.Warn(logger), Middleware: middleware(tp, false)})
}

// maxJobError bounds the error River records for a failed attempt.
const maxJobError = 4096

// cleanErrors makes every failed attempt's error text storable. River
// records it in the job's errors (jsonb), which refuses a NUL, and a job's
// error may carry anything from outside (a sink's answer, Seam's message):
// a refused record left the job running until rescued, and failed the
// batch of job updates it was sent with.
type cleanErrors struct{ river.MiddlewareDefaults }

func (*cleanErrors) Work(ctx context.Context, _ *rivertype.JobRow, doInner func(context.Context) error) error {
	err := doInner(ctx)
	if err == nil {
		return nil
	}
	if msg := err.Error(); lifecycle.CleanText(msg, maxJobError) != msg {
		return &cleanError{msg: lifecycle.CleanText(msg, maxJobError), err: err}
	}
	return err
}

// cleanError is err with storable text; River still finds a snooze or a
// cancel through Unwrap.
type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }

// errorCounter counts and logs failed attempts; River still retries them.
// Alert deliveries log their own failures, with the sink's answer.
type errorCounter struct {
	count  func(kind string)
	logger *slog.Logger
}

func (e errorCounter) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	e.record(ctx, job, "error", err.Error())
	return nil
}

func (e errorCounter) HandlePanic(ctx context.Context, job *rivertype.JobRow, v any, trace string) *river.ErrorHandlerResult {
	e.record(ctx, job, "panic", fmt.Sprint(v))
	return nil
}

func (e errorCounter) record(ctx context.Context, job *rivertype.JobRow, how, msg string) {
	if e.count != nil {
		e.count(job.Kind)
	}
	if e.logger != nil && job.Kind != (DeliverAlert{}).Kind() {
		e.logger.WarnContext(ctx, "job failed", "kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt,
			"how", how, "error", msg)
	}
}
