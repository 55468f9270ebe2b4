// Package seamsync closes the loop with Seam's API: it requests deletions and
// follows their action attempts, looks codes up to confirm (or explain) their
// removal, and backfills events the webhooks missed. What it learns is
// recorded as events in each code's history (source "poll"), so the rules in
// package lifecycle decide what it means, exactly as for webhooks.
//
// The work runs as River jobs on the seam queue: following an attempt, one
// lookup per code (unique while queued, so replicas never poll a code twice
// at once), the periodic scan for lookups due, and the start-up backfill.
package seamsync

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/ids"
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
}

// JobClient inserts and reads River jobs (*river.Client[pgx.Tx]).
type JobClient interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
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
	Now       func() time.Time
	Logger    *slog.Logger
}

// Service is codewatch's use of Seam's API.
type Service struct {
	cfg Config
	// requesting serialises deletion requests per code within a process,
	// so that a double click asks Seam once.
	mu         sync.Mutex
	requesting map[string]*sync.Mutex
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, requesting: map[string]*sync.Mutex{}}
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

// seamError turns a failed call into the error the caller sees: Seam's 404
// becomes not-found; anything else is ESeam with Seam's message.
func seamError(err error) error {
	if seam.IsNotFound(err) {
		return &lifecycle.Error{Code: lifecycle.ENotFound, Message: "Seam has no access_code with this access_code_id", Err: err}
	}
	var se *seam.Error
	if errors.As(err, &se) {
		msg := se.Message
		if msg == "" {
			msg = fmt.Sprintf("Seam answered %d", se.Status)
		}
		if se.RequestID != "" {
			msg += " (Seam request " + se.RequestID + ")"
		}
		return &lifecycle.Error{Code: lifecycle.ESeam, Message: msg, Err: err}
	}
	return &lifecycle.Error{Code: lifecycle.ESeam, Message: "Seam's API did not answer: " + err.Error(), Err: err}
}

// lockCode returns the code's request mutex, locked.
func (s *Service) lockCode(id string) func() {
	s.mu.Lock()
	m, ok := s.requesting[id]
	if !ok {
		m = &sync.Mutex{}
		s.requesting[id] = m
	}
	s.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		s.mu.Lock()
		if s.requesting[id] == m && m.TryLock() {
			delete(s.requesting, id)
			m.Unlock()
		}
		s.mu.Unlock()
	}
}

// RequestDeletion asks Seam to delete a code and records the request with
// the job that follows its action attempt, in one transaction. A code with a
// pending request, or whose deletion is already recorded, is returned as it
// is: Seam is not asked twice.
func (s *Service) RequestDeletion(ctx context.Context, id, by string) (*lifecycle.AccessCode, error) {
	unlock := s.lockCode(id)
	defer unlock()
	code, err := s.cfg.Store.GetAccessCode(ctx, id)
	switch {
	case lifecycle.ErrorCode(err) == lifecycle.ENotFound:
		code = nil // Seam may know it even if no webhook told codewatch
	case err != nil:
		return nil, err
	case pendingRequest(code) || code.DeletedAt != nil:
		return code, nil
	}
	ref := lifecycle.CodeRef{AccessCodeID: id}
	if code != nil {
		ref = lifecycle.CodeRefOf(code)
	}
	a, err := s.cfg.Seam.DeleteAccessCodeOf(ctx, id, ref.DeviceID)
	var se *seam.Error
	switch {
	case err == nil:
	case seam.IsNotFound(err) && errors.As(err, &se) && se.Attempts > 1 && code != nil:
		// An earlier attempt of this call went through and its answer was
		// lost: the deletion happened, its attempt id is unknown. Record
		// the request without one; a lookup confirms it.
		s.cfg.Logger.Warn("seam: deletion answer lost; recording the request without its action attempt",
			"access_code_id", id)
		a = &seam.ActionAttempt{Status: seam.ActionAttemptPending}
	default:
		return nil, seamError(err)
	}
	now := s.cfg.Now()
	evs := []lifecycle.Delivery{lifecycle.OwnEvent(requestEventID(a.ID, now), lifecycle.TypeDeletionRequested, now, ref,
		lifecycle.AttemptDetails{ActionAttemptID: a.ID, Status: seam.ActionAttemptPending, RequestedBy: by})}
	var follow []river.InsertManyParams
	switch a.Status {
	case seam.ActionAttemptSuccess, seam.ActionAttemptError:
		evs = append(evs, attemptEnd(a, now, ref))
	default:
		if a.ID != "" {
			follow = append(follow, river.InsertManyParams{Args: jobs.FollowAttempt{AccessCodeID: id, ActionAttemptID: a.ID}})
		}
	}
	if _, err := s.cfg.Store.Record(ctx, evs, follow); err != nil {
		return nil, err
	}
	s.cfg.Logger.Info("deletion requested", "access_code_id", id, "action_attempt_id", a.ID, "requested_by", by)
	return s.cfg.Store.GetAccessCode(ctx, id)
}

