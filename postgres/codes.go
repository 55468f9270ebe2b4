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
	ctx, cancel := s.timeout(ctx)
	defer cancel()
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
	// The lock's connectivity, in the same round trip.
	var lockOnline *bool
	b.Queue(`SELECT online FROM devices
		WHERE device_id = (SELECT device_id FROM access_codes WHERE access_code_id = $1)`, id).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				if err := rs.Scan(&lockOnline); err != nil {
					return err
				}
			}
			return rs.Err()
		})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, unavailable(err)
	}
	if row == nil {
		return nil, errNotFound
	}
	row.Events = events
	if row.Events == nil {
		row.Events = []lifecycle.EventRef{}
	}
	row.LockOnline = lockOnline
	row.TroubleshootingSeverity = severityOf(row.TroubleshootingReason)
	row.PinHint = currentPinHint(row.Events)
	return &row.AccessCode, nil
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
// query: codes needing troubleshooting (few), the other unconfirmed
// deletions (access_codes_unconfirmed_idx), and the rest by id.
func (s *Store) ListAccessCodes(ctx context.Context, f lifecycle.ListFilter) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
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
		return codes, next, s.fillLocks(ctx, codes)
	}
	codes, next, err := s.listUrgent(ctx, f, limit)
	if err != nil {
		return nil, nil, err
	}
	return codes, next, s.fillLocks(ctx, codes)
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

