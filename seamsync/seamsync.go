// Package seamsync closes the loop with Seam's API: it requests deletions and
// follows their action attempts, looks codes up to confirm (or explain) their
// removal, and backfills events the webhooks missed. What it learns is
// recorded as events in each code's history (source "poll"), so the rules in
// package lifecycle decide what it means, exactly as for webhooks.
//
// The work runs as River jobs on the seam queue: following an attempt, one
// lookup per code (unique while queued, so replicas never poll a code twice
// at once), the periodic scan for lookups due, and the start-up backfill.
//
// Files: delete.go, deletion requests and their claim; lookup.go, lookups
// and the API key's workspace; workers.go, the seam queue's workers and
// waiting on them; backfill.go, the backfill.
package seamsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// Store is what seamsync asks of the store (postgres.Store).
type Store interface {
	GetAccessCode(ctx context.Context, id string) (*lifecycle.AccessCode, error)
	Record(ctx context.Context, ds []lifecycle.Delivery, jobs []river.InsertManyParams) ([]lifecycle.Result, error)
	Ingest(ctx context.Context, d lifecycle.Delivery) (lifecycle.Result, error)
	DueForReconcile(ctx context.Context, now time.Time, limit int) ([]string, error)
	UnconfirmedCodes(ctx context.Context, after string, limit int) ([]string, error)
	NewestWebhookEvent(ctx context.Context) (*time.Time, error)
	CodePINHashes(ctx context.Context, id string) ([][]byte, error)
	// ClaimDeletion takes the code's deletion claim until ttl from now, if
	// no one else holds it; ReleaseDeletion gives it back.
	ClaimDeletion(ctx context.Context, id, holder string, ttl time.Duration) (bool, error)
	ReleaseDeletion(ctx context.Context, id, holder string) error
	// SetCodeName keeps the code's name (package names): read before
	// codewatch deletes a code (Seam forgets it after), and with each
	// lookup.
	SetCodeName(ctx context.Context, id string, name *string, at time.Time) error
}

// JobClient inserts and reads River jobs (*river.Client[pgx.Tx]).
type JobClient interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// Config configures a Service.
type Config struct {
	Seam  *seam.Client
	Store Store
	// Keys hash the PINs of the lock's unmanaged codes, to find a deleted
	// code's PIN among them (never kept, never compared in clear).
	Keys *datakeys.Keyring
	// Jobs inserts lookups and waits for them (ReconcileNow, the scan).
	Jobs JobClient
	// FollowFor bounds how long a pending action attempt is polled; after
	// it, reconciliation still looks the code up. Default 24 h.
	FollowFor time.Duration
	// MaxFollowWait caps the wait between polls of an attempt. Default 5 min.
	MaxFollowWait time.Duration
	// ScanBatch bounds the lookups one scan queues. Default 1000.
	ScanBatch int
	// DeleteTimeout bounds one deletion request (Seam's call with its
	// retries and the recording of its answer), wherever it was started:
	// a request the caller stopped waiting for runs on in the background
	// until then. Default 3 min.
	DeleteTimeout time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Service is codewatch's use of Seam's API.
type Service struct {
	cfg Config
	// workspace is the workspace SEAM_API_KEY belongs to, once workspaces/get
	// has said (nil until then).
	workspace atomic.Pointer[seam.Workspace]
	// background counts deletion requests running on after their caller
	// stopped waiting, for Drain.
	background sync.WaitGroup
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.FollowFor <= 0 {
		cfg.FollowFor = 24 * time.Hour
	}
	if cfg.MaxFollowWait <= 0 {
		cfg.MaxFollowWait = 5 * time.Minute
	}
	if cfg.ScanBatch <= 0 {
		cfg.ScanBatch = 1000
	}
	if cfg.DeleteTimeout <= 0 {
		cfg.DeleteTimeout = 3 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// UseJobs sets the River client that inserts and reads lookups, for when it
// is made after the Service (its workers are the Service's).
func (s *Service) UseJobs(j JobClient) { s.cfg.Jobs = j }

// Register adds the seam queue's workers to w.
func (s *Service) Register(w *river.Workers) {
	river.AddWorker(w, &followWorker{s: s})
	river.AddWorker(w, &reconcileWorker{s: s})
	river.AddWorker(w, &scanWorker{s: s})
	river.AddWorker(w, &backfillWorker{s: s})
}

// Periodic returns the scan for lookups due, every interval; nil when
// reconciliation is off (interval 0).
func (s *Service) Periodic(interval time.Duration) []*river.PeriodicJob {
	if interval <= 0 {
		return nil
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.ReconcileScan{}, nil },
		&river.PeriodicJobOpts{ID: "reconcile_scan", RunOnStart: true})}
}

// seamError turns a failed call into the error the caller sees: Seam's own
// not-found (in Seam's error shape) becomes not-found; anything else is
// ESeam, saying what came back.
func seamError(err error) error {
	if seam.IsNotFound(err) {
		return &lifecycle.Error{Code: lifecycle.ENotFound, Message: "Seam has no access_code with this access_code_id", Err: err}
	}
	return &lifecycle.Error{Code: lifecycle.ESeam, Message: seamFailure(err), Err: err}
}

// seamFailure says, for people, what came back from a call that gave no
// answer codewatch can use: Seam's own error, something else that answered
// instead of Seam (a proxy's HTML page, a gateway's JSON, a redirect), a 2xx
// without what Seam sends, or no answer at all.
func seamFailure(err error) string {
	var se *seam.Error
	var ae *seam.AnswerError
	switch {
	case errors.As(err, &se) && se.SeamShaped:
		msg := fmt.Sprintf("Seam's API answered %d %s: %s", se.Status, se.Type, se.Message)
		if se.RequestID != "" {
			msg += " (Seam request " + se.RequestID + ")"
		}
		return lifecycle.CleanText(msg, maxMessage)
	case errors.As(err, &se):
		return lifecycle.CleanText(fmt.Sprintf("%s answered %d (%s): not Seam's error body, so not Seam's word "+
			"(a proxy, a gateway or a wrong SEAM_API_URL?)", se.Route, se.Status, se.Got), maxMessage)
	case errors.As(err, &ae):
		return lifecycle.CleanText(ae.Error()+": not Seam's answer about the code", maxMessage)
	}
	return lifecycle.CleanText("Seam's API did not answer: "+err.Error(), maxMessage)
}

// maxMessage bounds a message codewatch stores or shows about a call.
const maxMessage = 500

// lookupError is what a failed call tells of itself, for the code's seam
// block.
func lookupError(typ, msg string, err error) lifecycle.LookupError {
	le := lifecycle.LookupError{Type: typ, Message: msg}
	var se *seam.Error
	if errors.As(err, &se) {
		le.HTTPStatus, le.RequestID = se.Status, se.RequestID
		if se.SeamShaped {
			le.SeamErrorType = se.Type
		}
	}
	var ae *seam.AnswerError
	if errors.As(err, &ae) {
		le.RequestID = ae.RequestID
	}
	return le
}

// Compile-time check that the River client is a JobClient.
var _ JobClient = (*river.Client[pgx.Tx])(nil)