func pendingRequest(c *lifecycle.AccessCode) bool {
	return c.DeletionState == lifecycle.DeletionRequested && c.DeletionRequest != nil &&
		c.DeletionRequest.Status == seam.ActionAttemptPending
}

// requestEventID is the request's event id: derived from the attempt, so a
// request recorded twice is stored once.
func requestEventID(attemptID string, now time.Time) string {
	if attemptID == "" {
		return "cw_request_" + ids.NewTimeOrdered(now)
	}
	return "cw_request_" + attemptID
}

// attemptEnd is the event of an ended action attempt; its id is derived from
// the attempt and its status, so recording it again is a duplicate.
func attemptEnd(a *seam.ActionAttempt, at time.Time, ref lifecycle.CodeRef) lifecycle.Delivery {
	d := lifecycle.AttemptDetails{ActionAttemptID: a.ID, Status: a.Status}
	if a.Error != nil {
		d.Error = &lifecycle.AttemptError{Type: a.Error.Type, Message: a.Error.Message}
	}
	return lifecycle.OwnEvent("cw_attempt_"+a.ID+"_"+a.Status, lifecycle.TypeActionAttempt, at, ref, d)
}

// Lookup reads the code from Seam's API now and records what it says: a
// 404 (codewatch.access_code_not_found) or the live code's status, errors and
// warnings (codewatch.access_code_polled). The Reconcile job runs it.
func (s *Service) Lookup(ctx context.Context, id string) error {
	code, err := s.cfg.Store.GetAccessCode(ctx, id)
	if err != nil {
		return err
	}
	ref := lifecycle.CodeRefOf(code)
	ac, err := s.cfg.Seam.GetAccessCode(ctx, id)
	now := s.cfg.Now()
	var ev lifecycle.Delivery
	switch {
	case seam.IsNotFound(err):
		ev = lifecycle.OwnEvent("cw_poll_"+ids.NewTimeOrdered(now), lifecycle.TypeAccessCodeGone, now, ref,
			lifecycle.PollDetails{Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}})
	case err != nil:
		return seamError(err)
	default:
		ev = lifecycle.OwnEvent("cw_poll_"+ids.NewTimeOrdered(now), lifecycle.TypeAccessCodePolled, now, ref, pollDetails(ac))
	}
	evs := []lifecycle.Delivery{ev}
	if code.DeletedAt != nil && ref.DeviceID != "" {
		found, err := s.unmanagedWithPIN(ctx, id, ref)
		if err != nil {
			// The lookup itself is evidence; the unmanaged check is tried
			// again at the next lookup.
			s.cfg.Logger.Warn("seam: unmanaged codes not checked", "access_code_id", id, "device_id", ref.DeviceID, "error", err)
		}
		evs = append(evs, found...)
	}
	_, err = s.cfg.Store.Record(ctx, evs, nil)
	return err
}

