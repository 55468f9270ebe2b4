package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/codewatch/codewatch/lifecycle"
)

// GetAccessCode returns one code with its history.
func (s *Store) GetAccessCode(ctx context.Context, id string) (*lifecycle.AccessCode, error) {
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	b, result := getCodeBatch(id)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, unavailable(err)
	}
	return result()
}

// getCodeBatch queues GetAccessCode's statements (one round trip: the row by
// primary key, its history through events_access_code_idx, its lock's
// connectivity) and returns the code they read once the batch has run.
func getCodeBatch(id string) (*pgx.Batch, func() (*lifecycle.AccessCode, error)) {
	b := &pgx.Batch{}
	var row *codeRow
	b.Queue(`SELECT `+codeColumns+` FROM access_codes WHERE access_code_id = $1`, id).
		QueryRow(func(r pgx.Row) error {
			var err error
			row, err = scanCode(r)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
	var events []lifecycle.EventRef
	b.Queue(`SELECT event_id, event_type, COALESCE(occurred_at, created_at, received_at), received_at,
			source, details, pin_hint
		FROM events
		WHERE access_code_id = $1 AND `+historySQL+`
		ORDER BY 3, event_id`, id).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var e lifecycle.EventRef
				var details []byte
				if err := rs.Scan(&e.EventID, &e.EventType, &e.OccurredAt, &e.ReceivedAt, &e.Source, &details, &e.PinHint); err != nil {
					return err
				}
				if details != nil {
					e.Details = details
				}
				events = append(events, e)
			}
			return rs.Err()
		})
	// The lock's connectivity and names, in the same round trip.
	var lockOnline *bool
	var lock lifecycle.Names
	b.Queue(`SELECT online, device_name, location_name, time_zone FROM devices
		WHERE device_id = (SELECT device_id FROM access_codes WHERE access_code_id = $1)`, id).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				if err := rs.Scan(&lockOnline, &lock.DeviceName, &lock.LocationName, &lock.TimeZone); err != nil {
					return err
				}
			}
			return rs.Err()
		})
	return b, func() (*lifecycle.AccessCode, error) {
		if row == nil {
			return nil, errNotFound
		}
		row.Events = events
		if row.Events == nil {
			row.Events = []lifecycle.EventRef{}
		}
		row.LockOnline = lockOnline
		row.DeviceName, row.LocationName, row.TimeZone = lock.DeviceName, lock.LocationName, lock.TimeZone
		row.TroubleshootingSeverity = severityOf(row.TroubleshootingReason)
		row.PinHint = currentPinHint(row.Events)
		return &row.AccessCode, nil
	}
}

// unconfirmedSQL is the predicate of access_codes_unconfirmed_since_idx:
// deletions (and codewatch's requests) not confirmed off the lock. The
// column is set exactly when lifecycle.DeletionState.Unconfirmed holds.
const unconfirmedSQL = `unconfirmed_since IS NOT NULL`

// ListAccessCodes returns a page of codes in f.Sort's order (see
// lifecycle.SortUrgency), and the cursor of the next page (nil on the last).
// Paging is keyset on keys that do not move while codes are added, so pages
// neither skip nor repeat a code whose place did not change.
//
// sort=urgency reads three segments in turn, each from its own index-backed
// query (segmentQuery): codes needing troubleshooting (few), the other
// unconfirmed deletions (access_codes_unconfirmed_since_idx), and the rest by
// id.
func (s *Store) ListAccessCodes(ctx context.Context, f lifecycle.ListFilter) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error) {
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	return s.listAccessCodes(ctx, f)
}

// listAccessCodes is ListAccessCodes within a read's turn.
func (s *Store) listAccessCodes(ctx context.Context, f lifecycle.ListFilter) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error) {
	limit := f.Limit
	if limit <= 0 || limit > lifecycle.MaxListLimit {
		limit = 100
	}
	codes := []lifecycle.AccessCode{}
	if f.Sort == lifecycle.SortRecent {
		page, next, err := s.listSegment(ctx, f, segRecent, f.Cursor, limit)
		if err != nil {
			return nil, nil, err
		}
		codes = append(codes, page...)
		fillSeverity(codes)
		return codes, next, nil
	}
	codes, next, err := s.listUrgent(ctx, f, limit)
	if err != nil {
		return nil, nil, err
	}
	fillSeverity(codes)
	return codes, next, nil
}

