package seamsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/internal/ids"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// claimTTL is how long a deletion claim lasts: longer than any request it
// covers (DeleteTimeout), so it only runs out for a process that died.
func (s *Service) claimTTL() time.Duration { return s.cfg.DeleteTimeout + time.Minute }

// claimPoll is how often a caller waiting for another's deletion request
// looks again.
const claimPoll = 100 * time.Millisecond

// RequestDeletion asks Seam to delete a code and records the request with
// the job that follows its action attempt, in one transaction. A code with a
// pending request, or whose deletion is already recorded, is returned as it
// is: Seam is not asked twice. Requests for one code are serialised in the
// database (a claim), across goroutines, replicas and CLIs: a second caller
// waits for the first to record its request, then gets the code with it.
// The request runs for at most DeleteTimeout whatever ctx says, so that
// Seam's answer is never lost to an impatient caller.
func (s *Service) RequestDeletion(ctx context.Context, id, by string) (*lifecycle.AccessCode, error) {
	code, done, err := s.RequestDeletionWithin(ctx, id, by, 0)
	if err == nil && !done {
		return nil, lifecycle.Unavailable(ctx.Err())
	}
	return code, err
}

// RequestDeletionWithin is RequestDeletion that stops waiting after wait (0:
// until ctx ends): done is false when the request is still under way, in
// the background, and code is the code as it stands (nil if codewatch has
// not seen it).
func (s *Service) RequestDeletionWithin(ctx context.Context, id, by string, wait time.Duration) (code *lifecycle.AccessCode, done bool, err error) {
	type result struct {
		code *lifecycle.AccessCode
		err  error
	}
	res := make(chan result, 1)
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DeleteTimeout)
		defer cancel()
		c, err := s.requestDeletion(bctx, id, by)
		res <- result{c, err}
	}()
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-res:
		return r.code, true, r.err
	case <-ctx.Done():
	case <-timeout:
	}
	c, err := s.cfg.Store.GetAccessCode(context.WithoutCancel(ctx), id)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return nil, false, nil
	}
	return c, false, err
}

// Drain waits until deletion requests running in the background have
// finished, or ctx ends.
func (s *Service) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.background.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) requestDeletion(ctx context.Context, id, by string) (*lifecycle.AccessCode, error) {
	release, err := s.claim(ctx, id)
	if err != nil {
		return nil, err
	}
	defer release()
	code, err := s.cfg.Store.GetAccessCode(ctx, id)
	switch {
	case lifecycle.ErrorCode(err) == lifecycle.ENotFound:
		code = nil // Seam may know it even if no webhook told codewatch
	case err != nil:
		return nil, err
	case pendingRequest(code) || requestSucceeded(code) || code.DeletedAt != nil:
		return code, nil
	}
	ref := lifecycle.CodeRef{AccessCodeID: id}
	if code != nil {
		ref = lifecycle.CodeRefOf(code)
	}
	if err := s.checkCovered(ctx, ref); err != nil {
		return nil, err
	}
	if ws := s.workspace.Load(); ws != nil && ref.WorkspaceID == "" {
		// Seam takes the deletion only for a code of the key's workspace:
		// that is the code's workspace, and its later lookups count.
		ref.WorkspaceID = ws.WorkspaceID
	}
	name, named := s.nameBeforeDeletion(ctx, id, code)
	a, err := s.cfg.Seam.DeleteAccessCodeOf(ctx, id, ref.DeviceID)
	var se *seam.Error
	switch {
	case err == nil:
	case seam.IsAccessCodeNotFound(err) && errors.As(err, &se) && se.Attempts > 1 && code != nil:
		// An earlier attempt of this call went through and its answer was
		// lost: the deletion happened, its attempt id is unknown. Record
		// the request without one; a lookup confirms it.
		s.cfg.Logger.WarnContext(ctx, "seam: deletion answer lost; recording the request without its action attempt",
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
	if named {
		if err := s.cfg.Store.SetCodeName(ctx, id, name, now); err != nil {
			s.cfg.Logger.WarnContext(ctx, "deleted code's name not kept", "access_code_id", id, "error", err)
		}
	}
	s.cfg.Logger.InfoContext(ctx, "deletion requested", "access_code_id", id, "action_attempt_id", a.ID, "requested_by", by)
	return s.cfg.Store.GetAccessCode(ctx, id)
}

// claim takes the code's deletion claim, waiting while someone else holds
// it, and returns its release.
func (s *Service) claim(ctx context.Context, id string) (func(), error) {
	holder := ids.NewTimeOrdered(s.cfg.Now())
	for {
		ok, err := s.cfg.Store.ClaimDeletion(ctx, id, holder, s.claimTTL())
		if err != nil {
			return nil, err
		}
		if ok {
			return func() {
				// Released even when ctx has ended: a claim left behind
				// holds the next request back until it expires.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := s.cfg.Store.ReleaseDeletion(rctx, id, holder); err != nil {
					s.cfg.Logger.WarnContext(ctx, "deletion claim not released; it expires by itself", "access_code_id", id, "error", err)
				}
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, lifecycle.Unavailable(fmt.Errorf("waiting for another deletion request of this code: %w", ctx.Err()))
		case <-time.After(claimPoll):
		}
	}
}

func pendingRequest(c *lifecycle.AccessCode) bool {
	return c.DeletionState == lifecycle.DeletionRequested && c.DeletionRequest != nil &&
		c.DeletionRequest.Status == seam.ActionAttemptPending
}

// requestSucceeded reports whether Seam said codewatch's deletion request
// went through: Seam no longer has the code to delete again (asking would
// answer 404), and the code waits for its removal to be confirmed.
func requestSucceeded(c *lifecycle.AccessCode) bool {
	return c.DeletionRequest != nil && c.DeletionRequest.Status == seam.ActionAttemptSuccess
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

// nameReadTimeout bounds the read of a code's name before its deletion: a
// name is never worth delaying the deletion for.
const nameReadTimeout = 5 * time.Second

// nameBeforeDeletion reads the code's name from Seam, which forgets the code
// once it is deleted (issue 22): named says whether Seam answered. A code
// whose name codewatch has is not read again, and a failed read is only
// logged.
func (s *Service) nameBeforeDeletion(ctx context.Context, id string, code *lifecycle.AccessCode) (name *string, named bool) {
	if code != nil && code.AccessCodeName != nil {
		return nil, false
	}
	rctx, cancel := context.WithTimeout(ctx, nameReadTimeout)
	defer cancel()
	ac, err := s.cfg.Seam.GetAccessCode(rctx, id)
	if err != nil {
		if !seam.IsNotFound(err) {
			s.cfg.Logger.Warn("code's name not read before its deletion", "access_code_id", id, "error", seamFailure(err))
		}
		return nil, false
	}
	return lifecycle.CleanName(ac.Name), true
}
