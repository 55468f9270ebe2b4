package jobs

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/lifecycle"
)

// MaintenanceStore is what the maintenance jobs ask of the store.
type MaintenanceStore interface {
	Sweep(ctx context.Context, repeat time.Duration) (lifecycle.SweepResult, error)
	Prune(ctx context.Context, retention, budget time.Duration, deleted func(table string, n int64)) (more bool, err error)
	RequeueAlerts(ctx context.Context) (int, error)
	CompactCounts(ctx context.Context) (int64, error)
}

// Maintenance is the periodic work: the overdue sweep with reminders,
// retention, the outbox check, and folding the summary's counts.
type Maintenance struct {
	Store MaintenanceStore
	// SweepInterval is how often the sweep runs.
	SweepInterval time.Duration
	// Repeat is the reminder interval (0: no reminders).
	Repeat time.Duration
	// Retention is how long finished codes are kept (0: keep all).
	Retention time.Duration
	// CompactInterval is how often the summary's count changes are folded
	// (default DefaultCompactInterval).
	CompactInterval time.Duration
	Logger          *slog.Logger
	// OnSweep and OnPrune report to metrics; either may be nil.
	OnSweep func(lifecycle.SweepResult, time.Duration)
	OnPrune func(table string, n int64)
}

// Register adds the maintenance workers to w.
func (m *Maintenance) Register(w *river.Workers) {
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	river.AddWorker(w, &maintenanceWorker[Sweep]{work: m.sweep})
	river.AddWorker(w, &maintenanceWorker[Prune]{work: m.prune})
	river.AddWorker(w, &maintenanceWorker[RequeueAlerts]{work: m.requeueAlerts})
	river.AddWorker(w, &maintenanceWorker[CompactCounts]{work: m.compactCounts})
}

// maintenanceWorker works one maintenance job kind: the job carries no
// arguments, so work needs only the context.
type maintenanceWorker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	work func(context.Context) error
}

func (w *maintenanceWorker[T]) Work(ctx context.Context, _ *river.Job[T]) error {
	return w.work(ctx)
}

// DefaultCompactInterval: between two folds, the summary sums the count
// changes of this long (about one per change of a code's state or trouble),
// and River keeps one completed job per fold for a day.
const DefaultCompactInterval = 2 * time.Second

// Periodic returns the schedule, run by the elected leader.
func (m *Maintenance) Periodic() []*river.PeriodicJob {
	every := func(d time.Duration, args river.JobArgs, id string) *river.PeriodicJob {
		return river.NewPeriodicJob(river.PeriodicInterval(d),
			func() (river.JobArgs, *river.InsertOpts) { return args, nil },
			&river.PeriodicJobOpts{ID: id, RunOnStart: true})
	}
	out := []*river.PeriodicJob{
		every(m.SweepInterval, Sweep{}, "sweep"),
		every(time.Minute, RequeueAlerts{}, "requeue_alerts"),
		every(cmp.Or(m.CompactInterval, DefaultCompactInterval), CompactCounts{}, "compact_counts"),
	}
	if m.Retention > 0 {
		out = append(out, every(time.Minute, Prune{}, "retention"))
	}
	return out
}

func (m *Maintenance) sweep(ctx context.Context) error {
	start := time.Now()
	res, err := m.Store.Sweep(ctx, m.Repeat)
	if err != nil {
		return err
	}
	if m.OnSweep != nil {
		m.OnSweep(res, time.Since(start))
	}
	if res.Overdue > 0 || res.Reminders > 0 {
		m.Logger.InfoContext(ctx, "sweep", slog.Int("overdue", res.Overdue), slog.Int("reminders", res.Reminders))
	}
	return nil
}

// pruneBudget keeps one retention run well inside the job timeout; what is
// left waits a minute for the next run.
const pruneBudget = 30 * time.Second

func (m *Maintenance) prune(ctx context.Context) error {
	_, err := m.Store.Prune(ctx, m.Retention, pruneBudget, m.OnPrune)
	return err
}

func (m *Maintenance) requeueAlerts(ctx context.Context) error {
	n, err := m.Store.RequeueAlerts(ctx)
	if n > 0 {
		m.Logger.InfoContext(ctx, "alert deliveries queued again", "count", n)
	}
	return err
}

func (m *Maintenance) compactCounts(ctx context.Context) error {
	_, err := m.Store.CompactCounts(ctx)
	return err
}