// listUrgent reads a page in sort=urgency order, segment after segment.
func (s *Store) listUrgent(ctx context.Context, f lifecycle.ListFilter, limit int) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error) {
	codes := []lifecycle.AccessCode{}
	cur := f.Cursor
	first := segTroubled
	if cur != nil {
		first = cur.Segment
	}
	for seg := first; seg <= segOthers; seg++ {
		if !segmentCanMatch(f, seg) {
			cur = nil
			continue
		}
		var after *lifecycle.ListCursor
		if cur != nil && cur.Segment == seg && cur.ID != 0 {
			after = cur // ID 0: from the segment's start
		}
		page, next, err := s.listSegment(ctx, f, seg, after, limit-len(codes))
		if err != nil {
			return nil, nil, err
		}
		codes = append(codes, page...)
		if next != nil {
			return codes, next, nil
		}
		cur = nil
		if len(codes) == limit {
			// Full exactly at a segment's end: the next page starts with
			// the next segment (possibly empty).
			if seg < segOthers {
				return codes, &lifecycle.ListCursor{Segment: seg + 1}, nil
			}
			return codes, nil, nil
		}
	}
	return codes, nil, nil
}

// List segments.
const (
	segTroubled    = iota // needs troubleshooting: by reason rank, deletion time
	segUnconfirmed        // other unconfirmed deletions: oldest deletion first
	segOthers             // everything else: newest first
	segRecent             // sort=recent: every code, newest first
)

// segmentCanMatch reports whether a segment can hold a code f selects.
func segmentCanMatch(f lifecycle.ListFilter, seg int) bool {
	needs := f.NeedsTroubleshooting
	switch seg {
	case segTroubled:
		return needs == nil || *needs
	case segUnconfirmed:
		if needs != nil && *needs {
			return false
		}
		return len(f.States) == 0 || slices.ContainsFunc(f.States, lifecycle.DeletionState.Unconfirmed)
	case segOthers:
		if needs != nil && *needs {
			return false
		}
		return len(f.States) == 0 || slices.ContainsFunc(f.States, func(s lifecycle.DeletionState) bool { return !s.Unconfirmed() })
	}
	return true
}

// rankSQL is lifecycle.ReasonRank in SQL.
func rankSQL() string {
	var b strings.Builder
	b.WriteString("CASE troubleshooting_reason")
	for i, r := range lifecycle.ReasonsByUrgency {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", r, i)
	}
	fmt.Fprintf(&b, " ELSE %d END", len(lifecycle.ReasonsByUrgency))
	return b.String()
}

// deletedKey is when a troubled code's deletion began: troubled codes sort
// by it after their reason's rank.
const deletedKey = "COALESCE(unconfirmed_since, deleted_at, 'infinity'::timestamptz)"

// lockOnlineSQL is a listed code's lock_online and its lock's names
// (lock_names: device_name, location_name, time_zone), read with the page
// (devices' primary key, once per row the page returns: Postgres computes
// them after the LIMIT, or after a sort of the few rows a small index gave).
const lockOnlineSQL = `(SELECT d.online FROM devices d WHERE d.device_id = access_codes.device_id) AS lock_online, ` +
	`(SELECT ARRAY[d.device_name, d.location_name, d.time_zone] FROM devices d WHERE d.device_id = access_codes.device_id) AS lock_names`

// troubledOrder is the troubled segment's order. access_codes_troubled_idx
// and access_codes_troubled_state_idx (migration 00009) index exactly these
// expressions, so a page is read in index order; TestListPlans fails when
// they drift apart.
func troubledOrder() string { return rankSQL() + ", " + deletedKey + ", id" }

// listSegment reads up to limit codes of one segment after cursor.
func (s *Store) listSegment(ctx context.Context, f lifecycle.ListFilter, seg int, after *lifecycle.ListCursor, limit int) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error) {
	q, args := segmentQuery(f, seg, after, limit)
	if f.Query != "" {
		// Planned for the pattern at hand: how many codes a name matches
		// decides between the trigram indexes and the segment's order.
		args = append([]any{customPlan}, args...)
	}
	// A generic plan, prepared once per connection (not customPlan): each
	// segment's ORDER BY is an index's order and its filters equalities,
	// so the generic plan is that index's, whatever the limit (TestReadPlans
	// checks it); planning the statement anew each time cost 2-3 ms per
	// segment at a million codes, more than running it.
	rs, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	defer rs.Close()
	var page []lifecycle.AccessCode
	var last lifecycle.ListCursor
	for rs.Next() {
		var rank int
		var lockOnline *bool
		var lockNames []*string
		c, err := scanCodeExtra(rs, &rank, &lockOnline, &lockNames)
		if err != nil {
			return nil, nil, unavailable(err)
		}
		c.LockOnline = lockOnline
		if len(lockNames) == 3 {
			c.DeviceName, c.LocationName, c.TimeZone = lockNames[0], lockNames[1], lockNames[2]
		}
		if len(page) == limit {
			return page, &last, rs.Err()
		}
		page = append(page, c.AccessCode)
		last = lifecycle.ListCursor{Segment: seg, Rank: rank, ID: c.id}
		switch {
		case c.unconfirmed != nil:
			last.At = *c.unconfirmed
		case c.DeletedAt != nil:
			last.At = *c.DeletedAt
		}
	}
	if err := rs.Err(); err != nil {
		return nil, nil, unavailable(err)
	}
	return page, nil, nil
}

