package postgres

import (
	"context"
	"encoding/json"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/internal/ids"
	"github.com/codewatch/codewatch/lifecycle"
)

// Refolding codes, as ingest, replay, the sweeper and acknowledgement do:
// their rows locked (queueLockCodes), their histories read (queueLoadEvents,
// queueLoadPINReports), folded and judged (recompute, decide), and the rows
// and their alerts written (writeChanges).

// codeColumns is the access_codes row as recompute and the API read it.
const codeColumns = `access_code_id, workspace_id, device_id, connected_account_id,
	deletion_state, on_device, needs_troubleshooting, troubleshooting_reason,
	troubleshooting_details, trouble_key, trouble_since, acknowledged_key,
	acknowledged_at, acknowledged_by, acknowledgement_note, deletion_event_id,
	created_at, set_on_device_at, deleted_at, removed_from_device_at,
	last_event_at, terminal_at, last_alert_at, updated_at, id, alert_seq,
	confirmed_by, deletion_request, seam, unconfirmed_since, next_reconcile_at,
	confirmation, alerted_key, alert_sinks, access_code_name`

// CodeColumns is codeColumns for the benchmark's pgbench ceiling script
// (test/bench/pgbench.go), which cannot call the store: it selects the row
// as the service does.
const CodeColumns = codeColumns

// codeRow is one access_codes row.
type codeRow struct {
	lifecycle.AccessCode
	troubleKey      *string
	troubleSince    *time.Time
	acknowledgedKey *string
	deletionEventID *string
	terminalAt      *time.Time
	lastAlertAt     *time.Time
	id              int64
	alertSeq        int64
	request, seam   []byte // as stored, for sameAs
	confirmation    []byte
	unconfirmed     *time.Time
	// What its sinks were told (oncall.go).
	alerted    *string
	alertSinks []string
}

func scanCode(row pgx.Row) (*codeRow, error) { return scanCodeExtra(row) }

// scanCodeExtra scans codeColumns followed by extra columns.
func scanCodeExtra(row pgx.Row, extra ...any) (*codeRow, error) {
	var c codeRow
	var details []byte
	err := row.Scan(append([]any{&c.AccessCodeID, &c.WorkspaceID, &c.DeviceID, &c.ConnectedAccountID,
		&c.DeletionState, &c.OnDevice, &c.NeedsTroubleshooting, &c.TroubleshootingReason,
		&details, &c.troubleKey, &c.troubleSince, &c.acknowledgedKey,
		&c.AcknowledgedAt, &c.AcknowledgedBy, &c.AcknowledgementNote, &c.deletionEventID,
		&c.CreatedAt, &c.SetOnDeviceAt, &c.DeletedAt, &c.RemovedFromDeviceAt,
		&c.LastEventAt, &c.terminalAt, &c.lastAlertAt, &c.UpdatedAt, &c.id, &c.alertSeq,
		&c.ConfirmedBy, &c.request, &c.seam, &c.unconfirmed, &c.NextReconcileAt,
		&c.confirmation, &c.alerted, &c.alertSinks, &c.AccessCodeName}, extra...)...)
	if err != nil {
		return nil, err
	}
	if c.troubleKey != nil {
		id := lifecycle.TroubleID(c.AccessCodeID, *c.troubleKey)
		c.TroubleID = &id
	}
	if c.confirmation != nil {
		c.Confirmation = new(lifecycle.Confirmation)
		if err := json.Unmarshal(c.confirmation, c.Confirmation); err != nil {
			return nil, err
		}
	}
	if c.request != nil {
		c.DeletionRequest = new(lifecycle.DeletionRequest)
		if err := json.Unmarshal(c.request, c.DeletionRequest); err != nil {
			return nil, err
		}
	}
	if c.seam != nil {
		c.Seam = new(lifecycle.SeamView)
		if err := json.Unmarshal(c.seam, c.Seam); err != nil {
			return nil, err
		}
	}
	if details != nil {
		c.TroubleshootingDetails = details
	}
	return &c, nil
}

