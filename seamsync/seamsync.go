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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	// ClaimDeletion takes the code's deletion claim until ttl from now, if
	// no one else holds it; ReleaseDeletion gives it back.
	ClaimDeletion(ctx context.Context, id, holder string, ttl time.Duration) (bool, error)
	ReleaseDeletion(ctx context.Context, id, holder string) error
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
	case pendingRequest(code) || code.DeletedAt != nil:
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
	a, err := s.cfg.Seam.DeleteAccessCodeOf(ctx, id, ref.DeviceID)
	var se *seam.Error
	switch {
	case err == nil:
	case seam.IsAccessCodeNotFound(err) && errors.As(err, &se) && se.Attempts > 1 && code != nil:
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
					s.cfg.Logger.Warn("deletion claim not released; it expires by itself", "access_code_id", id, "error", err)
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

// Lookup reads the code from Seam's API now and records what it says: Seam's
// own not-found (codewatch.access_code_not_found), the live code's status,
// errors and warnings (codewatch.access_code_polled), or, when the answer is
// not Seam's word about the code, a failed lookup
// (codewatch.lookup_failed), which confirms nothing. A code of a workspace
// the API key does not reach is not looked up at all. The Reconcile job runs
// it; an error means the lookup should be tried again.
func (s *Service) Lookup(ctx context.Context, id string) error {
	code, err := s.cfg.Store.GetAccessCode(ctx, id)
	if err != nil {
		return err
	}
	ref := lifecycle.CodeRefOf(code)
	if err := s.checkCovered(ctx, ref); err != nil {
		return err
	}
	ac, err := s.cfg.Seam.GetAccessCode(ctx, id)
	now := s.cfg.Now()
	var ev lifecycle.Delivery
	var failed error // returned after the lookup is recorded: the job retries
	switch {
	case seam.IsAccessCodeNotFound(err):
		var reqID string
		var se *seam.Error
		if errors.As(err, &se) {
			reqID = se.RequestID
		}
		if why := s.cannotConfirm(ref); why != "" {
			le := lookupError(lifecycle.LookupWorkspaceUnknown, why, err)
			ev = lifecycle.OwnEvent("cw_lookup_"+ids.NewTimeOrdered(now), lifecycle.TypeLookupFailed, now, ref, le)
			if s.workspace.Load() == nil {
				// Known later: look again then.
				failed = &lifecycle.Error{Code: lifecycle.ESeam, Message: why}
			}
			break
		}
		ev = lifecycle.OwnEvent("cw_poll_"+ids.NewTimeOrdered(now), lifecycle.TypeAccessCodeGone, now, ref,
			lifecycle.PollDetails{Errors: []json.RawMessage{}, Warnings: []json.RawMessage{}, RequestID: reqID})
	case err != nil:
		if ctx.Err() != nil {
			return err // stopped, not answered: nothing to record
		}
		msg := seamFailure(err)
		ev = lifecycle.OwnEvent("cw_lookup_"+ids.NewTimeOrdered(now), lifecycle.TypeLookupFailed, now, ref,
			lookupError(lifecycle.LookupSeamError, msg, err))
		failed = &lifecycle.Error{Code: lifecycle.ESeam, Message: msg}
	default:
		d := pollDetails(ac)
		d.RequestID = ac.RequestID
		ev = lifecycle.OwnEvent("cw_poll_"+ids.NewTimeOrdered(now), lifecycle.TypeAccessCodePolled, now, ref, d)
	}
	evs := []lifecycle.Delivery{ev}
	if failed == nil && code.DeletedAt != nil && ref.DeviceID != "" {
		found, err := s.unmanagedWithPIN(ctx, id, ref)
		if err != nil {
			// The lookup itself is evidence; the unmanaged check is tried
			// again at the next lookup.
			s.cfg.Logger.Warn("seam: unmanaged codes not checked", "access_code_id", id, "device_id", ref.DeviceID, "error", err)
		}
		evs = append(evs, found...)
	}
	if _, err := s.cfg.Store.Record(ctx, evs, nil); err != nil {
		return err
	}
	return failed
}

// cannotConfirm says why Seam's not-found cannot confirm this code's removal
// ("" when it can): Seam answers not-found for codes of every workspace but
// the key's, so it speaks for a code only once the key's workspace is known
// and is the code's.
func (s *Service) cannotConfirm(ref lifecycle.CodeRef) string {
	ws := s.workspace.Load()
	switch {
	case ws == nil:
		return "Seam answered access_code_not_found, but which workspace SEAM_API_KEY belongs to is not known yet " +
			"(workspaces/get has not answered): the answer may be about another workspace, so it confirms nothing"
	case ref.WorkspaceID == "":
		return "Seam answered access_code_not_found, but no event said which workspace this code is in: " +
			"the answer may be about another workspace than SEAM_API_KEY's (" + ws.WorkspaceID + "), so it confirms nothing"
	}
	return ""
}

// checkCovered refuses a code of a workspace the API key does not reach,
// recording once on the code why it is not looked up.
func (s *Service) checkCovered(ctx context.Context, ref lifecycle.CodeRef) error {
	ws := s.workspace.Load()
	if ws == nil || ref.WorkspaceID == "" || ref.WorkspaceID == ws.WorkspaceID {
		return nil
	}
	msg := "access code " + ref.AccessCodeID + " is in workspace " + ref.WorkspaceID + "; SEAM_API_KEY belongs to workspace " +
		ws.WorkspaceID + ": codewatch does not look it up, delete it or backfill it with that key"
	now := s.cfg.Now()
	// One event per code and key workspace: recorded again, a duplicate.
	sum := sha256.Sum256([]byte(ref.AccessCodeID + "\x00" + ws.WorkspaceID))
	ev := lifecycle.OwnEvent("cw_not_covered_"+hex.EncodeToString(sum[:12]), lifecycle.TypeLookupFailed, now, ref,
		lifecycle.LookupError{Type: lifecycle.LookupNotCovered, Message: msg})
	if _, err := s.cfg.Store.Record(ctx, []lifecycle.Delivery{ev}, nil); err != nil {
		return err
	}
	return &lifecycle.Error{Code: lifecycle.ENotCovered, Message: msg}
}

// Workspace returns the workspace SEAM_API_KEY belongs to, nil until
// workspaces/get has answered.
func (s *Service) Workspace() *seam.Workspace { return s.workspace.Load() }

// ResolveWorkspace asks Seam which workspace the API key belongs to, once,
// and remembers it.
func (s *Service) ResolveWorkspace(ctx context.Context) (*seam.Workspace, error) {
	ws, err := s.cfg.Seam.GetWorkspace(ctx)
	if err != nil {
		return nil, err
	}
	s.workspace.Store(ws)
	s.cfg.Logger.Info("seam: API key's workspace", "workspace_id", ws.WorkspaceID, "workspace_name", ws.Name,
		"is_sandbox", ws.IsSandbox)
	return ws, nil
}

// WatchWorkspace resolves the API key's workspace, retrying with backoff
// (1 s doubling to 5 min) until it succeeds or ctx ends. Until then deletes
// and lookups run, but no lookup confirms a removal.
func (s *Service) WatchWorkspace(ctx context.Context) {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		_, err := s.ResolveWorkspace(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("seam: could not read the API key's workspace (workspaces/get); no lookup confirms a removal until it is known",
			"attempt", attempt, "retry_in", wait, "error", seamFailure(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Minute)
	}
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
		s.cfg.Logger.Info("reconcile: lookups queued", "codes", queued)
	}
	return nil
}

// Compile-time check that the River client is a JobClient.
var _ JobClient = (*river.Client[pgx.Tx])(nil)
