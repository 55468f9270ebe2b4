package jobs

import "github.com/riverqueue/river"

// Names (issue 22): what people call codes and locks, fetched from Seam's
// API by package names.

// Job priorities on QueueNames: a code or lock seen for the first time comes
// before the daily refresh's backlog.
const (
	PriorityFirstSight = 1
	PriorityRefresh    = 4
)

// FetchCodeName reads a code's name (access_codes/get). Unique while
// queued, so the scan and the refresh never queue one code twice.
type FetchCodeName struct {
	AccessCodeID string `json:"access_code_id"`
}

// Kind implements river.JobArgs.
func (FetchCodeName) Kind() string { return "fetch_access_code_name" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (FetchCodeName) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNames, MaxAttempts: 5, UniqueOpts: whileQueued}
}

// FetchDeviceNames reads a lock's names (devices/get), or without Seam's
// API its custom metadata from webhook bodies.
type FetchDeviceNames struct {
	DeviceID string `json:"device_id"`
}

// Kind implements river.JobArgs.
func (FetchDeviceNames) Kind() string { return "fetch_device_names" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (FetchDeviceNames) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNames, MaxAttempts: 5, UniqueOpts: whileQueued}
}

// NamesScan queues the fetches of codes and locks seen for the first time
// (their names due). Periodic, every few seconds.
type NamesScan struct{}

// Kind implements river.JobArgs.
func (NamesScan) Kind() string { return "names_scan" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (NamesScan) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}

// NamesRefresh queues a fetch for every lock and live code, once a day:
// names change (a lock renamed, a stay extended).
type NamesRefresh struct{}

// Kind implements river.JobArgs.
func (NamesRefresh) Kind() string { return "names_refresh" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (NamesRefresh) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: whileQueued}
}