// listSegment reads up to limit codes of one segment after cursor.
func (s *Store) listSegment(ctx context.Context, f lifecycle.ListFilter, seg int, after *lifecycle.ListCursor, limit int) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, "deletion_state = ANY("+arg(states)+"::text[])")
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
	// Troubled codes sort by when their deletion began.
	const deletedKey = "COALESCE(unconfirmed_since, deleted_at, 'infinity'::timestamptz)"
	var order string
	switch seg {
	case segTroubled:
		where = append(where, "needs_troubleshooting")
		order = rankSQL() + ", " + deletedKey + ", id"
		if after != nil {
			where = append(where, "("+rankSQL()+", "+deletedKey+", id) > ("+arg(after.Rank)+"::int, "+arg(cursorTime(after.At))+"::timestamptz, "+arg(after.ID)+"::bigint)")
		}
	case segUnconfirmed:
		// Implies access_codes_unconfirmed_idx's predicate, which it
		// repeats so that the planner uses it.
		where = append(where, "NOT needs_troubleshooting", unconfirmedSQL)
		order = "unconfirmed_since, id"
		if after != nil {
			where = append(where, "(unconfirmed_since, id) > ("+arg(after.At)+"::timestamptz, "+arg(after.ID)+"::bigint)")
		}
	case segOthers:
		where = append(where, "NOT needs_troubleshooting", "NOT ("+unconfirmedSQL+")")
		order = "id DESC"
		if after != nil {
			where = append(where, "id < "+arg(after.ID))
		}
	case segRecent:
		order = "id DESC"
		if after != nil {
			where = append(where, "id < "+arg(after.ID))
		}
	}
	q := `SELECT ` + codeColumns + `, ` + rankSQL() + ` FROM access_codes`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	// One more than the page tells whether there is a next page.
	q += " ORDER BY " + order + " LIMIT " + arg(limit+1)
	rs, err := s.pool.Query(ctx, q, append([]any{customPlan}, args...)...)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	defer rs.Close()
	var page []lifecycle.AccessCode
	var last lifecycle.ListCursor
	for rs.Next() {
		var rank int
		c, err := scanCodeExtra(rs, &rank)
		if err != nil {
			return nil, nil, unavailable(err)
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

// cursorTime is a cursor's deletion time as the query compares it: a code
// with no deletion time sorts last ('infinity'), and its cursor's At is zero.
func cursorTime(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// Summarize counts codes per state and trouble. Each count reads an index.
func (s *Store) Summarize(ctx context.Context) (*lifecycle.StatusSummary, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	sum := &lifecycle.StatusSummary{DeletionStates: map[lifecycle.DeletionState]int64{}, ByReason: map[string]int64{}}
	for _, st := range lifecycle.States {
		sum.DeletionStates[st] = 0
	}
	for _, r := range lifecycle.Reasons {
		sum.ByReason[r] = 0
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT deletion_state, count(*) FROM access_codes GROUP BY 1`).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var st string
			var n int64
			if err := rs.Scan(&st, &n); err != nil {
				return err
			}
			sum.DeletionStates[lifecycle.DeletionState(st)] = n
			sum.Total += n
		}
		return rs.Err()
	})
	// access_codes_needs_idx: codes needing troubleshooting are few (the
	// lock's evidence can flag a code whose deletion is confirmed).
	b.Queue(`SELECT troubleshooting_reason, count(*) FROM access_codes
		WHERE needs_troubleshooting GROUP BY 1`).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var r *string
			var n int64
			if err := rs.Scan(&r, &n); err != nil {
				return err
			}
			if r != nil {
				sum.ByReason[*r] = n
			}
			sum.NeedsTroubleshooting += n
		}
		return rs.Err()
	})
	b.Queue(`SELECT min(unconfirmed_since) FROM access_codes WHERE ` + unconfirmedSQL).QueryRow(func(r pgx.Row) error {
		return r.Scan(&sum.OldestUnconfirmedDeletionAt)
	})
	// The newest row by primary key is the newest received: no index on
	// received_at needed.
	b.Queue(`SELECT max(received_at) FROM (SELECT received_at FROM events ORDER BY id DESC LIMIT 1) t`).
		QueryRow(func(r pgx.Row) error { return r.Scan(&sum.LastEventReceivedAt) })
	b.Queue(`SELECT count(*) FROM alert_deliveries WHERE status = 'pending'`).
		QueryRow(func(r pgx.Row) error { return r.Scan(&sum.OutboxDepth) })
	// devices_offline_idx, access_codes_device_unconfirmed_idx: both few.
	b.Queue(`SELECT count(*) FROM devices d WHERE d.online = false
		AND EXISTS (SELECT 1 FROM access_codes c WHERE c.device_id = d.device_id AND c.unconfirmed_since IS NOT NULL)`).
		QueryRow(func(r pgx.Row) error { return r.Scan(&sum.LocksOfflineWithUnconfirmedDeletions) })
	// access_codes_used_idx.
	b.Queue(`SELECT count(*) FROM access_codes
		WHERE troubleshooting_reason = 'used_after_deletion' AND trouble_since > $1`, s.cfg.Now().Add(-24*time.Hour)).
		QueryRow(func(r pgx.Row) error { return r.Scan(&sum.CodesUsedAfterDeletion24h) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, unavailable(err)
	}
	if t := sum.OldestUnconfirmedDeletionAt; t != nil {
		age := int64(s.cfg.Now().Sub(*t) / time.Second)
		if age < 0 {
			age = 0
		}
		sum.OldestUnconfirmedDeletionAgeSeconds = &age
	}
	return sum, nil
}

// Acknowledge records that an operator has dealt with a code's current
// trouble: the flag clears, a resolution alert goes out, and only new trouble
// flags the code again.
//
// Acknowledging again is a no-op: the first acknowledgement (who, when, its
// note) stands, and changed is false.
func (s *Store) Acknowledge(ctx context.Context, id, by, note string) (code *lifecycle.AccessCode, changed bool, err error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	now := s.cfg.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, unavailable(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit

	row, err := scanCode(tx.QueryRow(ctx, `SELECT `+codeColumns+` FROM access_codes
		WHERE access_code_id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, errNotFound
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	if row.troubleKey == nil {
		return nil, false, lifecycle.Errorf(lifecycle.EConflict, "access code %s has no trouble to acknowledge (deletion_state %s)", id, row.DeletionState)
	}
	if row.NeedsTroubleshooting {
		b := &pgx.Batch{}
		locks, err := s.locksOf(ctx, tx, devicesOf([]*codeRow{row}))
		if err != nil {
			return nil, false, unavailable(err)
		}
		a := newAlert(now, row, lifecycle.AlertResolved, rowState(row), rowFlag(row), "acknowledged", locks[deref(row.DeviceID)])
		a.AcknowledgedBy, a.Note = by, note
		a.Message = lifecycle.AlertMessage(*a)
		b.Queue(`UPDATE access_codes SET needs_troubleshooting = false,
				acknowledged_key = trouble_key, acknowledged_at = $2, acknowledged_by = $3,
				acknowledgement_note = $4, last_alert_at = NULL, alert_seq = $5, updated_at = $2
			WHERE access_code_id = $1`, id, now, by, note, row.alertSeq)
		if err := s.queueAlerts(ctx, tx, b, []*lifecycle.AlertPayload{a}); err != nil {
			return nil, false, unavailable(err)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, false, unavailable(err)
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, false, unavailable(err)
		}
		changed = true
	}
	code, err = s.GetAccessCode(ctx, id)
	return code, changed, err
}
