package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
)

// Outbox is what delivery needs of the store.
type Outbox interface {
	Delivery(ctx context.Context, alertID, sink string) (*lifecycle.AlertDelivery, error)
	WaitingOn(ctx context.Context, d *lifecycle.AlertDelivery) (*lifecycle.AlertDelivery, error)
	StartAttempt(ctx context.Context, alertID, sink string) error
	RecordFailure(ctx context.Context, alertID, sink, msg string, next time.Time) error
	FinishDelivery(ctx context.Context, end lifecycle.DeliveryEnd, complete func(context.Context, pgx.Tx) error) (nextJob int64, err error)
}

// Counters are the metrics delivery reports; any may be nil.
type Counters struct {
	Sent    func(sink, typ string)
	Failed  func(sink string)
	GivenUp func(sink string)
}

// Names gives an alert its code's and lock's names at delivery
// (names.Service): ForAlert may fetch names still due, for at most wait.
type Names interface {
	ForAlert(ctx context.Context, accessCodeID, deviceID, workspaceID string, wait time.Duration) (lifecycle.Names, error)
}

// NamesWait bounds how long a delivery waits for its code's names.
const NamesWait = 10 * time.Second

// WorkerConfig tunes delivery.
type WorkerConfig struct {
	Outbox Outbox
	Sinks  []Sink
	// Names, when set, names each alert's code and lock as it is
	// delivered (nil: alerts carry ids only).
	Names Names
	// SendTimeout bounds one send (default 10s).
	SendTimeout time.Duration
	// MaxAge is how long a failing delivery is retried, counted from the
	// alert's creation (CODEWATCH_ALERT_MAX_AGE, default 24h).
	MaxAge      time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RecordFor bounds the retries of recording a send (default a minute).
	RecordFor time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
	Counters  Counters
}

// recordFor bounds the retries of recording a delivery's end: well inside
// the 90 s after which River rescues a running job to another replica.
const recordFor = time.Minute

// Worker is the River worker that delivers one alert to one sink.
type Worker struct {
	river.WorkerDefaults[jobs.DeliverAlert]
	cfg   WorkerConfig
	sinks map[string]Sink
}

// NewWorker returns a delivery worker; register it with river.AddWorker.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 2 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RecordFor <= 0 {
		cfg.RecordFor = recordFor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, sinks: map[string]Sink{}}
	for _, s := range cfg.Sinks {
		w.sinks[s.Name()] = s
	}
	return w
}

// Timeout implements river.Worker: a send, then the record of it (finish
// records past the job's context, for up to recordFor).
func (w *Worker) Timeout(*river.Job[jobs.DeliverAlert]) time.Duration {
	return w.cfg.SendTimeout + 20*time.Second
}

// NextRetry implements river.Worker: exponential backoff from BackoffBase to
// BackoffMax after the attempt, with ±20% jitter fixed by the alert and the
// attempt. Work records the time it computed a moment earlier, so River's
// retry comes at most that moment after the next_attempt_at shown.
func (w *Worker) NextRetry(job *river.Job[jobs.DeliverAlert]) time.Time {
	return w.retryAt(job)
}

// retryAt counts the backoff from the attempt's end (now), not its start:
// an attempt can outlast the backoff (a sink that hangs until SendTimeout,
// a record retried for RecordFor), and River replaces a retry time already
// past with its default policy, attempt⁴ seconds (hours after ten attempts).
func (w *Worker) retryAt(job *river.Job[jobs.DeliverAlert]) time.Time {
	at := w.cfg.Now()
	if job.AttemptedAt != nil && job.AttemptedAt.After(at) {
		at = *job.AttemptedAt
	}
	return at.Add(Backoff(w.cfg.BackoffBase, w.cfg.BackoffMax, job.Attempt, job.Args.AlertID))
}

// Backoff doubles from base up to max with attempts, with ±20% jitter drawn
// from key, so that replicas retrying one sink spread out.
func Backoff(base, max time.Duration, attempt int, key string) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", key, attempt)
	jitter := 0.8 + 0.4*float64(h.Sum32()%1000)/1000
	return time.Duration(float64(d) * jitter)
}