// queueLockCodes creates missing rows for ids and locks all of them, in id
// order (the lock order; see the package comment). Lock first, then read
// events: the last transaction to take a code's lock sees every event
// committed before it, so no update is lost. A new row starts with its ids
// (from start, when given: the ids of each code's newest own event) so that
// the update that follows changes no indexed column when it need not, and
// can be HOT.
func queueLockCodes(b *pgx.Batch, ids []string, start map[string]lifecycle.CodeRef, rows map[string]*codeRow) {
	create := ids
	if start != nil {
		// Only codes with an event of their own get a row.
		create = make([]string, 0, len(start))
		for _, id := range ids {
			if _, ok := start[id]; ok {
				create = append(create, id)
			}
		}
	}
	ws, dev, acct := mk(len(create)), mk(len(create)), mk(len(create))
	for i, id := range create {
		c := start[id]
		ws[i], dev[i], acct[i] = nonEmpty(c.WorkspaceID), nonEmpty(c.DeviceID), nonEmpty(c.ConnectedAccountID)
	}
	// ORDER BY makes new rows get inserted, and so locked, in id order.
	b.Queue(`INSERT INTO access_codes (access_code_id, workspace_id, device_id, connected_account_id)
		SELECT id, ws, dev, acct FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
			AS t(id, ws, dev, acct) ORDER BY id
		ON CONFLICT (access_code_id) DO NOTHING`, create, ws, dev, acct)
	// LockRows sits above the sort: rows are locked in access_code_id order.
	b.Queue(`SELECT `+codeColumns+` FROM access_codes
		WHERE access_code_id = ANY($1) ORDER BY access_code_id FOR UPDATE`, ids).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				c, err := scanCode(rs)
				if err != nil {
					return err
				}
				rows[c.AccessCodeID] = c
			}
			return rs.Err()
		})
}

// queueLoadEvents reads the history of ids into evs. The occurred_at
// fallbacks keep an event without one in order by when it was made or seen.
func queueLoadEvents(b *pgx.Batch, ids []string, evs map[string][]lifecycle.Event) {
	b.Queue(`SELECT access_code_id, event_id, event_type,
			COALESCE(occurred_at, created_at, received_at),
			COALESCE(workspace_id, ''), COALESCE(device_id, ''),
			COALESCE(connected_account_id, ''), details, source, message_id
		FROM events
		WHERE access_code_id = ANY($1) AND `+historySQL, ids).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var e lifecycle.Event
				var details []byte
				if err := rs.Scan(&e.AccessCodeID, &e.EventID, &e.Type, &e.OccurredAt,
					&e.WorkspaceID, &e.DeviceID, &e.ConnectedAccountID, &details, &e.Source, &e.MessageID); err != nil {
					return err
				}
				e.Details = details
				evs[e.AccessCodeID] = append(evs[e.AccessCodeID], e)
			}
			return rs.Err()
		})
}

// change is the new content of one code's row and the alert it calls for.
// gate (oncall.go) decides which sinks the alert goes to.
type change struct {
	old   *codeRow
	st    lifecycle.State
	flag  *lifecycle.Flag
	needs bool
	alert *lifecycle.AlertPayload
	sinks []string
	cols  *alertCols
}

// recompute folds each locked code's events and decides its new row. later,
// for ingest's refold from the relevant events (history.go), is the newest
// time, per code, of what the batch added that was not read; with it, a
// row keeps its last_event_at when that is later than what was read. Replay
// passes nil: it reads every event.
func (s *Store) recompute(now time.Time, rows map[string]*codeRow, evs map[string][]lifecycle.Event, locks map[string]lifecycle.LockStatus, later map[string]*time.Time) []change {
	out := make([]change, 0, len(rows))
	for id, old := range rows {
		st := lifecycle.Fold(evs[id])
		if later != nil {
			st.LastEventAt = lifecycle.Latest(lifecycle.Latest(st.LastEventAt, old.LastEventAt), later[id])
		}
		st.AccessCodeID = id
		flag := lifecycle.Assess(st.Summary(), now, s.cfg.RemovalTimeout)
		out = append(out, s.decide(now, old, st, flag, locks[st.DeviceID]))
	}
	return out
}