// segmentQuery is the SQL and arguments that read one segment's page: up to
// limit+1 codes (one more than the page tells whether there is a next page)
// after cursor, each row codeColumns, its reason's rank and its lock's
// connectivity (lockOnlineSQL).
//
// Each segment's order is an index's (see the cases). A deletion_state
// filter reads each state listed from an index that leads with the state
// and continues with the segment's order, each state's page in its own
// branch, and merges the branches: a filter on a state with few codes in the
// segment (active among the troubled codes) then reads none, instead of
// every code of the segment. (Postgres does not merge index scans of one
// table's UNION ALL branches by itself, hence the LIMIT in each branch.)
func segmentQuery(f lifecycle.ListFilter, seg int, after *lifecycle.ListCursor, limit int) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.NeedsTroubleshooting != nil && seg == segRecent {
		where = append(where, "needs_troubleshooting = "+arg(*f.NeedsTroubleshooting))
	}
	if f.WorkspaceID != "" {
		where = append(where, "workspace_id = "+arg(f.WorkspaceID))
	}
	if f.DeviceID != "" {
		where = append(where, "device_id = "+arg(f.DeviceID))
	}
	if f.Reason != "" {
		where = append(where, "troubleshooting_reason = "+arg(f.Reason))
	}
	if f.Query != "" {
		where = append(where, codeMatchSQL(arg(likePattern(f.Query))))
	}
	var order string
	states := f.States
	switch seg {
	case segTroubled:
		// access_codes_troubled_idx, or access_codes_troubled_state_idx per
		// state.
		where = append(where, "needs_troubleshooting")
		order = troubledOrder()
		if after != nil {
			where = append(where, "("+rankSQL()+", "+deletedKey+", id) > ("+arg(after.Rank)+"::int, "+arg(cursorTime(after.At))+"::timestamptz, "+arg(after.ID)+"::bigint)")
		}
	case segUnconfirmed:
		// access_codes_unconfirmed_since_idx, or access_codes_waiting_idx
		// per state; both conditions are repeated so the planner can prove
		// either index's predicate.
		where = append(where, "NOT needs_troubleshooting", unconfirmedSQL)
		order = "unconfirmed_since, id"
		if after != nil {
			where = append(where, "(unconfirmed_since, id) > ("+arg(after.At)+"::timestamptz, "+arg(after.ID)+"::bigint)")
		}
		states = slices.DeleteFunc(slices.Clone(states), func(st lifecycle.DeletionState) bool { return !st.Unconfirmed() })
	case segOthers:
		// access_codes_id_idx backwards, or access_codes_state_idx per state.
		where = append(where, "NOT needs_troubleshooting", "NOT ("+unconfirmedSQL+")")
		order = "id DESC"
		if after != nil {
			where = append(where, "id < "+arg(after.ID))
		}
		states = slices.DeleteFunc(slices.Clone(states), lifecycle.DeletionState.Unconfirmed)
	case segRecent:
		order = "id DESC"
		if after != nil {
			where = append(where, "id < "+arg(after.ID))
		}
	}
	lock := lockOnlineSQL
	if f.DeviceID != "" {
		// One lock: read once (an InitPlan), not once per row.
		dev := arg(f.DeviceID)
		lock = `(SELECT d.online FROM devices d WHERE d.device_id = ` + dev + `) AS lock_online, ` +
			`(SELECT ARRAY[d.device_name, d.location_name, d.time_zone] FROM devices d WHERE d.device_id = ` + dev + `) AS lock_names`
	}
	cols := codeColumns + `, ` + rankSQL() + ` AS rank, ` + lock
	// Merging branches needs their order keys as output columns.
	merged := order
	if seg == segTroubled && len(states) > 1 {
		cols += `, ` + deletedKey + ` AS deleted_key`
		merged = "rank, deleted_key, id"
	}
	page := arg(limit + 1)
	branch := func(extra ...string) string {
		w := append(slices.Clone(where), extra...)
		q := `SELECT ` + cols + ` FROM access_codes`
		if len(w) > 0 {
			q += " WHERE " + strings.Join(w, " AND ")
		}
		return q + " ORDER BY " + order + " LIMIT " + page
	}
	switch len(states) {
	case 0:
		return branch(), args
	case 1:
		return branch("deletion_state = " + arg(string(states[0]))), args
	}
	branches := make([]string, len(states))
	for i, st := range states {
		branches[i] = "(" + branch("deletion_state = "+arg(string(st))) + ")"
	}
	return `SELECT ` + codeColumns + `, rank, lock_online, lock_names FROM (` + strings.Join(branches, " UNION ALL ") + `) page
		ORDER BY ` + merged + ` LIMIT ` + page, args
}

