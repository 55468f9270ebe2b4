package seamsync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/ids"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

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
		// The answer names the code too (written only if it changed).
		if err := s.cfg.Store.SetCodeName(ctx, id, lifecycle.CleanName(ac.Name), now); err != nil {
			s.cfg.Logger.Warn("code's name not kept", "access_code_id", id, "error", err)
		}
	}
	evs := []lifecycle.Delivery{ev}
	if failed == nil && code.DeletedAt != nil && ref.DeviceID != "" {
		found, err := s.unmanagedWithPIN(ctx, id, ref)
		if err != nil {
			// The lookup itself is evidence; the unmanaged check is tried
			// again at the next lookup.
			s.cfg.Logger.WarnContext(ctx, "seam: unmanaged codes not checked", "access_code_id", id, "device_id", ref.DeviceID, "error", err)
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
	s.cfg.Logger.InfoContext(ctx, "seam: API key's workspace", "workspace_id", ws.WorkspaceID, "workspace_name", ws.Name,
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
		s.cfg.Logger.WarnContext(ctx, "seam: could not read the API key's workspace (workspaces/get); no lookup confirms a removal until it is known",
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