// decide applies flag to a code whose fold is st.
func (s *Store) decide(now time.Time, old *codeRow, st lifecycle.State, flag *lifecycle.Flag, lock lifecycle.LockStatus) change {
	needs := lifecycle.NeedsTroubleshooting(flag, deref(old.acknowledgedKey))
	c := change{old: old, st: st, flag: flag, needs: needs}
	newKey := ""
	if flag != nil {
		newKey = flag.Key
	}
	if t := lifecycle.Transition(old.NeedsTroubleshooting, deref(old.troubleKey), needs, newKey); t != "" {
		c.alert = newAlert(now, old, t, st, flag, lifecycle.Resolution(st, t), lock)
	}
	return c
}

// newAlert numbers a code's next alert. The caller holds the code's row lock
// and writes alert_seq back in the same transaction.
func newAlert(now time.Time, old *codeRow, typ string, st lifecycle.State, flag *lifecycle.Flag, resolution string, lock lifecycle.LockStatus) *lifecycle.AlertPayload {
	old.alertSeq++
	a := lifecycle.NewAlert(now, ids.NewTimeOrdered(now), old.alertSeq, typ, st, flag, resolution, lock)
	return &a
}

// row is the content queueWrite gives a code's row.
type row struct {
	ws, dev, acct, reason, details, key, delID *string
	state                                      string
	onDevice                                   *bool
	needs                                      bool
	since, created, set, deleted, removed      *time.Time
	last, terminal, lastAlert                  *time.Time
	confirmedBy, request, seam, confirmation   *string
	unconfirmed, nextReconcile                 *time.Time
}

func (s *Store) newRow(now time.Time, c change) row {
	st := c.st
	r := row{
		ws: nonEmpty(st.WorkspaceID), dev: nonEmpty(st.DeviceID), acct: nonEmpty(st.ConnectedAccountID),
		state: string(st.DeletionState), onDevice: st.OnDevice, needs: c.needs,
		delID: nonEmpty(st.DeletionEventID), created: st.CreatedAt, set: st.SetOnDeviceAt,
		deleted: st.DeletedAt, removed: st.RemovedFromDeviceAt, last: st.LastEventAt,
		lastAlert:   c.old.lastAlertAt,
		confirmedBy: nonEmpty(st.ConfirmedBy), request: jsonOrNil(st.DeletionRequest), seam: jsonOrNil(st.Seam),
		confirmation: jsonOrNil(st.Confirmation),
		unconfirmed:  st.UnconfirmedSince(), nextReconcile: lifecycle.NextReconcile(st, s.cfg.ReconcileAfter),
	}
	if c.flag != nil {
		d := lifecycle.TroubleDetails(c.flag)
		r.reason, r.key, r.since, r.details = &c.flag.Reason, &c.flag.Key, &c.flag.Since, &d
	}
	switch {
	case !st.DeletionState.Terminal():
	case c.old.terminalAt != nil && c.old.DeletionState.Terminal():
		r.terminal = c.old.terminalAt
	default:
		r.terminal = &now
	}
	if c.alert != nil {
		if c.alert.Type == lifecycle.AlertResolved {
			r.lastAlert = nil
		} else {
			r.lastAlert = &now
		}
	}
	return r
}

