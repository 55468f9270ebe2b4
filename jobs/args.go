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
	// QueueNames fetches names from Seam's API (package names), on its
	// own few workers so that a backlog of names never holds up a
	// deletion's jobs on QueueSeam.
	QueueNames = "names"
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

// maintenanceJob gives a periodic maintenance job (embedded, it adds no
// field: the job's arguments stay {}) its insert options: the maintenance
// queue, three attempts, unique while queued.
type maintenanceJob struct{}

// InsertOpts implements river.JobArgsWithInsertOpts.
func (maintenanceJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}

// Sweep flags overdue deletions and sends reminders.
type Sweep struct{ maintenanceJob }

// Kind implements river.JobArgs.
func (Sweep) Kind() string { return "sweep" }

// Prune removes what retention no longer keeps.
type Prune struct{ maintenanceJob }

// Kind implements river.JobArgs.
func (Prune) Kind() string { return "retention" }

// CompactCounts folds the summary's count changes (postgres.CompactCounts).
type CompactCounts struct{ maintenanceJob }

// Kind implements river.JobArgs.
func (CompactCounts) Kind() string { return "compact_counts" }

// RequeueAlerts makes sure every pending delivery has a job: after an
// upgrade from the outbox without River, and as a safety net.
type RequeueAlerts struct{ maintenanceJob }

// Kind implements river.JobArgs.
func (RequeueAlerts) Kind() string { return "requeue_alerts" }

// DeliveryParams returns the insert parameters of the given delivery jobs.
func DeliveryParams(ds []DeliverAlert) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(ds))
	for i, d := range ds {
		out[i] = river.InsertManyParams{Args: d}
	}
	return out
}

// FollowAttempt polls the action attempt of a deletion codewatch requested
// until it ends. Inserted in the transaction that records the request; unique
// by attempt, so a request recorded twice is followed once.
type FollowAttempt struct {
	AccessCodeID    string `json:"access_code_id"`
	ActionAttemptID string `json:"action_attempt_id"`
}

// Kind implements river.JobArgs.
func (FollowAttempt) Kind() string { return "follow_action_attempt" }

// InsertOpts implements river.JobArgsWithInsertOpts. The job snoozes between
// polls and stops by itself; attempts count only failed calls.
func (FollowAttempt) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSeam, MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Reconcile looks one code up in Seam's API. Unique per code while queued or
// running, so replicas (and `codewatch reconcile`) never poll the same code
// twice at once.
type Reconcile struct {
	AccessCodeID string `json:"access_code_id"`
}

// Kind implements river.JobArgs.
func (Reconcile) Kind() string { return "reconcile" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (Reconcile) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSeam, MaxAttempts: 5, UniqueOpts: whileQueued}
}

// ReconcileScan queues a Reconcile for every code whose lookup is due.
type ReconcileScan struct{}

// Kind implements river.JobArgs.
func (ReconcileScan) Kind() string { return "reconcile_scan" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReconcileScan) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}

// Backfill reads Seam's events/list for a time range and stores what the
// webhooks missed: serve's start-up backfill. Unique while queued, so
// replicas starting together backfill once.
type Backfill struct {
	From int64 `json:"from_unix"`
	To   int64 `json:"to_unix"`
}

// Kind implements river.JobArgs.
func (Backfill) Kind() string { return "backfill" }

// InsertOpts implements river.JobArgsWithInsertOpts. Unique by kind alone:
// two replicas starting at different instants compute different ranges.
func (Backfill) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSeam, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByState: whileQueued.ByState}}
}

// All lists one value of every kind of job codewatch inserts: the job
// metrics are made for each kind at start-up, and a test holds every
// kind's arguments to ids and times (River's job UI shows them).
func All() []river.JobArgs {
	return []river.JobArgs{DeliverAlert{}, Sweep{}, Prune{}, CompactCounts{}, RequeueAlerts{},
		FollowAttempt{}, Reconcile{}, ReconcileScan{}, Backfill{}}
}

// Kinds are the kinds of All.
func Kinds() []string {
	all := All()
	out := make([]string, len(all))
	for i, a := range all {
		out[i] = a.Kind()
	}
	return out
}