// cursorTime is a cursor's deletion time as the query compares it: a code
// with no deletion time sorts last ('infinity'), and its cursor's At is zero.
func cursorTime(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// maxNoteText bounds an acknowledgement's note (the handlers refuse longer).
const maxNoteText = 2000

// Acknowledge records that an operator has dealt with a code's current
// trouble: the flag clears, a resolution alert goes out, and only new trouble
// flags the code again.
//
// Acknowledging again is a no-op: the first acknowledgement (who, when, its
// note) stands, and changed is false.
//
// troubleID, when given, is the trouble the person saw (trouble_id): if the
// code's trouble is another by now (a critical came since), nothing is
// acknowledged and the error is ETroubleChanged. The check runs under the
// row's lock, so no new trouble can slip in between.
func (s *Store) Acknowledge(ctx context.Context, id, by, note, troubleID string) (code *lifecycle.AccessCode, changed bool, err error) {
	// The handlers refuse a note Postgres would not take; whoever calls,
	// the name and the note are stored as text it takes (and the note goes
	// into the alert's jsonb payload).
	by, note = lifecycle.CleanText(by, lifecycle.MaxIDLength), lifecycle.CleanText(note, maxNoteText)
	// One bound for the acknowledgement and the read of the code after it.
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	now := s.cfg.Now()
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		row, err := scanCode(tx.QueryRow(ctx, `SELECT `+codeColumns+` FROM access_codes
		WHERE access_code_id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return unavailable(err)
		}
		if troubleID != "" && (row.TroubleID == nil || *row.TroubleID != troubleID) {
			now := "it has no trouble now"
			if row.TroubleID != nil {
				now = "its trouble now is " + *row.TroubleID + " (" + deref(row.TroubleshootingReason) + ")"
			}
			return lifecycle.Errorf(lifecycle.ETroubleChanged,
				"the trouble of access code %s changed since %s was shown: %s; nothing was acknowledged", id, troubleID, now)
		}
		if row.troubleKey == nil {
			return lifecycle.Errorf(lifecycle.EConflict, "access code %s has no trouble to acknowledge (deletion_state %s)", id, row.DeletionState)
		}
		if row.NeedsTroubleshooting {
			b := &pgx.Batch{}
			locks, err := s.locksOf(ctx, tx, devicesOf([]*codeRow{row}))
			if err != nil {
				return unavailable(err)
			}
			a := newAlert(now, row, lifecycle.AlertResolved, rowState(row), rowFlag(row), "acknowledged", locks[deref(row.DeviceID)])
			a.AcknowledgedBy, a.Note = by, note
			a.Message = lifecycle.AlertMessage(*a)
			// It goes where the trouble went (oncall.go).
			c := []change{{old: row, alert: a}}
			s.gateResolved(row, a, &c[0])
			b.Queue(`UPDATE access_codes SET needs_troubleshooting = false,
				acknowledged_key = trouble_key, acknowledged_at = $2, acknowledged_by = $3,
				acknowledgement_note = $4, last_alert_at = NULL, alert_seq = $5, updated_at = $2
			WHERE access_code_id = $1`, id, now, by, note, row.alertSeq)
			queueAlertCols(b, c)
			var alerts []*lifecycle.AlertPayload
			if c[0].alert != nil {
				alerts = append(alerts, c[0].alert)
			}
			if err := s.queueAlerts(ctx, tx, b, alerts, [][]string{c[0].sinks}); err != nil {
				return unavailable(err)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return unavailable(err)
			}
			changed = true
			return nil
		}
		// Nothing to write: acknowledged already.
		return errRollback
	})
	if err != nil {
		return nil, false, err
	}
	code, err = s.GetAccessCode(ctx, id)
	return code, changed, err
}