// sameAs reports whether the row already holds r, so writing it would only
// cost a new row version (a redelivered or irrelevant event).
func (r row) sameAs(o *codeRow) bool {
	return eqs(r.ws, o.WorkspaceID) && eqs(r.dev, o.DeviceID) && eqs(r.acct, o.ConnectedAccountID) &&
		r.state == string(o.DeletionState) && eqb(r.onDevice, o.OnDevice) && r.needs == o.NeedsTroubleshooting &&
		eqs(r.reason, o.TroubleshootingReason) && eqs(r.key, o.troubleKey) && eqs(r.delID, o.deletionEventID) &&
		eqt(r.since, o.troubleSince) && eqt(r.created, o.CreatedAt) && eqt(r.set, o.SetOnDeviceAt) &&
		eqt(r.deleted, o.DeletedAt) && eqt(r.removed, o.RemovedFromDeviceAt) && eqt(r.last, o.LastEventAt) &&
		eqt(r.terminal, o.terminalAt) && eqt(r.lastAlert, o.lastAlertAt) &&
		eqs(r.confirmedBy, o.ConfirmedBy) && eqj(r.request, o.request) && eqj(r.seam, o.seam) &&
		eqj(r.confirmation, o.confirmation) &&
		eqt(r.unconfirmed, o.unconfirmed) && eqt(r.nextReconcile, o.NextReconcileAt)
}

