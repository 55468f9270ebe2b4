package seamsync

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// ReconcileNow runs the code's lookup job (or joins the one already queued
// or running) and waits for it, then returns the code. The job, unique per
// code, is what keeps two replicas or a replica and the CLI from polling one
// code at once; a River client must be working the seam queue.
func (s *Service) ReconcileNow(ctx context.Context, id string) (*lifecycle.AccessCode, error) {
	code, done, err := s.ReconcileWithin(ctx, id, 0)
	if err == nil && !done {
		return nil, lifecycle.Unavailable(fmt.Errorf("waiting for the lookup: %w", ctx.Err()))
	}
	return code, err
}

// ReconcileWithin is ReconcileNow that stops waiting after wait (0: until
// ctx ends): done is false when the lookup has not finished, and code is the
// code as it stands. A code outside the key's workspace is not looked up
// (ENotCovered); a lookup that failed is ESeam at once, saying what came
// back, while its job retries.
func (s *Service) ReconcileWithin(ctx context.Context, id string, wait time.Duration) (code *lifecycle.AccessCode, done bool, err error) {
	code, err = s.cfg.Store.GetAccessCode(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if err := s.checkCovered(ctx, lifecycle.CodeRefOf(code)); err != nil {
		return nil, false, err
	}
	res, err := s.cfg.Jobs.Insert(ctx, jobs.Reconcile{AccessCodeID: id}, nil)
	if err != nil {
		return nil, false, lifecycle.Unavailable(err)
	}
	if res.UniqueSkippedAsDuplicate && res.Job.State == rivertype.JobStateRetryable {
		// A lookup that failed earlier waits for its retry: asked now, try
		// now, so that the answer is what Seam says now.
		if _, err := s.cfg.Jobs.JobRetry(ctx, res.Job.ID); err != nil {
			return nil, false, lifecycle.Unavailable(err)
		}
	}
	wctx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	if err := s.wait(wctx, res.Job.ID); err != nil {
		if wctx.Err() != nil && lifecycle.ErrorCode(err) == lifecycle.EUnavailable {
			code, err := s.cfg.Store.GetAccessCode(context.WithoutCancel(ctx), id)
			return code, false, err
		}
		return nil, false, err
	}
	code, err = s.cfg.Store.GetAccessCode(ctx, id)
	return code, err == nil, err
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
	return &lifecycle.Error{Code: lifecycle.ESeam, Message: lifecycle.CleanText(msg, 2*maxMessage)}
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
	if seam.IsActionAttemptNotFound(err) {
		s.cfg.Logger.WarnContext(ctx, "seam: action attempt not found; reconciliation will confirm the deletion",
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
			s.cfg.Logger.WarnContext(ctx, "seam: action attempt still pending; stopped following it",
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
		s.cfg.Logger.WarnContext(ctx, "seam: deletion action attempt failed", "access_code_id", job.Args.AccessCodeID,
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
	switch lifecycle.ErrorCode(err) {
	case lifecycle.ENotFound:
		return nil // pruned meanwhile
	case lifecycle.ENotCovered:
		// Not this key's to look up: recorded on the code; nothing to retry.
		return river.JobCancel(err)
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
		s.cfg.Logger.InfoContext(ctx, "reconcile: lookups queued", "codes", queued)
	}
	return nil
}
