// Package jobs is codewatch's background work on River: the kinds of job, the
// queues they run on, the periodic schedule, and the River client that works
// them. Jobs are inserted in the same transaction as the change that causes
// them, so work exists if and only if its cause does.
package jobs

import (
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queues.
const (
	// QueueAlerts delivers alerts to their sinks.
	QueueAlerts = "alerts"
	// QueueMaintenance runs the sweeper, reminders, retention and checks.
	QueueMaintenance = "maintenance"
	// QueueSeam talks to Seam's API (its own rate limits apply).
	QueueSeam = "seam"
)

// DeliverAlert sends one alert to one sink. Unique by its arguments, so an
// alert reaches a sink through one job, whichever replica inserts it again.
type DeliverAlert struct {
	AlertID string `json:"alert_id"`
	Sink    string `json:"sink"`
}

// Kind implements river.JobArgs.
func (DeliverAlert) Kind() string { return "deliver_alert" }

// InsertOpts implements river.JobArgsWithInsertOpts. Attempts are not the
// limit: a delivery gives itself up once its alert is older than
// CODEWATCH_ALERT_MAX_AGE, so MaxAttempts is only a backstop.
func (DeliverAlert) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAlerts, MaxAttempts: 100_000,
		UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// whileQueued makes a periodic job unique while one is waiting or running,
// and no longer: the next period inserts a fresh one. (River's default states
// include completed, which would block the next run for a day.)
var whileQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable,
}}

// Sweep flags overdue deletions and sends reminders.
type Sweep struct{}

// Kind implements river.JobArgs.
func (Sweep) Kind() string { return "sweep" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (Sweep) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}

// Prune removes what retention no longer keeps.
type Prune struct{}

// Kind implements river.JobArgs.
func (Prune) Kind() string { return "retention" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (Prune) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}

// RequeueAlerts makes sure every pending delivery has a job: after an
// upgrade from the outbox without River, and as a safety net.
type RequeueAlerts struct{}

// Kind implements river.JobArgs.
func (RequeueAlerts) Kind() string { return "requeue_alerts" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RequeueAlerts) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}

// DeliveryJobs returns the insert parameters of one delivery job per sink of
// each alert.
func DeliveryJobs(alertIDs []string, sinks []string) []river.InsertManyParams {
	out := make([]river.InsertManyParams, 0, len(alertIDs)*len(sinks))
	for _, a := range alertIDs {
		for _, s := range sinks {
			out = append(out, river.InsertManyParams{Args: DeliverAlert{AlertID: a, Sink: s}})
		}
	}
	return out
}

// DeliveryParams returns the insert parameters of the given delivery jobs.
func DeliveryParams(ds []DeliverAlert) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(ds))
	for i, d := range ds {
		out[i] = river.InsertManyParams{Args: d}
	}
	return out
}