// eqj compares JSON a codewatch marshalled with what jsonb gave back
// (jsonb reorders keys and respaces): decoded, they must be equal.
func eqj(a *string, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal([]byte(*a), &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// jsonOrNil is v as JSON, or nil for a nil pointer.
func jsonOrNil[T any](v *T) *string {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	s := string(b)
	return &s
}

func eqs(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func eqb(a, b *bool) bool   { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func eqt(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// writeChanges queues the rows that changed and the alerts the changes call
// for on a batch it returns for the caller to send (the alerts' jobs are
// inserted first, in tx).
func (s *Store) writeChanges(ctx context.Context, tx pgx.Tx, now time.Time, changes []change) (*pgx.Batch, []string, error) {
	var (
		ids, ws, dev, acct, reason, details, key, delID []*string
		state                                           []string
		onDevice                                        []*bool
		needs                                           []bool
		since, created, set, deleted, removed, last     []*time.Time
		terminal, lastAlert                             []*time.Time
		seq                                             []int64
		confirmedBy, request, seam, confirmation        []*string
		unconfirmed, nextReconcile                      []*time.Time
		alerts                                          []*lifecycle.AlertPayload
		sinks                                           [][]string
	)
	s.gate(now, changes)
	for i := range changes {
		c := &changes[i]
		if c.alert != nil {
			alerts, sinks = append(alerts, c.alert), append(sinks, c.sinks)
		}
		r := s.newRow(now, *c)
		if c.alert == nil && r.sameAs(c.old) {
			continue
		}
		ids = append(ids, &c.old.AccessCodeID)
		ws, dev, acct = append(ws, r.ws), append(dev, r.dev), append(acct, r.acct)
		state, onDevice, needs = append(state, r.state), append(onDevice, r.onDevice), append(needs, r.needs)
		reason, details, key = append(reason, r.reason), append(details, r.details), append(key, r.key)
		since, delID = append(since, r.since), append(delID, r.delID)
		created, set, deleted = append(created, r.created), append(set, r.set), append(deleted, r.deleted)
		removed, last = append(removed, r.removed), append(last, r.last)
		terminal, lastAlert = append(terminal, r.terminal), append(lastAlert, r.lastAlert)
		seq = append(seq, c.old.alertSeq)
		confirmedBy, request, seam = append(confirmedBy, r.confirmedBy), append(request, r.request), append(seam, r.seam)
		confirmation = append(confirmation, r.confirmation)
		unconfirmed, nextReconcile = append(unconfirmed, r.unconfirmed), append(nextReconcile, r.nextReconcile)
	}
	b := &pgx.Batch{}
	if len(ids) > 0 {
		b.Queue(`UPDATE access_codes c SET
			workspace_id = u.ws, device_id = u.dev, connected_account_id = u.acct,
			deletion_state = u.state, on_device = u.on_device,
			needs_troubleshooting = u.needs, troubleshooting_reason = u.reason,
			troubleshooting_details = u.details::jsonb, trouble_key = u.key,
			trouble_since = u.since, deletion_event_id = u.del_id,
			created_at = u.created, set_on_device_at = u.set, deleted_at = u.deleted,
			removed_from_device_at = u.removed, last_event_at = u.last,
			terminal_at = u.terminal, last_alert_at = u.last_alert, alert_seq = u.seq,
			confirmed_by = u.confirmed_by, deletion_request = u.request::jsonb, seam = u.seam::jsonb,
			unconfirmed_since = u.unconfirmed, next_reconcile_at = u.next_reconcile,
			confirmation = u.confirmation::jsonb,
			updated_at = $19
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[],
			$7::bool[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[],
			$13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
			$17::timestamptz[], $18::timestamptz[], $20::timestamptz[], $21::bigint[],
			$22::text[], $23::text[], $24::text[], $25::timestamptz[], $26::timestamptz[],
			$27::text[])
			AS u(id, ws, dev, acct, state, on_device, needs, reason, details, key, since,
				del_id, created, set, deleted, removed, last, terminal, last_alert, seq,
				confirmed_by, request, seam, unconfirmed, next_reconcile, confirmation)
		WHERE c.access_code_id = u.id`,
			ids, ws, dev, acct, state, onDevice, needs, reason, details, key, since, delID,
			created, set, deleted, removed, last, terminal, now, lastAlert, seq,
			confirmedBy, request, seam, unconfirmed, nextReconcile, confirmation)
	}
	queueAlertCols(b, changes)
	if err := s.queueAlerts(ctx, tx, b, alerts, sinks); err != nil {
		return nil, nil, err
	}
	return b, flagReasons(alerts), nil
}

// flagReasons lists the reasons of the trouble alerts among alerts: each is
// a code newly flagged.
func flagReasons(alerts []*lifecycle.AlertPayload) []string {
	var out []string
	for _, a := range alerts {
		if a.Type == lifecycle.AlertTrouble && a.TroubleshootingReason != nil {
			out = append(out, *a.TroubleshootingReason)
		}
	}
	return out
}

// reportFlags tells OnFlag of committed flags.
func (s *Store) reportFlags(reasons []string) {
	if s.cfg.OnFlag == nil {
		return
	}
	for _, r := range reasons {
		s.cfg.OnFlag(r)
	}
}

// rowState rebuilds the parts of a State an alert shows from a stored row.
func rowState(r *codeRow) lifecycle.State {
	return lifecycle.State{
		AccessCodeID: r.AccessCodeID, WorkspaceID: deref(r.WorkspaceID),
		DeviceID: deref(r.DeviceID), ConnectedAccountID: deref(r.ConnectedAccountID),
		DeletionState: r.DeletionState, OnDevice: r.OnDevice, DeletionEventID: deref(r.deletionEventID),
		CreatedAt: r.CreatedAt, SetOnDeviceAt: r.SetOnDeviceAt, DeletedAt: r.DeletedAt,
		RemovedFromDeviceAt: r.RemovedFromDeviceAt, LastEventAt: r.LastEventAt,
		ConfirmedBy: deref(r.ConfirmedBy), DeletionRequest: r.DeletionRequest, Seam: r.Seam,
		Confirmation: r.Confirmation,
	}
}

// rowFlag is the stored row's current trouble.
func rowFlag(r *codeRow) *lifecycle.Flag {
	if r.troubleKey == nil {
		return nil
	}
	f := &lifecycle.Flag{Reason: deref(r.TroubleshootingReason), Key: *r.troubleKey, Details: r.TroubleshootingDetails}
	if r.troubleSince != nil {
		f.Since = *r.troubleSince
	}
	return f
}