// unmanagedWithPIN lists the lock's unmanaged codes and returns an event for
// each that carries the deleted code's PIN: the code is still on the lock.
// PINs are compared as keyed hashes under every key.
func (s *Service) unmanagedWithPIN(ctx context.Context, id string, ref lifecycle.CodeRef) ([]lifecycle.Delivery, error) {
	if s.cfg.Keys == nil {
		return nil, nil
	}
	mine, err := s.cfg.Store.CodePINHashes(ctx, id)
	if err != nil || len(mine) == 0 {
		return nil, err
	}
	list, err := s.cfg.Seam.ListUnmanagedAccessCodes(ctx, ref.DeviceID)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var out []lifecycle.Delivery
	for _, u := range list {
		if u.Code == "" {
			continue
		}
		match := false
		for _, h := range s.cfg.Keys.PinHashes(u.Code) {
			for _, m := range mine {
				if hmac.Equal(h.Sum, m) {
					match = true
				}
			}
		}
		if !match {
			continue
		}
		// One event per unmanaged code: found again, it is a duplicate.
		out = append(out, lifecycle.OwnEvent("cw_unmanaged_"+id+"_"+u.AccessCodeID, lifecycle.TypeUnmanagedFound, now, ref,
			map[string]string{"unmanaged_access_code_id": u.AccessCodeID, "pin_hint": datakeys.PinHint(u.Code)}))
	}
	return out, nil
}

// pollDetails keeps a live code's status and its errors and warnings exactly
// as Seam gave them (the PIN, elsewhere in the object, is left out).
func pollDetails(ac *seam.AccessCode) lifecycle.PollDetails {
	var raw struct {
		Errors   []json.RawMessage `json:"errors"`
		Warnings []json.RawMessage `json:"warnings"`
	}
	_ = json.Unmarshal(ac.Raw, &raw)
	d := lifecycle.PollDetails{Status: ac.Status, Errors: raw.Errors, Warnings: raw.Warnings}
	if d.Errors == nil {
		d.Errors = []json.RawMessage{}
	}
	if d.Warnings == nil {
		d.Warnings = []json.RawMessage{}
	}
	return d
}

// ReconcileNow runs the code's lookup job (or joins the one already queued
// or running) and waits for it, then returns the code. The job, unique per
// code, is what keeps two replicas or a replica and the CLI from polling one
// code at once; a River client must be working the seam queue.
func (s *Service) ReconcileNow(ctx context.Context, id string) (*lifecycle.AccessCode, error) {
	if _, err := s.cfg.Store.GetAccessCode(ctx, id); err != nil {
		return nil, err
	}
	res, err := s.cfg.Jobs.Insert(ctx, jobs.Reconcile{AccessCodeID: id}, nil)
	if err != nil {
		return nil, lifecycle.Unavailable(err)
	}
	if err := s.wait(ctx, res.Job.ID); err != nil {
		return nil, err
	}
	return s.cfg.Store.GetAccessCode(ctx, id)
}

// wait polls a job until it finishes. A failed attempt's error is the
// caller's answer (the job itself retries).
func (s *Service) wait(ctx context.Context, jobID int64) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		j, err := s.cfg.Jobs.JobGet(ctx, jobID)
		if err != nil {
			return lifecycle.Unavailable(err)
		}
		switch j.State {
		case rivertype.JobStateCompleted:
			return nil
		case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			return jobError(j, "the lookup was abandoned")
		case rivertype.JobStateRetryable:
			return jobError(j, "the lookup failed; it will be retried")
		}
		select {
		case <-ctx.Done():
			return lifecycle.Unavailable(fmt.Errorf("waiting for the lookup: %w", ctx.Err()))
		case <-tick.C:
		}
	}
}

func jobError(j *rivertype.JobRow, what string) error {
	msg := what
	if n := len(j.Errors); n > 0 {
		msg += ": " + j.Errors[n-1].Error
	}
	return &lifecycle.Error{Code: lifecycle.ESeam, Message: msg}
}

// QueueLookups queues a lookup for each of ids (unique per code) and returns
// the jobs' ids, for `codewatch reconcile` to wait on.
func (s *Service) QueueLookups(ctx context.Context, codeIDs []string) ([]int64, error) {
	out := make([]int64, 0, len(codeIDs))
	for _, id := range codeIDs {
		res, err := s.cfg.Jobs.Insert(ctx, jobs.Reconcile{AccessCodeID: id}, nil)
		if err != nil {
			return out, lifecycle.Unavailable(err)
		}
		out = append(out, res.Job.ID)
	}
	return out, nil
}