// Work delivers the job's alert to its sink, unless an earlier alert of the
// same code is still on its way there (then it waits), the alert is gone
// (pruned) or already delivered.
func (w *Worker) Work(ctx context.Context, job *river.Job[jobs.DeliverAlert]) error {
	a := job.Args
	d, err := w.cfg.Outbox.Delivery(ctx, a.AlertID, a.Sink)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if d.Status != lifecycle.DeliveryPending {
		return nil
	}
	sink, ok := w.sinks[a.Sink]
	if !ok {
		return w.giveUp(ctx, job, d, fmt.Sprintf("sink %q is not configured any more", a.Sink))
	}
	ahead, err := w.cfg.Outbox.WaitingOn(ctx, d)
	if err != nil {
		return err
	}
	if ahead != nil {
		// Order: this waits until the earlier alert is sent or given up.
		// That one wakes this job when it ends; the snooze is the fallback.
		wait := time.Second
		if ahead.NextAttemptAt != nil {
			wait = ahead.NextAttemptAt.Sub(w.cfg.Now()) + 500*time.Millisecond
		}
		return river.JobSnooze(min(max(wait, time.Second), time.Minute))
	}
	var p lifecycle.AlertPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return w.giveUp(ctx, job, d, "stored payload unreadable: "+err.Error())
	}
	raw := w.named(ctx, &p, d.Payload)
	if err := w.cfg.Outbox.StartAttempt(ctx, a.AlertID, a.Sink); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	err = sink.Deliver(sctx, &p, raw)
	cancel()
	if err == nil {
		if w.cfg.Counters.Sent != nil {
			w.cfg.Counters.Sent(a.Sink, p.Type)
		}
		if err := w.finish(ctx, job, lifecycle.DeliveryEnd{AlertID: a.AlertID, Sink: a.Sink, Status: lifecycle.DeliverySent}); err != nil {
			return err
		}
		// One line per delivery, in the job's span (its trace_id and
		// span_id, with tracing on, lead to the webhook that raised it).
		w.cfg.Logger.InfoContext(ctx, "alert delivered", "sink", a.Sink, "access_code_id", d.AccessCodeID,
			"alert_id", a.AlertID, "type", d.Type, "attempt", d.Attempts+1)
		return nil
	}
	if w.cfg.Counters.Failed != nil {
		w.cfg.Counters.Failed(a.Sink)
	}
	if perm := (*PermanentError)(nil); errors.As(err, &perm) {
		// The sink refused the alert itself (PagerDuty's 400): sending it
		// again cannot help, and the code's later alerts wait behind it.
		return w.giveUp(ctx, job, d, err.Error())
	}
	next := w.retryAt(job)
	if next.After(d.CreatedAt.Add(w.cfg.MaxAge)) {
		return w.giveUp(ctx, job, d, err.Error())
	}
	w.cfg.Logger.WarnContext(ctx, "alert delivery failed; will retry", "alert_id", a.AlertID, "sink", a.Sink,
		"attempt", d.Attempts+1, "retry_at", next.UTC().Format(time.RFC3339), "error", err)
	if rerr := w.cfg.Outbox.RecordFailure(ctx, a.AlertID, a.Sink, err.Error(), next); rerr != nil {
		w.cfg.Logger.WarnContext(ctx, "cannot record failed delivery", "alert_id", a.AlertID, "error", rerr)
	}
	return err
}

// named sets the alert's names as they are now (the code and its lock may
// have been named, or renamed, since the alert was raised) and returns the
// payload to send: the stored one when there is no name to add. A name
// that cannot be read is no reason to hold the alert back.
func (w *Worker) named(ctx context.Context, p *lifecycle.AlertPayload, stored []byte) []byte {
	if w.cfg.Names == nil {
		return stored
	}
	n, err := w.cfg.Names.ForAlert(ctx, p.AccessCodeID, p.DeviceID, p.WorkspaceID, NamesWait)
	if err != nil {
		if lifecycle.ErrorCode(err) != lifecycle.ENotFound {
			w.cfg.Logger.Warn("alert sent without names", "alert_id", p.AlertID, "error", err)
		}
		return stored
	}
	if n.AccessCodeName == nil && n.DeviceName == nil && n.LocationName == nil &&
		p.AccessCodeName == nil && p.DeviceName == nil && p.LocationName == nil {
		return stored
	}
	n.Apply(p)
	raw, err := json.Marshal(p)
	if err != nil {
		return stored
	}
	return raw
}

func (w *Worker) giveUp(ctx context.Context, job *river.Job[jobs.DeliverAlert], d *lifecycle.AlertDelivery, why string) error {
	w.cfg.Logger.ErrorContext(ctx, "alert delivery given up", "alert_id", d.AlertID, "sink", d.Sink,
		"access_code_id", d.AccessCodeID, "type", d.Type, "attempts", d.Attempts, "created_at", d.CreatedAt, "reason", why)
	if w.cfg.Counters.GivenUp != nil {
		w.cfg.Counters.GivenUp(d.Sink)
	}
	return w.finish(ctx, job, lifecycle.DeliveryEnd{AlertID: d.AlertID, Sink: d.Sink,
		Status: lifecycle.DeliveryGivenUp, Error: why})
}

// finish records the end and completes the job in one transaction, then wakes
// the code's next delivery to the same sink. A send that happened must be
// recorded, or the job runs again and sends again: when the database does
// not answer (down, frozen), the record is retried for up to a minute,
// inside the time after which River would hand the job to another replica.
func (w *Worker) finish(ctx context.Context, job *river.Job[jobs.DeliverAlert], end lifecycle.DeliveryEnd) error {
	// The send happened: record it even if the job's context ends now.
	ctx = context.WithoutCancel(ctx)
	deadline := time.Now().Add(w.cfg.RecordFor)
	var next int64
	var err error
	for wait := 250 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		next, err = w.cfg.Outbox.FinishDelivery(ctx, end, func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
		if err == nil || time.Now().Add(wait).After(deadline) {
			break
		}
		w.cfg.Logger.WarnContext(ctx, "alert delivery not recorded yet; retrying", "alert_id", end.AlertID, "sink", end.Sink,
			"retry_in", wait.String(), "error", err)
		time.Sleep(wait)
	}
	if err != nil {
		// Sent but not recorded: the job is retried and sends again with
		// the same alert_id, which receivers drop.
		w.cfg.Logger.WarnContext(ctx, "alert delivery not recorded", "alert_id", end.AlertID, "sink", end.Sink, "error", err)
		return err
	}
	if next != 0 {
		if c, err := river.ClientFromContextSafely[pgx.Tx](ctx); err == nil {
			if _, err := c.JobRetry(ctx, next); err != nil {
				w.cfg.Logger.DebugContext(ctx, "cannot wake next delivery", "job_id", next, "error", err)
			}
		}
	}
	return nil
}