// Wait waits for a lookup job queued by QueueLookups.
func (s *Service) Wait(ctx context.Context, jobID int64) error { return s.wait(ctx, jobID) }

type followWorker struct {
	river.WorkerDefaults[jobs.FollowAttempt]
	s *Service
}

// Work polls the attempt once; while it is pending the job snoozes, longer
// each time (half the time since the request, between 1 s and
// MaxFollowWait), until FollowFor has passed.
func (w *followWorker) Work(ctx context.Context, job *river.Job[jobs.FollowAttempt]) error {
	s := w.s
	a, err := s.cfg.Seam.GetActionAttempt(ctx, job.Args.ActionAttemptID)
	if seam.IsNotFound(err) {
		s.cfg.Logger.Warn("seam: action attempt not found; reconciliation will confirm the deletion",
			"access_code_id", job.Args.AccessCodeID, "action_attempt_id", job.Args.ActionAttemptID)
		return nil
	}
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	if a.Status == seam.ActionAttemptPending {
		elapsed := now.Sub(job.CreatedAt)
		if elapsed > s.cfg.FollowFor {
			s.cfg.Logger.Warn("seam: action attempt still pending; stopped following it",
				"access_code_id", job.Args.AccessCodeID, "action_attempt_id", a.ID, "after", elapsed.Round(time.Second))
			return nil
		}
		return river.JobSnooze(min(max(elapsed/2, time.Second), s.cfg.MaxFollowWait))
	}
	code, err := s.cfg.Store.GetAccessCode(ctx, job.Args.AccessCodeID)
	if err != nil {
		return err
	}
	_, err = s.cfg.Store.Record(ctx, []lifecycle.Delivery{attemptEnd(a, now, lifecycle.CodeRefOf(code))}, nil)
	if err == nil && a.Status == seam.ActionAttemptError {
		msg := ""
		if a.Error != nil {
			msg = a.Error.Message
		}
		s.cfg.Logger.Warn("seam: deletion action attempt failed", "access_code_id", job.Args.AccessCodeID,
			"action_attempt_id", a.ID, "seam_message", msg)
	}
	return err
}

type reconcileWorker struct {
	river.WorkerDefaults[jobs.Reconcile]
	s *Service
}

func (w *reconcileWorker) Work(ctx context.Context, job *river.Job[jobs.Reconcile]) error {
	err := w.s.Lookup(ctx, job.Args.AccessCodeID)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return nil // pruned meanwhile
	}
	return err
}

// Timeout lets a lookup wait out Seam's rate limits and retries.
func (w *reconcileWorker) Timeout(*river.Job[jobs.Reconcile]) time.Duration { return 3 * time.Minute }

type scanWorker struct {
	river.WorkerDefaults[jobs.ReconcileScan]
	s *Service
}

// Work queues a lookup for each code due. A code already queued is skipped
// by the job's uniqueness; once looked up, its next lookup moves later.
func (w *scanWorker) Work(ctx context.Context, _ *river.Job[jobs.ReconcileScan]) error {
	s := w.s
	due, err := s.cfg.Store.DueForReconcile(ctx, s.cfg.Now(), s.cfg.ScanBatch)
	if err != nil || len(due) == 0 {
		return err
	}
	queued := 0
	for _, id := range due {
		res, err := s.cfg.Jobs.Insert(ctx, jobs.Reconcile{AccessCodeID: id}, nil)
		if err != nil {
			return err
		}
		if !res.UniqueSkippedAsDuplicate {
			queued++
		}
	}
	if queued > 0 {
		s.cfg.Logger.Info("reconcile: lookups queued", "codes", queued)
	}
	return nil
}

// Compile-time check that the River client is a JobClient.
var _ JobClient = (*river.Client[pgx.Tx])(nil)
